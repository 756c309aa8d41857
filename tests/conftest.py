"""Shared fixtures. The environment is set at import, before any test module imports the store,
so integration and e2e tests talk to a DynamoDB Local started once per session (on a port chosen here)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engage.local import stack as local_stack
from engage.local.dynamodb_local import free_port
from engage.local.template import load_template

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "template.yaml"
FITQUEST = REPO / "examples" / "fitquest" / "engagement.yaml"

_DYNAMODB_PORT = free_port()
_PREFIX = f"test{os.getpid()}"
local_stack.apply_environment(
    load_template(TEMPLATE),
    f"http://127.0.0.1:{_DYNAMODB_PORT}",
    local_stack.table_names(load_template(TEMPLATE), _PREFIX),
)


@pytest.fixture(scope="session")
def stack() -> local_stack.LocalStack:
    """DynamoDB Local with the template's tables, the FitQuest config published, the HTTP API serving."""
    running = local_stack.start(TEMPLATE, FITQUEST, prefix=_PREFIX, dynamodb_port=_DYNAMODB_PORT, record_state=False)
    yield running
    running.stop()

from __future__ import annotations

import itertools

import pytest

_n = itertools.count()


@pytest.fixture
def user(request) -> str:
    """A fresh user per test: the tests share one local stack."""
    return f"e2e-{request.node.name[:40]}-{next(_n)}"

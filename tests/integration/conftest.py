from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator

import botocore.client
import pytest

_users = itertools.count()


@pytest.fixture(autouse=True)
def _stack(stack):  # every integration test runs against DynamoDB Local
    return stack


@pytest.fixture
def user_id(request) -> str:
    """A fresh user per test: tests share one DynamoDB Local and never see each other's users."""
    return f"{request.node.name[:60]}-{next(_users)}"


@pytest.fixture
def dynamodb_calls(monkeypatch) -> Iterator[Counter]:
    """Counts DynamoDB API calls by operation name (GetItem, TransactWriteItems, …) made during the test."""
    calls: Counter = Counter()
    original = botocore.client.BaseClient._make_api_call

    def counting(self, operation_name, api_params):
        if self.meta.service_model.service_name == "dynamodb":
            calls[operation_name] += 1
        return original(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
    yield calls

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from engage.local.bench import DynamoDBCalls, count_dynamodb_calls

_users = itertools.count()


@pytest.fixture(autouse=True)
def _stack(stack):  # every integration test runs against DynamoDB Local
    return stack


@pytest.fixture
def user_id(request) -> str:
    """A fresh user per test: tests share one DynamoDB Local and never see each other's users."""
    return f"{request.node.name[:60]}-{next(_users)}"


@pytest.fixture
def held_pollers(stack) -> Iterator[None]:
    """The local stack's background pollers wait while the test runs, for a test that patches code they run
    too, or counts the calls it makes. stack.streams.drain() still delivers, on the test's own thread."""
    with stack.paused():
        yield


@pytest.fixture
def dynamodb_calls(held_pollers) -> Iterator[DynamoDBCalls]:
    """DynamoDB API calls by operation name (GetItem, TransactWriteItems, …) made during the test."""
    with count_dynamodb_calls() as calls:
        yield calls

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

_n = itertools.count()


@pytest.fixture
def user(request) -> str:
    """A fresh user per test: the tests share one local stack."""
    return f"e2e-{request.node.name[:40]}-{next(_n)}"


@pytest.fixture
def streams(stack) -> Any:
    """A DynamoDB Streams client on the local stack's DynamoDB Local."""
    import boto3

    return boto3.client("dynamodbstreams", endpoint_url=stack.dynamodb.endpoint, region_name="us-east-1",
                        aws_access_key_id="local", aws_secret_access_key="local")  # fmt: skip


_ITEM_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


@contextmanager
def recorded_aws_calls() -> Iterator[set[tuple[str, str]]]:
    """Every AWS call made meanwhile, in this process, as (IAM action, table name or queue URL). Hold the
    local stack's pollers (stack.paused()) around it, or their calls are recorded too."""
    import botocore.client

    calls: set[tuple[str, str]] = set()
    original = botocore.client.BaseClient._make_api_call

    def recording(client: Any, operation: str, params: dict[str, Any]) -> Any:
        service = client.meta.service_model.service_name
        if operation == "TransactWriteItems":  # IAM authorises each contained action on its table
            for item in params["TransactItems"]:
                ((kind, action),) = item.items()
                calls.add((f"dynamodb:{_ITEM_ACTIONS[kind]}", action["TableName"]))
        else:
            resource = (
                params.get("TableName") or params.get("QueueUrl") or next(iter(params.get("RequestItems", {})), "")
            )
            if "IndexName" in params:  # IAM grants an index on its own ARN
                resource += f"/index/{params['IndexName']}"
            calls.add((f"{service}:{'SendMessage' if operation == 'SendMessageBatch' else operation}", resource))
        return original(client, operation, params)

    botocore.client.BaseClient._make_api_call = recording
    try:
        yield calls
    finally:
        botocore.client.BaseClient._make_api_call = original


def assert_granted(stack: Any, function: str, calls: set[tuple[str, str]]) -> None:
    """Each recorded call is allowed by `function`'s IAM policy in template.yaml (least privilege, checked
    against what the code does)."""
    from tests.unit.test_template import _grants

    names = {**{name: logical for logical, name in stack.tables.items()},
             **{url: logical for logical, url in stack.queue_urls.items()}}  # fmt: skip

    def as_in_template(resource: str) -> str:
        table, _, index = resource.partition("/index/")
        return f"${{{names.get(table, table)}.Arn}}/index/{index}" if index else names.get(resource, resource)

    used = {(action, as_in_template(resource)) for action, resource in calls}
    assert used, function
    granted = _grants(stack.template.resources, function)
    assert used <= granted, f"{function} calls what its policy does not allow: {sorted(used - granted)}"

"""The local stream poller applies the template's FilterCriteria as Lambda does (on DynamoDB Local's streams)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import boto3
import pytest

from engage.local.server import HandlerPool
from engage.local.streams import StreamPoller
from engage.local.template import Function, load_template

REPO = Path(__file__).resolve().parents[2]

HANDLER = """
import json, pathlib

def lambda_handler(event, context):
    with pathlib.Path({log!r}).open("a") as out:
        for record in event["Records"]:
            out.write(json.dumps(record, default=str) + "\\n")
"""


@pytest.fixture
def table(stack):
    """A fresh table with a NEW_AND_OLD_IMAGES stream: (name, boto3 client)."""
    client = boto3.client("dynamodb", endpoint_url=stack.dynamodb.endpoint, region_name="us-east-1",
                          aws_access_key_id="local", aws_secret_access_key="local")  # fmt: skip
    name = f"streams-{uuid.uuid4().hex[:12]}"
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    yield name, client
    client.delete_table(TableName=name)


def poller(stack, table: str, tmp_path: Path, filters: tuple[str, ...]) -> tuple[StreamPoller, Path]:
    log = tmp_path / "records.jsonl"
    (tmp_path / "app.py").write_text(HANDLER.format(log=str(log)))
    pool = HandlerPool(Function("RecorderFunction", tmp_path, "app.lambda_handler", timeout=5))
    return StreamPoller(stack.dynamodb.endpoint, table, pool, tmp_path / "failed.jsonl", 100, filters), log


def delivered(log: Path) -> list[tuple[str, str]]:
    records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return [(r["eventName"], r["dynamodb"]["Keys"]["pk"]["S"]) for r in records]


def filters_of(function: str) -> tuple[str, ...]:
    return next(s.filters for s in load_template(REPO / "template.yaml").streams if s.function == function)


def test_given_notifys_insert_filter_then_only_inserts_reach_the_function_and_the_rest_is_passed_over(
    stack, table, tmp_path
):
    name, client = table
    stream, log = poller(stack, name, tmp_path, filters_of("NotifyFunction"))
    client.put_item(TableName=name, Item={"pk": {"S": "a"}})
    client.update_item(TableName=name, Key={"pk": {"S": "a"}}, UpdateExpression="SET n = :one",
                       ExpressionAttributeValues={":one": {"N": "1"}})  # fmt: skip
    client.delete_item(TableName=name, Key={"pk": {"S": "a"}})
    client.put_item(TableName=name, Item={"pk": {"S": "b"}})

    assert stream.poll() == 4  # all four consumed
    assert stream.poll() == 0
    assert delivered(log) == [("INSERT", "a"), ("INSERT", "b")]


def test_given_the_boards_filter_then_only_rows_with_a_rank_key_reach_the_function(stack, table, tmp_path):
    name, client = table
    stream, log = poller(stack, name, tmp_path, filters_of("BoardsFunction"))
    client.put_item(TableName=name, Item={"pk": {"S": "histogram"}})
    client.put_item(TableName=name, Item={"pk": {"S": "entry"}, "rank_key": {"S": "0000000042#x"}})
    client.update_item(TableName=name, Key={"pk": {"S": "entry"}}, UpdateExpression="SET rank_key = :k",
                       ExpressionAttributeValues={":k": {"S": "0000000043#x"}})  # fmt: skip

    stream.poll()
    assert delivered(log) == [("INSERT", "entry"), ("MODIFY", "entry")]


def test_given_no_filters_then_every_record_reaches_the_function(stack, table, tmp_path):
    name, client = table
    stream, log = poller(stack, name, tmp_path, ())
    client.put_item(TableName=name, Item={"pk": {"S": "a"}})
    client.delete_item(TableName=name, Key={"pk": {"S": "a"}})

    stream.poll()
    assert delivered(log) == [("INSERT", "a"), ("REMOVE", "a")]


def test_a_records_creation_time_reaches_the_function_in_epoch_seconds_as_lambda_sends_it(stack, table, tmp_path):
    # Before: the datetime boto3 reads went on as text ("2026-11-23 11:38:00+00:00"), which no Lambda sends
    name, client = table
    stream, log = poller(stack, name, tmp_path, ())
    client.put_item(TableName=name, Item={"pk": {"S": "a"}})

    stream.poll()
    [record] = [json.loads(line) for line in log.read_text().splitlines()]
    created = record["dynamodb"]["ApproximateCreationDateTime"]
    assert isinstance(created, int) and abs(created - time.time()) < 600
    assert f"table/{name}/stream/" in record["eventSourceARN"]

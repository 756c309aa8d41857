"""The sample events in events/ are what API Gateway sends; every one runs through its handler."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from engage.local.server import HandlerPool, LambdaContext

from ..conftest import REPO


@pytest.mark.parametrize(
    ("sample", "function"),
    [
        ("ingest-client.json", "IngestFunction"),
        ("ingest-server.json", "IngestFunction"),
        ("api-me.json", "ApiFunction"),
    ],
)
def test_sample_event_is_served_by_its_handler(stack, sample, function):
    event = json.loads((REPO / "events" / sample).read_text())
    if event.get("body"):  # the samples carry fixed dates; move them to now so the events still count
        body = json.loads(event["body"])
        for item in body["events"]:
            item["occurred_at"] = datetime.now(UTC).isoformat()
        event["body"] = json.dumps(body)

    result = HandlerPool(stack.template.functions[function]).invoke(event, LambdaContext(function, "sample"))

    assert result["statusCode"] == 200, result["body"]
    answer = json.loads(result["body"])
    if function == "IngestFunction":
        assert answer["rejected"] == 0 and answer["accepted"] + answer["duplicates"] == len(body["events"])
    else:
        assert answer["user_id"] == "user-123"


@pytest.mark.parametrize(
    ("sample", "function"),
    [
        ("notify-ledger-stream.json", "NotifyFunction"),
        ("boards-leaderboards-stream.json", "BoardsFunction"),
        ("deliver-sqs.json", "DeliverFunction"),
    ],
)
def test_sample_stream_and_queue_events_are_handled_without_a_failed_record(stack, sample, function):
    # The samples are what Lambda's event source mappings send (captured from the local stack); moved to now,
    # so the facts are fresh and the push still valid
    now = datetime.now(UTC)
    event = json.loads((REPO / "events" / sample).read_text())
    for record in event["Records"]:
        if "dynamodb" in record:
            image = record["dynamodb"]["NewImage"]
            for field in ("occurred_at", "received_at"):
                if field in image:
                    image[field] = {"S": now.strftime("%Y-%m-%dT%H:%M:%S.%f+0000")}
            record["dynamodb"]["ApproximateCreationDateTime"] = int(now.timestamp())
        else:
            job = json.loads(record["body"])
            record["body"] = json.dumps({**job, "valid_until": (now + timedelta(hours=1)).isoformat()})

    with stack.paused():  # the background pollers must not take this user's rows meanwhile
        result = HandlerPool(stack.template.functions[function]).invoke(event, LambdaContext(function, "sample"))

    assert result == {"batchItemFailures": []}

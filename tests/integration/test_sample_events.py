"""The sample events in events/ are what API Gateway sends; every one runs through its handler."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from ulid import ULID

from engage.api.models import DeviceIn
from engage.local.server import HandlerPool, LambdaContext
from engage.services.devices import register_device
from engage.services.inbox import my_inbox
from engage.store.leaderboards import stats

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


def _sample(name: str, user: str) -> dict:
    """A sample event of events/, for a user of the test's own."""
    return json.loads((REPO / "events" / name).read_text().replace("user-123", user))


def _invoke(stack, function: str, event: dict) -> dict:
    with stack.paused():  # the background pollers must not take this user's rows meanwhile
        return HandlerPool(stack.template.functions[function]).invoke(event, LambdaContext(function, "sample"))


# The samples below are what Lambda's event source mappings send (captured from the local stack). Each test
# moves its times to now and checks what the handler did, not only that it reported no failed record.


def test_the_notify_sample_puts_its_badge_message_in_the_inbox(stack, user_id):
    now = datetime.now(UTC)
    event = _sample("notify-ledger-stream.json", user_id)
    [record] = event["Records"]
    image = record["dynamodb"]["NewImage"]
    image["ts"] = {"S": str(ULID.from_datetime(now))}  # the facts' time, which their validity counts from
    for field in ("occurred_at", "received_at"):
        image[field] = {"S": now.strftime("%Y-%m-%dT%H:%M:%S.%f+0000")}

    assert _invoke(stack, "NotifyFunction", event) == {"batchItemFailures": []}
    assert [m.title for m in my_inbox({"sub": user_id}, 10, None).messages] == ["New badge: First Step"]


def test_the_deliver_sample_sends_its_push_to_the_users_phone(stack, user_id):
    token = f"sample-token-{user_id}".ljust(40, "x")[:64]
    register_device({"sub": user_id}, DeviceIn(device_id="phone", fcm_token=token, platform="android"))
    event = _sample("deliver-sqs.json", user_id)
    [record] = event["Records"]
    job = json.loads(record["body"])
    record["body"] = json.dumps({**job, "valid_until": (datetime.now(UTC) + timedelta(hours=1)).isoformat()})

    assert _invoke(stack, "DeliverFunction", event) == {"batchItemFailures": []}
    [sent] = stack.fcm.received_by(token)
    assert sent["message"]["notification"]["title"] == "New badge: First Step"


def test_the_boards_sample_counts_its_score_in_the_periods_histogram(stack, user_id):
    event = _sample("boards-leaderboards-stream.json", user_id)
    period = "weekly-xp#2099-W01"  # a period of this test's own
    event = json.loads(json.dumps(event).replace("weekly-xp#2026-W48", period))

    assert _invoke(stack, "BoardsFunction", event) == {"batchItemFailures": []}
    assert sum(stats(period, 10).histogram.values()) == 1

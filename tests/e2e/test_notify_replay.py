"""Stream batches notify gave up on are replayed from their failure records (`engage notify replay`).

Through the local stack: the event goes in over HTTP, the ledger row reaches DynamoDB Local's stream, and the
failure record Lambda would send is put on NotifyFailedBatchesQueue. The pollers are held, so the
only way the message can reach the inbox is the replay.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from engage.local.stack import failed_batches
from engage.services.replay import replay_failed_batches
from engage.store import queues

from .test_notifications import Phone


@pytest.fixture
def failed_batches_queue(stack):
    return stack.queue_urls["NotifyFailedBatchesQueue"]


def failure_record(streams: Any, stack: Any, user: str, table: str = "LedgerTable") -> dict[str, Any]:
    """What Lambda sends on failure for a batch holding the user's rows of `table` (the ledger's, by default):
    where they are in its stream, not what they are."""
    arn = boto3.client("dynamodb", endpoint_url=stack.dynamodb.endpoint, region_name="us-east-1",
                       aws_access_key_id="local", aws_secret_access_key="local",
                       ).describe_table(TableName=stack.tables[table])["Table"]["LatestStreamArn"]  # fmt: skip
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]  # fmt: skip
        mine = []
        while iterator:
            page = streams.get_records(ShardIterator=iterator)
            mine += [
                r for r in page["Records"] if r["dynamodb"].get("NewImage", {}).get("user_id", {}).get("S") == user
            ]
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
        if mine:
            return {
                "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 6},
                "version": "1.0",
                "DDBStreamBatchInfo": {
                    "shardId": shard["ShardId"],
                    "startSequenceNumber": mine[0]["dynamodb"]["SequenceNumber"],
                    "endSequenceNumber": mine[-1]["dynamodb"]["SequenceNumber"],
                    "batchSize": len(mine),
                    "streamArn": arn,
                },
            }
    raise AssertionError(f"no rows of {user} in the stream of {table}")


def queued(url: str) -> list[str]:
    """The bodies in the queue now (all received, then made visible again)."""
    held = _hold_all(url)
    for message in held:
        queues.release(url, message.receipt)
    return [message.body for message in held]


def _delete(url: str, body: str) -> None:
    for message in _hold_all(url):
        (queues.delete if message.body == body else queues.release)(url, message.receipt)


def _hold_all(url: str) -> list[queues.Incoming]:
    held: list[queues.Incoming] = []
    while batch := queues.receive(url, 30):
        held += batch
    return held


def test_given_a_batch_notify_gave_up_on_when_replayed_then_its_messages_reach_the_inbox_once(
    stack, user, streams, failed_batches_queue
):
    phone = Phone(stack, user)
    # Pushes paused: every message goes to the inbox only, so the stream, which sees the row again once the
    # pollers resume, has no delivery to repeat.
    phone.preferences(paused_until=(datetime.now(UTC) + timedelta(days=1)).isoformat())
    with stack.paused():  # notify does not see the row: as if it had failed on it
        phone.send(minutes=20, kind="run")  # the first workout: badge and level messages
        record = failure_record(streams, stack, user)
        delivery_letter = json.dumps({"message_id": "01KAS5N3J1X5Q7Y0D6Z8W00000", "user_id": user})
        twice = [queues.Outgoing(json.dumps(record))] * 2  # Lambda may send one more than once: safe to replay
        queues.send(failed_batches_queue, [*twice, queues.Outgoing(delivery_letter)])
        assert phone.inbox() == []

        replayed = replay_failed_batches(failed_batches_queue, streams)
        assert (replayed.batches, replayed.rows, replayed.left) == (2, 2, [])
        titles = sorted(message["title"] for message in phone.inbox())
        assert titles and any(title.startswith("New badge") for title in titles)

        again = replay_failed_batches(failed_batches_queue, streams)  # nothing left to replay
        assert again.batches == 0 and sorted(m["title"] for m in phone.inbox()) == titles
        left = queued(failed_batches_queue)
        assert delivery_letter in left and json.dumps(record) not in left  # what is not a failure record stays
        for body in left:  # tidy up after this test: other tests replay this queue
            if body == delivery_letter:
                _delete(failed_batches_queue, body)


def test_given_a_batch_the_stream_no_longer_holds_then_it_stays_in_the_queue_with_why(
    stack, user, streams, failed_batches_queue
):
    phone = Phone(stack, user)
    with stack.paused():
        phone.send(minutes=20, kind="run")
        record = failure_record(streams, stack, user)
        end = record["DDBStreamBatchInfo"]["endSequenceNumber"]
        gone = str(int(end) + 10**12).zfill(len(end))  # a batch past what the shard holds
        record["DDBStreamBatchInfo"].update(startSequenceNumber=gone, endSequenceNumber=gone)
        queues.send(failed_batches_queue, [queues.Outgoing(json.dumps(record))])

        replayed = replay_failed_batches(failed_batches_queue, streams)
        assert replayed.batches == 0 and len(replayed.left) == 1
        assert "no longer holds this batch" in replayed.left[0] and "Fix:" in replayed.left[0]
        assert json.dumps(record) in queued(failed_batches_queue)
        _delete(failed_batches_queue, json.dumps(record))


def test_given_notify_keeps_failing_on_a_batch_then_its_failure_record_is_queued_and_a_replay_recovers_it(
    stack, user, streams, failed_batches_queue, monkeypatch
):
    from engage.services import notify

    phone = Phone(stack, user).no_quiet_hours_now()
    real_prepare = notify.prepare

    def broken_for_this_user(config, state, facts, now):
        if state.user_id == user:
            raise RuntimeError("a bug in a trigger, say")
        return real_prepare(config, state, facts, now)

    stack.streams.drain()  # other tests' rows first: only this test's rows meet the bug
    set_aside = failed_batches(stack.prefix)
    before = set_aside.read_text() if set_aside.exists() else ""
    monkeypatch.setattr(notify, "prepare", broken_for_this_user)
    phone.send(minutes=20, kind="run")
    stack.streams.drain()  # notify fails on the batch until the stream mapping gives up on it
    assert phone.inbox() == []
    letters = [json.loads(body) for body in queued(failed_batches_queue)]
    assert any("DDBStreamBatchInfo" in letter for letter in letters)

    monkeypatch.setattr(notify, "prepare", real_prepare)  # the bug fixed and deployed
    with stack.paused():
        replayed = replay_failed_batches(failed_batches_queue, streams)
    assert replayed.left == [] and replayed.batches >= 1
    assert any(message["title"].startswith("New badge") for message in phone.inbox())
    # The rows set aside were this test's doing (its user's, and rank_lost facts its event caused for others,
    # which came after it in the failed batch); a guard test checks that nothing else ever is.
    set_aside.write_text(before)

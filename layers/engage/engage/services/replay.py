"""Replay the stream batches a function gave up on: no committed fact stays without its messages, and no
score change without its histogram move and rank_lost facts.

When a stream batch keeps failing (the mapping's MaximumRetryAttempts), Lambda sends a failure record to the
function's failed-batches queue (whose alarm notifies on each one). The record says where the batch is in the
stream (shard, first and last sequence number), not what it held. The stream keeps records for 24 hours:
within that time, replay reads each such batch again and hands it to what the function would have run:
- notify (NotifyFailedBatchesQueue): the batch's new ledger rows, one user at a time. Safe however often:
  message ids derive from the facts, and a message already stored keeps its decision.
- boards (BoardsFailedBatchesQueue): each score change in stream order. Safe however often: a change moves
  the histogram once (a marker is written with the move) and each rank_lost fact is a conditional put.
Anything else found in the queue is left where it is.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..store import queues
from .notify import LedgerRow, Tally, handle_rows
from .overtakes import score_changed

log = logging.getLogger(__name__)

# How long a received failure record stays hidden while replay works through the queue (then it is released),
# and how long each receive waits: an empty long poll means nothing visible is left.
HOLD_SECONDS = 300
WAIT_SECONDS = 2
# Empty pages of a shard that replay reads past before it decides the batch's last record is not coming.
EMPTY_PAGES = 5


@dataclass
class Replayed:
    """What replay did: batches replayed (and deleted from the queue), rows handled, the batches it left in the
    queue with why; for notify the decisions taken, for boards the rank_lost facts written."""

    batches: int = 0
    rows: int = 0
    tally: Tally = field(default_factory=Tally)
    rank_lost: int = 0
    left: list[str] = field(default_factory=list)


def replay_failed_batches(failed_batches_url: str, streams: Any) -> Replayed:
    """Replay every failure record in notify's queue (`streams`: a boto3 dynamodbstreams client)."""
    return _replay_queue(failed_batches_url, streams, _notify_rows)


def replay_failed_board_batches(failed_batches_url: str, streams: Any) -> Replayed:
    """Replay every failure record in the boards function's queue (`streams`: a boto3 dynamodbstreams client)."""
    return _replay_queue(failed_batches_url, streams, _score_changes)


# Hands a batch's records to what the function would have run; returns the problems met (none: all handled).
Handler = Callable[[list[dict[str, Any]], Replayed], list[str]]


def _replay_queue(failed_batches_url: str, streams: Any, handle: Handler) -> Replayed:
    replayed = Replayed()
    kept: dict[str, str] = {}  # message id → latest receipt, of the messages that stay in the queue
    done: set[str] = set()
    while received := queues.receive(failed_batches_url, HOLD_SECONDS, WAIT_SECONDS):
        for message in received:
            if message.message_id in kept:
                kept[message.message_id] = message.receipt  # its hold ran out and it came again: seen already
        fresh = [m for m in received if m.message_id not in kept and m.message_id not in done]
        if not fresh:
            break
        for message in fresh:
            batch = _batch_info(message.body)
            if batch is None:  # not a failure record (sent there by hand?): not replay's to handle
                kept[message.message_id] = message.receipt
                continue
            problems = _replay(streams, batch, handle, replayed)
            if problems:  # the batch stays in the queue, with why; running replay again retries it
                kept[message.message_id] = message.receipt
                where = f"{batch.get('shardId')} from {batch.get('startSequenceNumber')}"
                replayed.left += [f"{where}: {problem}" for problem in problems]
                continue
            queues.delete(failed_batches_url, message.receipt)
            done.add(message.message_id)
            replayed.batches += 1
    for receipt in kept.values():
        queues.release(failed_batches_url, receipt)
    return replayed


def _replay(streams: Any, batch: dict[str, Any], handle: Handler, replayed: Replayed) -> list[str]:
    """Read the batch again from the stream and hand it on; the problems met (none: all handled)."""
    try:
        records = _stream_records(streams, batch)
    except Exception as exc:
        log.exception("could not read stream batch %s", batch.get("startSequenceNumber"))
        return [str(exc)]
    return handle(records, replayed)


def _notify_rows(records: list[dict[str, Any]], replayed: Replayed) -> list[str]:
    """The batch's new ledger rows to notify, one user at a time (a user whose rows fail stays to replay)."""
    rows, problems = [], []
    for record in records:
        if record.get("eventName") != "INSERT":  # notify's filter: new rows only
            continue
        try:
            rows.append(LedgerRow.from_image(_image(record, "NewImage")))
        except (KeyError, ValueError) as exc:
            problems.append(f"unreadable ledger row {record['dynamodb']['SequenceNumber']}: {exc!r}")
    by_user: dict[str, list[LedgerRow]] = {}
    for row in rows:  # all of a user's rows together, as notify takes them (they need not be adjacent)
        by_user.setdefault(row.user_id, []).append(row)
    for user_id, group in by_user.items():
        try:
            handle_rows(group, tally=replayed.tally)
        except Exception as exc:  # this user stays to be replayed again; the others go on
            log.exception("replay failed for user %s", user_id)
            problems.append(f"user {user_id}: {exc}")
    replayed.rows += len(rows)
    return problems


def _score_changes(records: list[dict[str, Any]], replayed: Replayed) -> list[str]:
    """Each record of the leaderboards stream to the boards function's handling, in stream order."""
    problems = []
    for record in records:
        images, sequence = record["dynamodb"], record["dynamodb"]["SequenceNumber"]
        if "rank_key" not in images.get("NewImage", {}):  # as boards' filter: no histogram items, no removals
            continue
        try:
            old = _image(record, "OldImage") if "OldImage" in images else None
            replayed.rank_lost += score_changed(old, _image(record, "NewImage"))
        except Exception as exc:  # the batch stays to be replayed again; the other records go on
            log.exception("replaying score change %s failed", sequence)
            problems.append(f"score change {sequence}: {exc}")
        replayed.rows += 1
    return problems


def _batch_info(body: str) -> dict[str, Any] | None:
    try:
        info = json.loads(body).get("DDBStreamBatchInfo")
    except (ValueError, AttributeError):
        return None
    return info if isinstance(info, dict) else None


def _image(record: dict[str, Any], which: str) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    deserialize = TypeDeserializer().deserialize
    return {name: deserialize(value) for name, value in record["dynamodb"][which].items()}


def _stream_records(streams: Any, batch: dict[str, Any]) -> list[dict[str, Any]]:
    """The batch's records, in stream order (read again from the stream, which keeps 24 hours)."""
    last = int(batch["endSequenceNumber"])
    iterator = streams.get_shard_iterator(
        StreamArn=batch["streamArn"],
        ShardId=batch["shardId"],
        ShardIteratorType="AT_SEQUENCE_NUMBER",
        SequenceNumber=batch["startSequenceNumber"],
    )["ShardIterator"]
    records: list[dict[str, Any]] = []
    empty = 0
    while iterator and empty < EMPTY_PAGES:
        page = streams.get_records(ShardIterator=iterator, Limit=1000)
        empty = 0 if page["Records"] else empty + 1
        for record in page["Records"]:
            sequence = int(record["dynamodb"]["SequenceNumber"])
            if sequence > last:
                return records
            records.append(record)
            if sequence == last:
                return records
        iterator = page.get("NextShardIterator")
    raise LookupError(
        f"the stream no longer holds this batch up to {last} (it keeps records 24 hours): its facts stay in the "
        "ledger without messages. Fix: note them, then delete this record from the queue"
    )

"""Replay the ledger-stream batches notify gave up on: no committed fact stays without its messages.

When a stream batch keeps failing (the mapping's MaximumRetryAttempts), Lambda sends a failure record to
NotificationsDeadLetterQueue. The record says where the batch is in the stream (shard, first and last sequence
number), not what it held. The stream keeps records for 24 hours: within that time, replay reads each such
batch again and hands its new ledger rows to notify, one user at a time, as the function would. Replaying is
safe however often: message ids derive from the facts, and a message already stored keeps its decision.
Delivery jobs and held messages in the same queue are left where they are.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from ..store import queues
from .notify import LedgerRow, Tally, handle_rows

log = logging.getLogger(__name__)

# How long a received dead letter stays hidden while replay works through the queue (then it is released).
HOLD_SECONDS = 300
# Empty pages of a shard that replay reads past before it decides the batch's last record is not coming.
EMPTY_PAGES = 5


@dataclass
class Replayed:
    """What replay did: batches replayed (and deleted from the queue), rows handled, the decisions taken, and
    the batches it left in the queue with why."""

    batches: int = 0
    rows: int = 0
    tally: Tally = field(default_factory=Tally)
    left: list[str] = field(default_factory=list)


def replay_failed_batches(dead_letter_url: str, streams: Any) -> Replayed:
    """Replay every stream failure record in the queue (`streams`: a boto3 dynamodbstreams client)."""
    replayed, others = Replayed(), []
    while received := queues.receive(dead_letter_url, HOLD_SECONDS):  # each hidden until the end: read once
        for message in received:
            batch = _batch_info(message.body)
            if batch is None:
                others.append(message.receipt)  # a delivery job or held message: not replay's to handle
                continue
            try:
                rows = _ledger_rows(streams, batch)
                for _, group in groupby(rows, key=lambda row: row.user_id):
                    handle_rows(list(group), tally=replayed.tally)
            except Exception as exc:  # this batch stays in the queue, with why; the others go on
                log.exception("could not replay stream batch %s", batch.get("startSequenceNumber"))
                replayed.left.append(f"{batch.get('shardId')} from {batch.get('startSequenceNumber')}: {exc}")
                others.append(message.receipt)
                continue
            queues.delete(dead_letter_url, message.receipt)
            replayed.batches += 1
            replayed.rows += len(rows)
    for receipt in others:
        queues.release(dead_letter_url, receipt)
    return replayed


def _batch_info(body: str) -> dict[str, Any] | None:
    try:
        info = json.loads(body).get("DDBStreamBatchInfo")
    except (ValueError, AttributeError):
        return None
    return info if isinstance(info, dict) else None


def _ledger_rows(streams: Any, batch: dict[str, Any]) -> list[LedgerRow]:
    """The new ledger rows of the batch, in stream order (read again from the stream, which keeps 24 hours)."""
    from boto3.dynamodb.types import TypeDeserializer

    deserialize = TypeDeserializer().deserialize
    last = int(batch["endSequenceNumber"])
    iterator = streams.get_shard_iterator(
        StreamArn=batch["streamArn"],
        ShardId=batch["shardId"],
        ShardIteratorType="AT_SEQUENCE_NUMBER",
        SequenceNumber=batch["startSequenceNumber"],
    )["ShardIterator"]
    rows: list[LedgerRow] = []
    empty = 0
    while iterator and empty < EMPTY_PAGES:
        page = streams.get_records(ShardIterator=iterator, Limit=1000)
        empty = 0 if page["Records"] else empty + 1
        for record in page["Records"]:
            sequence = int(record["dynamodb"]["SequenceNumber"])
            if sequence > last:
                return rows
            if record.get("eventName") == "INSERT":
                image = {name: deserialize(value) for name, value in record["dynamodb"]["NewImage"].items()}
                rows.append(LedgerRow.from_image(image))
            if sequence == last:
                return rows
        iterator = page.get("NextShardIterator")
    raise LookupError(f"the stream no longer holds the batch up to {last} (it keeps 24 hours): replay it by hand")

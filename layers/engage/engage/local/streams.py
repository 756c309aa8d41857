"""DynamoDB stream → function, as Lambda's event source mapping does it, for the local stack.

Reads DynamoDB Local's stream of a table, hands batches to the function with the DynamoDB stream event
payload, and honours partial batch responses: the batch is retried from the first failed record, up to
MAX_ATTEMPTS, after which the records are set aside in a failed-batches file (for people to read) and, as
Lambda does, a failure record naming the batch's place in the stream goes to the mapping's OnFailure queue
(what `engage notify replay` reads). The
mapping's FilterCriteria apply as in Lambda: a record that matches none of the patterns is passed over
(matched with moto's implementation of EventBridge patterns, the syntax Lambda's filters use).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import boto3
from botocore.exceptions import ClientError

from .server import DEFAULT_TIMEOUT, HandlerPool, LambdaContext

MAX_ATTEMPTS = 5
# Rounds in a row that must find nothing before drain() calls the streams quiet.
QUIET_ROUNDS = 2
P = TypeVar("P")  # one event source mapping's poller


class StreamPoller:
    """One table's stream feeding one function."""

    def __init__(
        self,
        endpoint: str,
        table: str,
        pool: HandlerPool,
        failed_log: Path,
        batch_size: int = 100,
        filters: Sequence[str] = (),
        on_failure: tuple[str, str] | None = None,  # (SQS endpoint, queue URL) of DestinationConfig.OnFailure
    ) -> None:
        session = boto3.session.Session(
            aws_access_key_id="local", aws_secret_access_key="local", region_name="us-east-1"
        )
        self._streams = session.client("dynamodbstreams", endpoint_url=endpoint)
        self._arn = session.client("dynamodb", endpoint_url=endpoint).describe_table(TableName=table)["Table"][
            "LatestStreamArn"
        ]
        self._pool = pool
        self._failed_log = failed_log
        self._batch_size = batch_size
        self._patterns = [_pattern(text) for text in filters]
        self._on_failure = on_failure
        self._shards: dict[str, _Shard] = {}
        self._lock = threading.Lock()

    @property
    def retrying(self) -> bool:
        """Whether a batch waits to be retried (drain() keeps polling while one does)."""
        return any(shard.attempts for shard in self._shards.values())

    def poll(self) -> int:
        """Deliver what the stream holds now; returns how many records the function took."""
        with self._lock:
            self._discover_shards()
            return sum(self._poll_shard(shard_id, shard) for shard_id, shard in list(self._shards.items()))

    def _poll_shard(self, shard_id: str, shard: _Shard) -> int:
        """Deliver the shard's next batch; returns how many records it consumed (delivered or passed over)."""
        if shard.closed:
            return 0
        try:
            response = self._streams.get_records(ShardIterator=self._iterator(shard_id, shard), Limit=self._batch_size)
        except ClientError:  # an expired or trimmed iterator: again at once, after the last delivered record
            shard.iterator = None  # (returning 0 here would make a drain() take the shard for quiet)
            response = self._streams.get_records(ShardIterator=self._iterator(shard_id, shard), Limit=self._batch_size)
        records = response.get("Records", [])
        if not records:
            shard.iterator = response.get("NextShardIterator")
            shard.closed = shard.iterator is None
            return 0
        matching = [record for record in records if self._matches(record)]
        failed_at = self._deliver(matching) if matching else None
        if failed_at is not None and shard.attempts < MAX_ATTEMPTS:
            # Lambda's rule: retry from the first failed record, the rest with it; records handled first move
            # the checkpoint, and what follows it is a new batch with retries of its own
            shard.attempts = shard.attempts + 1 if failed_at == 0 else 1
            shard.iterator = None
            if failed_at:
                shard.last_sequence = matching[failed_at - 1]["dynamodb"]["SequenceNumber"]
            return failed_at
        if failed_at is not None:
            self._set_aside(matching[failed_at:])
            self._report_failure(shard_id, matching[failed_at:])
        shard.attempts = 0
        shard.iterator = response.get("NextShardIterator")
        shard.last_sequence = records[-1]["dynamodb"]["SequenceNumber"]
        return len(records)

    def _matches(self, record: dict[str, Any]) -> bool:
        if not self._patterns:
            return True
        plain = json.loads(json.dumps(record, default=str))
        return any(pattern.matches_event(plain) for pattern in self._patterns)

    def _iterator(self, shard_id: str, shard: _Shard) -> str:
        if shard.iterator is None:
            where: dict[str, Any] = (
                {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": shard.last_sequence}
                if shard.last_sequence
                else {"ShardIteratorType": "TRIM_HORIZON"}
            )
            shard.iterator = self._streams.get_shard_iterator(StreamArn=self._arn, ShardId=shard_id, **where)[
                "ShardIterator"
            ]
        return shard.iterator

    def _discover_shards(self) -> None:
        start: dict[str, str] = {}
        while True:  # DescribeStream pages its shards (100 at a time)
            description = self._streams.describe_stream(StreamArn=self._arn, **start)["StreamDescription"]
            for shard in description["Shards"]:
                self._shards.setdefault(shard["ShardId"], _Shard())
            if not description.get("LastEvaluatedShardId"):
                return
            start = {"ExclusiveStartShardId": description["LastEvaluatedShardId"]}

    def _deliver(self, records: list[dict[str, Any]]) -> int | None:
        """Invoke the function; the index of the first record it reported failed (0 if it crashed), or None."""
        event = {"Records": [_as_lambda_sends(record, self._arn) for record in records]}
        try:
            deadline = time.monotonic() + (self._pool.function.timeout or DEFAULT_TIMEOUT)
            context = LambdaContext("stream", "local", deadline=deadline)
            answer = self._pool.invoke(json.loads(json.dumps(event, default=str)), context)
        except Exception as exc:  # a crashed invocation fails the whole batch, as in Lambda
            print(f"[local-streams] the function raised {exc!r}; the batch will be retried")
            return 0
        failures = {item["itemIdentifier"] for item in (answer or {}).get("batchItemFailures", [])}
        for index, record in enumerate(records):
            if record["dynamodb"]["SequenceNumber"] in failures:
                return index
        return None

    def _report_failure(self, shard_id: str, records: list[dict[str, Any]]) -> None:
        """Lambda's failure record for a batch it gave up on: where the batch is in the stream, not its records."""
        if self._on_failure is None:
            return
        endpoint, url = self._on_failure
        record = {
            "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": MAX_ATTEMPTS + 1},
            "version": "1.0",
            "DDBStreamBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
                "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
                "batchSize": len(records),
                "streamArn": self._arn,
            },
        }
        sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="local", aws_secret_access_key="local")  # fmt: skip
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(record))

    def _set_aside(self, records: list[dict[str, Any]]) -> None:
        self._failed_log.parent.mkdir(parents=True, exist_ok=True)
        with open(self._failed_log, "a", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, default=str) + "\n")


def _as_lambda_sends(record: dict[str, Any], arn: str) -> dict[str, Any]:
    """A stream record as Lambda hands it over: with its stream's ARN, and the creation time in epoch seconds
    (boto3 reads it as a datetime)."""
    change = dict(record["dynamodb"])
    created = change.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        change["ApproximateCreationDateTime"] = int(created.timestamp())
    return {**record, "dynamodb": change, "eventSourceARN": arn}


def _pattern(text: str) -> Any:
    from moto.events.models import EventPattern  # moto is part of the local stack (its SQS server)

    return EventPattern.load(text)


@dataclass
class _Shard:
    iterator: str | None = None
    last_sequence: str | None = None  # of the last record delivered (or set aside)
    attempts: int = 0  # of the batch waiting at the head of the shard
    closed: bool = False


class BackgroundPolling(Generic[P]):
    """Event source mappings polled on a background thread, which a shared lock can hold (paused())."""

    name = "local-pollers"

    def __init__(self, pollers: list[P], interval: float = 0.5, pause: threading.RLock | None = None) -> None:
        self.pollers = pollers
        self._interval = interval
        self._stop = threading.Event()
        self._pause = pause or threading.RLock()  # the local stack shares one between streams and queues
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def tick(self) -> None:
        """One round of polling (subclasses)."""
        raise NotImplementedError

    def start(self) -> None:
        if self.pollers:  # a template without such mappings needs no thread
            self._thread.start()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Hold the background polling (e.g. while a test patches botocore process-wide with moto)."""
        with self._pause:
            yield

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                with self._pause:
                    self.tick()
            except Exception as exc:  # keep polling: a local stack should survive a bad batch
                print(f"[{self.name}] {exc!r}")


class StreamPollers(BackgroundPolling[StreamPoller]):
    """Every stream mapping of the template, polled in the background (and on demand with drain())."""

    name = "local-streams"

    def tick(self) -> None:
        self.drain(rounds=1)

    def drain(self, rounds: int = 10_000) -> int:
        """Poll until the streams are empty and no batch waits for a retry: what a test calls before checking.

        Quiet must hold for two rounds in a row: a stream may answer one page with no records although
        more follow (DynamoDB Streams documents this), and one such page must not end the drain.
        """
        total, quiet = 0, 0
        for _ in range(rounds):
            delivered = sum(poller.poll() for poller in self.pollers)
            total += delivered
            quiet = quiet + 1 if not delivered and not any(poller.retrying for poller in self.pollers) else 0
            if quiet >= min(QUIET_ROUNDS, rounds):
                break
        return total

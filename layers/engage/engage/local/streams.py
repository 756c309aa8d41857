"""DynamoDB stream → function, as Lambda's event source mapping does it, for the local stack.

Reads DynamoDB Local's stream of a table, hands batches to the function with the DynamoDB stream event
payload, and honours partial batch responses: the batch is retried from the first failed record, up to
MAX_ATTEMPTS, after which the records are set aside in a failed-batches file (the DLQ's stand-in).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import boto3

from .server import HandlerPool, LambdaContext

MAX_ATTEMPTS = 5


class StreamPoller:
    """One table's stream feeding one function."""

    def __init__(self, endpoint: str, table: str, pool: HandlerPool, failed_log: Path, batch_size: int = 100) -> None:
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
        self._iterators: dict[str, str | None] = {}
        self._attempts = 0
        self._lock = threading.Lock()

    def poll(self) -> int:
        """Deliver what the stream holds now; returns how many records the function took."""
        with self._lock:
            self._discover_shards()
            delivered = 0
            for shard, iterator in list(self._iterators.items()):
                if iterator is None:
                    continue
                response = self._streams.get_records(ShardIterator=iterator, Limit=self._batch_size)
                records = response.get("Records", [])
                if not records:
                    self._iterators[shard] = response.get("NextShardIterator")
                    continue
                failed_at = self._deliver(records)
                if failed_at is None or self._attempts >= MAX_ATTEMPTS:
                    if failed_at is not None:
                        self._set_aside(records[failed_at:])
                    self._attempts = 0
                    self._iterators[shard] = response.get("NextShardIterator")
                    delivered += len(records)
                else:  # retry from the first failed record next time
                    self._attempts += 1
                    sequence = records[failed_at]["dynamodb"]["SequenceNumber"]
                    self._iterators[shard] = self._streams.get_shard_iterator(
                        StreamArn=self._arn, ShardId=shard, ShardIteratorType="AT_SEQUENCE_NUMBER",
                        SequenceNumber=sequence,
                    )["ShardIterator"]  # fmt: skip
                    delivered += failed_at
            return delivered

    def _discover_shards(self) -> None:
        for shard in self._streams.describe_stream(StreamArn=self._arn)["StreamDescription"]["Shards"]:
            if shard["ShardId"] not in self._iterators:
                self._iterators[shard["ShardId"]] = self._streams.get_shard_iterator(
                    StreamArn=self._arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]

    def _deliver(self, records: list[dict[str, Any]]) -> int | None:
        """Invoke the function; the index of the first record it reported failed, or None."""
        event = {"Records": [{**record, "eventSourceARN": self._arn} for record in records]}
        answer = self._pool.invoke(json.loads(json.dumps(event, default=str)), LambdaContext("stream", "local"))
        failures = {item["itemIdentifier"] for item in (answer or {}).get("batchItemFailures", [])}
        for index, record in enumerate(records):
            if record["dynamodb"]["SequenceNumber"] in failures:
                return index
        return None

    def _set_aside(self, records: list[dict[str, Any]]) -> None:
        self._failed_log.parent.mkdir(parents=True, exist_ok=True)
        with open(self._failed_log, "a", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, default=str) + "\n")


class StreamPollers:
    """Every stream mapping of the template, polled in the background (and on demand with drain())."""

    def __init__(self, pollers: list[StreamPoller], interval: float = 0.5) -> None:
        self._pollers = pollers
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="local-streams", daemon=True)

    def start(self) -> None:
        if self._pollers:
            self._thread.start()

    def drain(self, rounds: int = 10_000) -> int:
        """Poll until the streams are empty (or `rounds` polls): what a test calls before checking effects."""
        total = 0
        for _ in range(rounds):
            delivered = sum(poller.poll() for poller in self._pollers)
            total += delivered
            if not delivered:
                break
        return total

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.drain(rounds=1)
            except Exception as exc:  # keep polling: a local stack should survive a bad batch
                print(f"[local-streams] {exc!r}")

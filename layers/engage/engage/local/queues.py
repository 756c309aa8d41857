"""SQS queue → function, as Lambda's event source mapping does it, for the local stack.

SQS itself is moto's server, in a child process of its own: `mock_aws` (which unit and integration tests
use in this same process) resets every in-process moto backend when it starts and stops, and would wipe
the stack's queues. moto keeps SQS's rules that matter here: visibility timeouts, DelaySeconds, receive
counts, and the RedrivePolicy (a message received more than maxReceiveCount times moves to the dead-letter
queue on the next receive, as in AWS). Lambda's side is ours: QueuePoller receives a batch, invokes the
function with the SQS event payload, and deletes what succeeded (all of it, or all but the
batchItemFailures); what failed comes back after the visibility timeout.
"""

from __future__ import annotations

import base64
import logging
import os
import select
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import boto3

from .dynamodb_local import cache_root
from .server import DEFAULT_TIMEOUT, LOCAL_ACCOUNT, HandlerPool, LambdaContext
from .streams import BackgroundPolling
from .template import Template

REGION = "us-east-1"
RECEIVE_MAX = 10  # SQS's limit per ReceiveMessage and per DeleteMessageBatch
_COUNTS = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed")


def sqs_client(endpoint: str) -> Any:
    session = boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name=REGION)
    return session.client("sqs", endpoint_url=endpoint)


class SqsServer:
    """moto's server on 127.0.0.1 in a child process; `spawn()` returns at once, `wait_ready()` gives the URL.

    The child exits when its stdin closes, so it never outlives the process that started it.
    """

    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log
        self.endpoint = ""

    @classmethod
    def spawn(cls) -> SqsServer:
        log = cache_root() / "local" / f"sqs-{os.getpid()}-{uuid.uuid4().hex[:8]}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "engage.local.queues"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=output,
                env={**os.environ, "MOTO_ACCOUNT_ID": LOCAL_ACCOUNT},
            )  # fmt: skip
        return cls(process, log)

    def wait_ready(self, timeout: float = 30.0) -> str:
        """The endpoint URL, once the child has printed its port."""
        if self.endpoint:
            return self.endpoint
        assert self.process.stdout is not None
        readable, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline().strip() if readable else b""
        if not line.isdigit():
            self.stop()
            raise RuntimeError(f"the local SQS server did not start: {self.log.read_text(errors='replace')[-2000:]}")
        self.endpoint = f"http://127.0.0.1:{int(line)}"
        return self.endpoint

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()  # the child's signal to stop
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()
        self.log.unlink(missing_ok=True)


def create_queues(template: Template, endpoint: str, prefix: str) -> dict[str, str]:
    """Create every AWS::SQS::Queue of the template, dead-letter queues first; logical id → queue URL."""
    client = sqs_client(endpoint)
    urls: dict[str, str] = {}
    arns: dict[str, str] = {}
    pending = dict(template.queues)
    while pending:
        ready = [q for q in pending.values() if q.dead_letter_queue is None or q.dead_letter_queue in arns]
        if not ready:
            raise ValueError(f"queues whose dead-letter queue is not a queue of the template: {sorted(pending)}")
        for queue in ready:
            name = f"{prefix}-{queue.logical_id.lower()}"
            attributes = queue.attributes(arns.get(queue.dead_letter_queue or ""))
            urls[queue.logical_id] = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
            arns[queue.logical_id] = queue_arn(client, urls[queue.logical_id])
            del pending[queue.logical_id]
    return urls


def queue_arn(client: Any, url: str) -> str:
    arn: str = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return arn


def peek(endpoint: str, url: str) -> list[dict[str, Any]]:
    """Every message in a queue, left in it: `{"message_id", "body", "attributes", "receive_count"}`, where
    `attributes` holds the message attributes' values (e.g. a dead letter's `reason`).

    Receives everything (hidden for a moment, so that each receive returns new messages), then makes it
    all visible again.
    """
    client = sqs_client(endpoint)
    seen: dict[str, dict[str, Any]] = {}
    handles: list[str] = []
    while True:
        got = client.receive_message(
            QueueUrl=url, MaxNumberOfMessages=RECEIVE_MAX, VisibilityTimeout=30,
            AttributeNames=["All"], MessageAttributeNames=["All"],
        ).get("Messages", [])  # fmt: skip
        if not got:
            break
        for message in got:
            handles.append(message["ReceiptHandle"])
            seen[message["MessageId"]] = {
                "message_id": message["MessageId"],
                "body": message["Body"],
                "attributes": {
                    name: value.get("StringValue", value.get("BinaryValue"))
                    for name, value in message.get("MessageAttributes", {}).items()
                },
                "receive_count": int(message["Attributes"]["ApproximateReceiveCount"]),
            }
    for start in range(0, len(handles), RECEIVE_MAX):
        entries = [
            {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
            for i, handle in enumerate(handles[start : start + RECEIVE_MAX])
        ]
        client.change_message_visibility_batch(QueueUrl=url, Entries=entries)
    return list(seen.values())


class QueuePoller:
    """One queue feeding one function, with Lambda's SQS batch semantics."""

    def __init__(
        self, endpoint: str, queue_url: str, pool: HandlerPool, batch_size: int = 10, partial_failures: bool = True
    ) -> None:
        self._sqs = sqs_client(endpoint)
        self.url = queue_url
        self.name = queue_url.rsplit("/", 1)[-1]
        self.arn = queue_arn(self._sqs, queue_url)
        self._pool = pool
        self._batch_size = batch_size
        self._partial_failures = partial_failures
        self._lock = threading.Lock()  # one batch at a time: drain() and the background thread never split one

    def poll(self) -> int:
        """Deliver one batch of what is visible now; returns how many messages the function was given."""
        with self._lock:
            messages = self._receive()
            if messages:
                self._deliver(messages)
            return len(messages)

    def counts(self, names: Sequence[str] = _COUNTS) -> dict[str, int]:
        """Visible, in-flight and delayed messages (all 0: nothing more will reach the function)."""
        attributes = self._sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=list(names))["Attributes"]
        return {name: int(attributes[name]) for name in names}

    def _receive(self) -> list[dict[str, Any]]:
        """Up to batch_size messages, 10 per ReceiveMessage, as Lambda's poller gathers a batch."""
        batch: dict[str, dict[str, Any]] = {}
        while len(batch) < self._batch_size:
            got = self._sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=min(RECEIVE_MAX, self._batch_size - len(batch)),
                AttributeNames=["All"], MessageAttributeNames=["All"],
            ).get("Messages", [])  # fmt: skip
            fresh = [m for m in got if m["MessageId"] not in batch]
            if not fresh:
                break
            batch.update((m["MessageId"], m) for m in fresh)
        return list(batch.values())

    def _deliver(self, messages: list[dict[str, Any]]) -> None:
        event = {"Records": [self._record(message) for message in messages]}
        function = self._pool.function
        deadline = time.monotonic() + (function.timeout or DEFAULT_TIMEOUT)
        try:
            answer = self._pool.invoke(event, LambdaContext(function.logical_id, str(uuid.uuid4()), deadline=deadline))
        except Exception as exc:  # a crashed invocation fails the whole batch, as in Lambda
            print(f"[local-queues] {function.logical_id} raised {exc!r}; {self.name} gets the batch back later")
            return
        failed = self._failures(answer, {m["MessageId"] for m in messages})
        done = [m["ReceiptHandle"] for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), RECEIVE_MAX):
            entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(done[start : start + RECEIVE_MAX])]
            self._sqs.delete_message_batch(QueueUrl=self.url, Entries=entries)

    def _failures(self, answer: Any, ids: set[str]) -> set[str]:
        """The message ids to leave in the queue, read from a partial batch response as Lambda reads it."""
        if not self._partial_failures or not isinstance(answer, dict):
            return set()
        failed = {item.get("itemIdentifier") if isinstance(item, dict) else None
                  for item in answer.get("batchItemFailures") or []}  # fmt: skip
        if not failed <= ids:  # an empty or unknown identifier: Lambda fails the whole batch
            print(f"[local-queues] {self._pool.function.logical_id} reported unknown failures {failed - ids}")
            return ids
        return {item for item in failed if item is not None}

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        """One record of the Lambda SQS event, in Lambda's spelling (camelCase, lower-case attribute keys)."""
        record = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": {
                name: _lambda_attribute(value) for name, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": self.arn,
            "awsRegion": REGION,
        }
        if "MD5OfMessageAttributes" in message:
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        return record


def _lambda_attribute(value: dict[str, Any]) -> dict[str, Any]:
    """An SQS message attribute as Lambda passes it (binary values base64-encoded)."""
    attribute: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode("ascii")
    return attribute


class QueuePollers(BackgroundPolling[QueuePoller]):
    """Every SQS mapping of the template, polled in the background (and on demand with drain())."""

    name = "local-queues"

    def tick(self) -> None:
        self.poll()

    def poll(self) -> int:
        """One batch from each queue; how many messages the functions were given."""
        return sum(poller.poll() for poller in self.pollers)

    def drain(self, timeout: float = 30, delayed: bool = True) -> int:
        """Poll until no queue holds a visible, in-flight or delayed message: what a test calls before checking.

        Waits out delays and visibility timeouts (a failed message comes back, or moves to its dead-letter
        queue); raises TimeoutError naming the queues still busy after `timeout` seconds. `delayed=False`
        leaves delayed messages to the background polling (a quiet-hours deferral may wait for minutes).
        """
        counted = _COUNTS if delayed else _COUNTS[:2]
        deadline = time.monotonic() + timeout
        total = 0
        with self._pause:  # the background thread waits: what drain() returns is all there is
            while True:
                delivered = self.poll()
                total += delivered
                busy = {} if delivered else {p.name: c for p in self.pollers if any((c := p.counts(counted)).values())}
                if not delivered and not busy:
                    return total
                if time.monotonic() >= deadline:
                    detail = "; ".join(f"{name}: {counts}" for name, counts in busy.items()) or "still delivering"
                    raise TimeoutError(f"queues not drained after {timeout:g}s: {detail}")
                if not delivered:
                    time.sleep(0.1)


def _serve() -> None:
    """The child process: moto's server for SQS on a free port, until the parent closes our stdin."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    sys.stdin.read()  # then exit: the server is in memory and its thread a daemon, nothing to shut down


if __name__ == "__main__":
    _serve()

"""The local SQS event source mapping behaves like Lambda's: batches, partial failures, redrive, delays."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
import uuid
from pathlib import Path

import boto3
import pytest

from engage.local import stack as local_stack
from engage.local.queues import QueuePoller, QueuePollers, peek
from engage.local.server import HandlerPool
from engage.local.template import Function
from engage.settings import get_settings

# Records what it was given; reports bodies starting with "bad" as failed; raises on a body "crash" once.
HANDLER = """
import json, pathlib

LOG = pathlib.Path({log!r})


def lambda_handler(event, context):
    with LOG.open("a") as out:
        out.write(json.dumps({{"event": event, "remaining_ms": context.get_remaining_time_in_millis()}}) + "\\n")
    bodies = [r["body"] for r in event["Records"]]
    crashed = LOG.with_suffix(".crashed")
    if "crash" in bodies and not crashed.exists():
        crashed.touch()
        raise RuntimeError("boom")
    return {{"batchItemFailures": [{{"itemIdentifier": r["messageId"]}} for r in event["Records"]
                                   if r["body"].startswith("bad")]}}
"""


@pytest.fixture
def sqs(stack):
    return boto3.client("sqs", endpoint_url=stack.sqs.endpoint, region_name="us-east-1")


@pytest.fixture
def recorder(tmp_path: Path):
    """A function that logs its invocations to a file; `recorder.calls()` reads them back."""
    log = tmp_path / "calls.jsonl"
    (tmp_path / "app.py").write_text(HANDLER.format(log=str(log)))

    class Recorder:
        pool = HandlerPool(Function("RecorderFunction", tmp_path, "app.lambda_handler", timeout=5))

        @staticmethod
        def calls() -> list[dict]:
            return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    return Recorder


@pytest.fixture
def queue(sqs):
    """A fresh queue (1 s visibility timeout) with a dead-letter queue after 2 receives: (url, dlq url)."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "1", "RedrivePolicy": redrive})["QueueUrl"]
    yield url, dlq
    sqs.delete_queue(QueueUrl=url)
    sqs.delete_queue(QueueUrl=dlq)


def poller(stack, url: str, recorder, batch_size: int = 10) -> QueuePoller:
    return QueuePoller(stack.sqs.endpoint, url, recorder.pool, batch_size=batch_size, partial_failures=True)


def test_template_queues_exist_with_their_redrive_policy_and_refs_resolve_to_their_urls(stack, sqs):
    # Given the running local stack
    urls = stack.queue_urls
    # Then every queue of template.yaml exists, with its attributes and its dead-letter queue's ARN
    assert set(urls) == {"DeliveryQueue", "DeferredQueue", "NotificationsDeadLetterQueue", "BoardsFailedBatchesQueue",
                         "NotifyFailedBatchesQueue", "DeferredDeadLetterQueue"}  # fmt: skip
    attributes = sqs.get_queue_attributes(QueueUrl=urls["DeliveryQueue"], AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "360"
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(f":{stack.prefix}-notificationsdeadletterqueue")
    assert redrive["maxReceiveCount"] == 5
    # And the functions' environment points at them, at the local SQS server and the FCM emulator
    assert os.environ["DELIVERY_QUEUE_URL"] == urls["DeliveryQueue"]
    assert os.environ["DEFERRED_QUEUE_URL"] == urls["DeferredQueue"]
    assert os.environ["DEAD_LETTER_QUEUE_URL"] == urls["NotificationsDeadLetterQueue"]
    assert os.environ["AWS_ENDPOINT_URL_SQS"] == stack.sqs.endpoint
    assert os.environ["FCM_ENDPOINT"] == stack.fcm.base_url
    assert os.environ["DELIVERY_RETRY_BASE_SECONDS"] == "1"
    # And only the queues with an SQS event are polled (the dead-letter queues are not)
    assert sorted(p.url for p in stack.queues.pollers) == sorted([urls["DeliveryQueue"], urls["DeferredQueue"]])


def test_a_batch_reaches_the_function_in_lambdas_sqs_event_shape(stack, sqs, queue, recorder):
    # Given three messages, one with a string and a binary attribute
    url, _ = queue
    attributes = {
        "reason": {"DataType": "String", "StringValue": "quota"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
    }
    sqs.send_message(QueueUrl=url, MessageBody="one", MessageAttributes=attributes)
    sqs.send_message(QueueUrl=url, MessageBody="two")
    sqs.send_message(QueueUrl=url, MessageBody="three")
    # When the queue is polled
    assert poller(stack, url, recorder).poll() == 3
    # Then the function got one batch with Lambda's record shape, and a deadline from its Timeout
    [call] = recorder.calls()
    assert 0 < call["remaining_ms"] <= 5000
    records = call["event"]["Records"]
    assert [r["body"] for r in records] == ["one", "two", "three"]
    first = records[0]
    assert set(first) >= {"messageId", "receiptHandle", "body", "attributes", "messageAttributes", "md5OfBody",
                          "eventSource", "eventSourceARN", "awsRegion"}  # fmt: skip
    assert first["eventSource"] == "aws:sqs"
    assert first["eventSourceARN"].endswith(":" + url.rsplit("/", 1)[1])
    assert first["awsRegion"] == "us-east-1"
    assert first["md5OfBody"] == hashlib.md5(b"one").hexdigest()
    assert first["attributes"]["ApproximateReceiveCount"] == "1"
    assert {"SentTimestamp", "ApproximateFirstReceiveTimestamp", "SenderId"} <= set(first["attributes"])
    assert first["messageAttributes"] == {
        "reason": {"stringValue": "quota", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
        "blob": {"binaryValue": base64.b64encode(b"\x00\x01").decode(), "stringListValues": [],
                 "binaryListValues": [], "dataType": "Binary"},
    }  # fmt: skip
    # And every message was deleted
    assert poller(stack, url, recorder).counts() == dict.fromkeys(
        ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"],
        0,
    )


def test_a_batch_is_gathered_ten_messages_per_receive_up_to_the_batch_size(stack, sqs, queue, recorder):
    # Given 30 messages and a batch size of 25
    url, _ = queue
    for start in range(0, 30, 10):
        sqs.send_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(start, start + 10)]
        )
    # When the queue is drained
    assert QueuePollers([poller(stack, url, recorder, batch_size=25)]).drain(timeout=10) == 30
    # Then the function saw a batch of 25, then one of 5
    assert [len(call["event"]["Records"]) for call in recorder.calls()] == [25, 5]


def test_reported_failures_come_back_after_the_visibility_timeout_then_go_to_the_dead_letter_queue(
    stack, sqs, queue, recorder
):
    # Given a batch where one message is reported failed
    url, dlq = queue
    sqs.send_message(QueueUrl=url, MessageBody="ok-1")
    sqs.send_message(
        QueueUrl=url, MessageBody="bad", MessageAttributes={"k": {"DataType": "String", "StringValue": "v"}}
    )
    sqs.send_message(QueueUrl=url, MessageBody="ok-2")
    mapping = poller(stack, url, recorder)
    assert mapping.poll() == 3
    # Then only the failed message is left, in flight until its visibility timeout ends
    assert mapping.counts()["ApproximateNumberOfMessagesNotVisible"] == 1
    assert mapping.counts()["ApproximateNumberOfMessages"] == 0
    assert mapping.poll() == 0
    # When draining (it waits out the visibility timeouts)
    started = time.monotonic()
    QueuePollers([mapping]).drain(timeout=10)
    # Then it came back once more (maxReceiveCount 2) and then moved to the dead-letter queue, attributes kept
    assert time.monotonic() - started >= 1.5
    again = [r for call in recorder.calls()[1:] for r in call["event"]["Records"]]
    assert [(r["body"], r["attributes"]["ApproximateReceiveCount"]) for r in again] == [("bad", "2")]
    [dead] = peek(stack.sqs.endpoint, dlq)
    assert (dead["body"], dead["attributes"]) == ("bad", {"k": "v"})


def test_a_raised_exception_returns_the_whole_batch(stack, sqs, queue, recorder):
    # Given a batch whose first invocation raises
    url, _ = queue
    sqs.send_message(QueueUrl=url, MessageBody="crash")
    sqs.send_message(QueueUrl=url, MessageBody="fine")
    # When draining
    QueuePollers([poller(stack, url, recorder)]).drain(timeout=10)
    # Then both messages were delivered again, and then deleted
    bodies = [
        [(r["body"], r["attributes"]["ApproximateReceiveCount"]) for r in c["event"]["Records"]]
        for c in recorder.calls()
    ]
    assert bodies == [[("crash", "1"), ("fine", "1")], [("crash", "2"), ("fine", "2")]]


def test_an_unknown_item_identifier_fails_the_whole_batch(stack, sqs, queue, tmp_path):
    # Given a function that reports a failure with an identifier that is not in the batch (Lambda's rule)
    url, _ = queue
    (tmp_path / "odd.py").write_text(
        "def lambda_handler(event, context):\n    return {'batchItemFailures': [{'itemIdentifier': 'nope'}]}\n"
    )
    mapping = QueuePoller(stack.sqs.endpoint, url, HandlerPool(Function("Odd", tmp_path, "odd.lambda_handler")))
    sqs.send_message(QueueUrl=url, MessageBody="x")
    # When polled
    mapping.poll()
    # Then nothing was deleted
    assert mapping.counts()["ApproximateNumberOfMessagesNotVisible"] == 1


def test_drain_waits_for_delayed_messages(stack, sqs, queue, recorder):
    # Given a message delayed by a second
    url, _ = queue
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=1)
    # When draining right away
    started = time.monotonic()
    QueuePollers([poller(stack, url, recorder)]).drain(timeout=10)
    # Then drain waited for it and delivered it
    assert time.monotonic() - started >= 0.9
    assert [r["body"] for c in recorder.calls() for r in c["event"]["Records"]] == ["later"]


def test_drain_names_the_busy_queue_when_it_times_out_unless_told_to_leave_delays_alone(stack, sqs, queue, recorder):
    # Given a message delayed longer than the drain may take
    url, _ = queue
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=5)
    pollers = QueuePollers([poller(stack, url, recorder)])
    # Then drain() times out naming the queue and its counts
    with pytest.raises(TimeoutError, match=r"test-.*ApproximateNumberOfMessagesDelayed': 1"):
        pollers.drain(timeout=0.3)
    # And drain(delayed=False) returns at once, the message still waiting
    assert pollers.drain(timeout=0.3, delayed=False) == 0
    assert recorder.calls() == []


def test_paused_pollers_leave_the_queue_alone(stack, sqs, queue, recorder):
    # Given pollers running in the background
    url, _ = queue
    pollers = QueuePollers([poller(stack, url, recorder)], interval=0.05)
    pollers.start()
    try:
        # When a message arrives while they are paused
        with pollers.paused():
            sqs.send_message(QueueUrl=url, MessageBody="wait")
            time.sleep(0.3)
            # Then nobody took it
            assert recorder.calls() == []
        # And once resumed, the background thread delivers it
        deadline = time.monotonic() + 5
        while not recorder.calls() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [r["body"] for c in recorder.calls() for r in c["event"]["Records"]] == ["wait"]
    finally:
        pollers.stop()


def test_dead_letters_shows_the_dead_letter_queue_without_consuming_it(stack, sqs):
    # Given a message in the notifications dead-letter queue
    dlq = stack.queue_urls["NotificationsDeadLetterQueue"]
    body = f"undeliverable-{uuid.uuid4().hex}"
    sqs.send_message(
        QueueUrl=dlq, MessageBody=body, MessageAttributes={"reason": {"DataType": "String", "StringValue": "gone"}}
    )
    try:
        # When reading it twice
        first = [m for m in stack.dead_letters() if m["body"] == body]
        second = [m for m in stack.dead_letters() if m["body"] == body]
        # Then it is there both times, with its attributes
        assert [m["attributes"] for m in first] == [{"reason": "gone"}]
        assert len(second) == 1
    finally:
        for message in sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", []):
            if message["Body"] == body:
                sqs.delete_message(QueueUrl=dlq, ReceiptHandle=message["ReceiptHandle"])


def test_pausing_the_streams_pauses_the_queues_too(stack):
    # Given a test holding stack.streams.paused() (as around mock_aws, which patches botocore process-wide)
    entered = threading.Event()

    def queue_poller_round() -> None:
        with stack.queues.paused():  # what the queues' background thread takes before each round
            entered.set()

    with stack.streams.paused():
        thread = threading.Thread(target=queue_poller_round)
        thread.start()
        # Then the queues wait as well
        assert not entered.wait(0.3)
        with stack.paused():  # and the lock is re-entrant for the thread holding it
            pass
    assert entered.wait(5)
    thread.join()


MINI_TEMPLATE = """
Resources:
  ThingsTable:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
      KeySchema: [{AttributeName: id, KeyType: HASH}]
      StreamSpecification: {StreamViewType: NEW_IMAGE}
  JobsQueue:
    Type: AWS::SQS::Queue
    Properties: {VisibilityTimeout: 5}
  FanOutFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fanout/
      Handler: app.handler
      Environment: {Variables: {JOBS_QUEUE_URL: !Ref JobsQueue}}
      Events:
        Things: {Type: DynamoDB, Properties: {Stream: !GetAtt ThingsTable.StreamArn, BatchSize: 10}}
  WorkerFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: worker/
      Handler: app.handler
      Environment: {Variables: {THINGS_TABLE: !Ref ThingsTable}}
      Events:
        Jobs: {Type: SQS, Properties: {Queue: !GetAtt JobsQueue.Arn, FunctionResponseTypes: [ReportBatchItemFailures]}}
"""
# A new thing queues a job (delayed a second); the job writes a "done-" thing, which the stream brings back.
FANOUT = """
import os, boto3
SEEN = {seen!r}

def handler(event, context):
    for record in event["Records"]:
        key = record["dynamodb"]["Keys"]["id"]["S"]
        open(SEEN, "a").write(key + "\\n")
        if not key.startswith("done-"):
            boto3.client("sqs").send_message(QueueUrl=os.environ["JOBS_QUEUE_URL"], MessageBody=key, DelaySeconds=1)
"""
WORKER = """
import os, boto3

def handler(event, context):
    table = boto3.client("dynamodb")
    for record in event["Records"]:
        table.put_item(TableName=os.environ["THINGS_TABLE"], Item={"id": {"S": "done-" + record["body"]}})
    return {"batchItemFailures": []}
"""


def test_stack_drain_alternates_streams_and_queues_until_both_are_quiet(stack, tmp_path):
    # Given a second, tiny stack: table stream → FanOut → queue (delayed) → Worker → table stream → FanOut
    seen = tmp_path / "seen.txt"
    (tmp_path / "template.yaml").write_text(MINI_TEMPLATE)
    for name, code in (("fanout", FANOUT.format(seen=str(seen))), ("worker", WORKER)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "app.py").write_text(code)
    saved = dict(os.environ)
    with stack.paused():  # the session stack's functions must not run while the environment points elsewhere
        mini = local_stack.start(tmp_path / "template.yaml", None, prefix=f"mini{os.getpid()}", record_state=False)
        try:
            with mini.paused():  # only drain() delivers
                boto3.client("dynamodb").put_item(TableName=mini.tables["ThingsTable"], Item={"id": {"S": "x"}})
                # When draining once
                mini.drain(timeout=20)
            # Then the job was delivered and its write came back through the stream, all within that drain()
            assert seen.read_text().split() == ["x", "done-x"]
        finally:
            mini.stop()
            os.environ.clear()
            os.environ.update(saved)
            get_settings.cache_clear()

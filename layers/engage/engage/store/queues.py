"""SQS: the delivery, deferral and dead-letter queues (URLs from the environment, set by template.yaml)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..settings import get_settings

MAX_DELAY_SECONDS = 900  # SQS's limit for DelaySeconds: longer waits are chained hops
_BATCH = 10  # SendMessageBatch's limit


class SendFailed(RuntimeError):
    """SQS refused some messages of a batch; the caller's record is retried (nothing is half-lost)."""


@dataclass(frozen=True)
class Outgoing:
    body: str
    delay_seconds: int = 0
    attributes: dict[str, str] | None = None


@lru_cache(maxsize=1)
def _client() -> Any:
    # Imported here: boto3 (and s3transfer with it) would add ~40 ms to the cold start of the api function,
    # which only queues on a read. Short timeouts, standard retries: a failed batch is retried as a whole.
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard"})
    return boto3.client("sqs", region_name=get_settings().region, config=config)


def delivery_queue() -> str:
    return get_settings().required("delivery_queue_url")


def deferred_queue() -> str:
    return get_settings().required("deferred_queue_url")


def send(url: str, messages: Sequence[Outgoing]) -> None:
    """Send in batches of 10; raise SendFailed naming what SQS refused."""
    for start in range(0, len(messages), _BATCH):
        chunk = messages[start : start + _BATCH]
        entries = [
            {
                "Id": str(index),
                "MessageBody": message.body,
                "DelaySeconds": max(0, min(int(message.delay_seconds), MAX_DELAY_SECONDS)),
                **(
                    {
                        "MessageAttributes": {
                            key: {"DataType": "String", "StringValue": value[:1000]}
                            for key, value in message.attributes.items()
                        }
                    }
                    if message.attributes
                    else {}
                ),
            }
            for index, message in enumerate(chunk)
        ]
        answer = _client().send_message_batch(QueueUrl=url, Entries=entries)
        failed = answer.get("Failed") or []
        if failed:
            reasons = "; ".join(f"{f.get('Code')}: {f.get('Message')}" for f in failed)
            raise SendFailed(f"SQS refused {len(failed)} of {len(chunk)} messages: {reasons}")


def deferred_dead_letter_queue() -> str:
    return get_settings().required("deferred_dead_letter_queue_url")


def dead_letter(body: str, reason: str, url: str | None = None) -> None:
    """Set a message aside for a person to look at, with why (the `reason` attribute): nothing is dropped.

    Each kind of message has its own dead-letter queue, so that a redrive sends it back to the one queue it
    came from: delivery jobs by default, held messages to `deferred_dead_letter_queue()`.
    """
    send(url or get_settings().required("dead_letter_queue_url"), [Outgoing(body, attributes={"reason": reason})])


@dataclass(frozen=True)
class Incoming:
    message_id: str
    receipt: str
    body: str


def receive(url: str, hold_seconds: int, wait_seconds: int = 0) -> list[Incoming]:
    """Up to 10 visible messages, hidden from other readers for `hold_seconds`. `wait_seconds` > 0 long-polls:
    SQS then asks all its servers, so an empty answer means the queue has nothing visible."""
    answer = _client().receive_message(
        QueueUrl=url, MaxNumberOfMessages=_BATCH, VisibilityTimeout=hold_seconds, WaitTimeSeconds=wait_seconds
    )
    return [Incoming(m["MessageId"], m["ReceiptHandle"], m["Body"]) for m in answer.get("Messages", [])]


def delete(url: str, receipt: str) -> None:
    _client().delete_message(QueueUrl=url, ReceiptHandle=receipt)


def release(url: str, receipt: str) -> bool:
    """Make a received message visible again at once (it was not this reader's to handle); False if the receipt
    no longer holds it (its hold ran out, or another reader received it since): it is visible or held anyway."""
    from botocore.exceptions import ClientError

    try:
        _client().change_message_visibility(QueueUrl=url, ReceiptHandle=receipt, VisibilityTimeout=0)
    except ClientError:
        return False
    return True

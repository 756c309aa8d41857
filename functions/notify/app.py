"""Lambda `notify`: new ledger rows (the ledger's stream) and quiet-hour releases (the deferred queue) → messages."""

# ruff: noqa: E402  (the imports run with the garbage collector off: see below)
# Cold start: loading this module makes objects that live as long as the process, and collecting garbage
# among them meanwhile cost about 40 ms here. At the end of the module they are frozen out of every later
# collection, and collection resumes.
import gc

gc.disable()

from collections.abc import Callable

from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSEvent
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from engage.notify.jobs import DeferredRelease
from engage.observability import logger, metrics
from engage.services.notify import LedgerRow, Tally, handle_rows, release_deferred
from engage.store.queues import dead_letter, deferred_dead_letter_queue


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    records = event.get("Records", [])
    if records and records[0].get("eventSource") == "aws:sqs":
        return _releases(event)
    return _ledger_rows(records, context.get_remaining_time_in_millis)


# A user's decision takes a few calls: stop while one more surely fits, rather than let the batch time out
# (Lambda would then retry all of it, bisected).
STOP_BEFORE_TIMEOUT_MS = 3000


def _ledger_rows(records: list[dict], remaining_ms: Callable[[], int] = lambda: 60_000) -> dict:
    """All of one user's rows in the batch at once (so their facts make one decision: one push at most),
    users in the order they first appear; stop at the first failure, or when little time is left.

    Lambda retries a stream batch from the first failed record and everything after it comes again, so those
    are reported failed: from the failed user's first row, which no user not yet handled precedes. Rows
    handled before are safe to see twice (message ids are derived from the facts).
    """
    tally, rows, failed_at = Tally(), [], None
    for index, raw in enumerate(records):
        if raw.get("eventName") != "INSERT":
            continue
        try:
            rows.append((index, LedgerRow.from_image(_new_image(raw))))
        except (KeyError, ValueError):  # not a row notify can read: it and the records after it fail
            logger.exception("unreadable ledger row")
            failed_at = index
            break
    by_user: dict[str, list[tuple[int, LedgerRow]]] = {}
    for index, row in rows:
        by_user.setdefault(row.user_id, []).append((index, row))
    for batch in by_user.values():  # all before an unreadable row, if any
        if remaining_ms() < STOP_BEFORE_TIMEOUT_MS:  # hand the rest back, not time out
            logger.warning("little time left; the records not handled yet will come again")
            failed_at = batch[0][0]
            break
        try:
            handle_rows([row for _, row in batch], tally=tally)
        except Exception:
            logger.exception("notify failed; this record and the ones after it will be retried")
            failed_at = batch[0][0]
            break
    _count(tally)
    if failed_at is None:
        return {"batchItemFailures": []}
    metrics.add_metric(name="NotifyRecordsRetried", unit="Count", value=len(records) - failed_at)
    return {"batchItemFailures": [{"itemIdentifier": raw["dynamodb"]["SequenceNumber"]} for raw in records[failed_at:]]}


def _new_image(raw: dict) -> dict:
    stream = DynamoDBRecord(raw).dynamodb
    return dict(stream.new_image) if stream else {}


def _releases(event: dict) -> dict:
    """Quiet-hour releases, one user at a time (a user's messages due together are decided together, one push
    at most); a user whose release fails has only their records handed out again (releases are idempotent)."""
    by_user: dict[str, list[tuple[str, DeferredRelease]]] = {}
    for record in SQSEvent(event).records:
        try:
            job = DeferredRelease.model_validate_json(record.body)
        except ValidationError as exc:  # retrying will not fix it: straight to the dead-letter queue, with why
            first = exc.errors()[0]
            reason = f"malformed deferred release: {first['loc']}: {first['msg']}"
            dead_letter(record.body, reason, deferred_dead_letter_queue())
            continue
        by_user.setdefault(job.user_id, []).append((record.message_id, job))
    tally, failed = Tally(), []
    for user_id, jobs in by_user.items():
        try:
            release_deferred([job for _, job in jobs], tally=tally)
        except Exception:
            logger.exception("release failed for one user; their messages come back", extra={"user_id": user_id})
            failed += [message_id for message_id, _ in jobs]
    _count(tally)
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}


# What became of each message, by decision; the reasons are in the log line and on the inbox rows.
_DECISION_METRICS = {"push": "PushDecided", "defer": "PushDeferred", "inbox": "PushDowngradedToInbox",
                     "drop": "MessageDropped"}  # fmt: skip


def _count(tally: Tally) -> None:
    if tally.decisions:
        logger.info("messages decided", extra={"decisions": dict(tally.decisions)})
    for decision, count in tally.decisions.items():
        metrics.add_metric(name=_DECISION_METRICS[decision.split(":", 1)[0]], unit="Count", value=count)
    if tally.opens:
        metrics.add_metric(name="NotificationsOpened", unit="Count", value=tally.opens)


gc.freeze()
gc.enable()

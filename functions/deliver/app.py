"""Lambda `deliver`: delivery jobs from SQS → FCM (the only function that imports firebase-admin)."""

# ruff: noqa: E402  (the imports run with the garbage collector off: see below)
# Cold start: loading this module makes objects that live as long as the process, and collecting garbage
# among them meanwhile cost about 40 ms here. At the end of the module they are frozen out of every later
# collection, and collection resumes.
import gc

gc.disable()

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from engage.observability import logger, metrics
from engage.push.firebase import firebase_app, run
from engage.services.deliver import Received, deliver

processor = BatchProcessor(event_type=EventType.SQS)
_OUTCOME_METRICS = {"sent": "PushSent", "retry": "PushRetried", "drop_device": "PushDeviceRemoved",
                    "dead_letter": "PushDeadLettered", "expired": "PushExpired", "gave_up": "PushGaveUp",
                    "duplicate": "PushDuplicateSkipped", "no_device": "PushNoDevice", "malformed": "PushJobMalformed",
                    "seen": "PushSeenMeanwhile"}  # fmt: skip


class HandOutAgain(Exception):
    """This job is to be handed out again by SQS (another invocation holds it, or it could not be re-queued)."""


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    """Send the whole batch at once (send_each_async, ≤ 500 per call), then report per record."""
    records = [SQSRecord(raw) for raw in event.get("Records", [])]
    report = deliver(
        [Received(r.message_id, r.body) for r in records],
        firebase_app(),
        run,
        remaining_ms=context.get_remaining_time_in_millis(),
    )
    for outcome, count in report.outcomes.items():
        metrics.add_metric(name=_OUTCOME_METRICS[outcome], unit="Count", value=count)

    def settle(record: SQSRecord) -> None:
        if record.message_id in report.retry_records:
            raise HandOutAgain(record.message_id)

    return dict(process_partial_response(event, settle, processor, context))


gc.freeze()
gc.enable()

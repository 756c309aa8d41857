"""Lambda `boards`: from the leaderboards table's stream, keeps score histograms and tells users who passed them."""

# ruff: noqa: E402  (the imports run with the garbage collector off: see below)
# Cold start: loading this module makes objects that live as long as the process, and collecting garbage
# among them meanwhile cost about 40 ms here. At the end of the module they are frozen out of every later
# collection, and collection resumes.
import gc

gc.disable()

from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from engage.observability import logger, metrics
from engage.services.overtakes import score_changed

# A record near the top of a board costs a few dozen calls: stop while one more surely fits, rather than let
# the batch time out (Lambda would then retry all of it and bisect it).
STOP_BEFORE_TIMEOUT_MS = 3000


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    """Handle records in stream order and stop at the first failure.

    Lambda retries a stream batch from the first failed record, and every record after it comes again; so
    they are reported failed unhandled (a record handled twice anyway moves the histogram once: see
    store.leaderboards.move_in_histogram). The same when the time left runs short.
    """
    records = event.get("Records", [])
    for index, raw in enumerate(records):
        if context.get_remaining_time_in_millis() < STOP_BEFORE_TIMEOUT_MS:  # hand the rest back, not time out
            logger.warning("little time left; the records not handled yet will come again")
            return _retry_from(records, index)
        record = DynamoDBRecord(raw)
        images = record.dynamodb
        try:
            written = score_changed(images.old_image if images else None, images.new_image if images else None)
        except Exception:
            logger.exception("score change failed; it and the records after it will be retried")
            return _retry_from(records, index)
        metrics.add_metric(name="RankLostFacts", unit="Count", value=written)
    metrics.add_metric(name="ScoreChangesHandled", unit="Count", value=len(records))
    return {"batchItemFailures": []}


def _retry_from(records: list[dict], index: int) -> dict:
    metrics.add_metric(name="ScoreChangesRetried", unit="Count", value=len(records) - index)
    failed = [record["dynamodb"]["SequenceNumber"] for record in records[index:]]
    return {"batchItemFailures": [{"itemIdentifier": sequence} for sequence in failed]}


gc.freeze()
gc.enable()

"""Lambda `boards`: from the leaderboards table's stream, keeps score histograms and tells users who passed them."""

from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from engage.observability import logger, metrics
from engage.services.overtakes import score_changed


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    """Handle records in stream order and stop at the first failure.

    Lambda retries a stream batch from the first failed record, and every record after it comes again; had
    they been handled already, a histogram move would count twice. So they are reported failed unhandled.
    """
    records = event.get("Records", [])
    for index, raw in enumerate(records):
        record = DynamoDBRecord(raw)
        images = record.dynamodb
        try:
            written = score_changed(images.old_image if images else None, images.new_image if images else None)
        except Exception:
            logger.exception("score change failed; it and the records after it will be retried")
            metrics.add_metric(name="ScoreChangesRetried", unit="Count", value=len(records) - index)
            failed = [r["dynamodb"]["SequenceNumber"] for r in records[index:]]
            return {"batchItemFailures": [{"itemIdentifier": sequence} for sequence in failed]}
        metrics.add_metric(name="RankLostFacts", unit="Count", value=written)
    metrics.add_metric(name="ScoreChangesHandled", unit="Count", value=len(records))
    return {"batchItemFailures": []}

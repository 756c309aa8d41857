"""Lambda `boards`: from the leaderboards table's stream, keeps score histograms and tells users who passed them."""

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from engage.observability import logger, metrics
from engage.services.overtakes import score_changed

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def record_handler(record: DynamoDBRecord) -> None:
    images = record.dynamodb
    written = score_changed(images.old_image if images else None, images.new_image if images else None)
    metrics.add_metric(name="RankLostFacts", unit="Count", value=written)


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> PartialItemFailureResponse:
    # A failing record is retried alone (partial batch response); the rest of the batch is not repeated.
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)

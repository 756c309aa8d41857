"""Lambda `api`: the app's reads, GET /v1/me."""

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from engage.api.http import jwt_claims, make_resolver
from engage.api.models import MeResponse
from engage.observability import logger, metrics
from engage.services.me import my_progress

app = make_resolver()


@app.get("/v1/me")
def me() -> MeResponse:
    return my_progress(jwt_claims(app))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)

"""Lambda `ingest`: POST /v1/events (app, JWT) and POST /v1/server/events (backend, IAM)."""

# ruff: noqa: E402  (the imports run with the garbage collector off: see below)
# Cold start: loading this module makes objects that live as long as the process, and collecting garbage
# among them meanwhile cost about 40 ms here. At the end of the module they are frozen out of every later
# collection, and collection resumes.
import gc

gc.disable()

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from engage.api.events import EventsRequest, IngestResponse, ServerEventsRequest, ServerIngestResponse
from engage.api.http import jwt_claims, make_resolver, require_iam_caller
from engage.observability import logger, metrics
from engage.services.ingest import ingest_client_events, ingest_server_events

app = make_resolver()


@app.post("/v1/events")
def client_events(body: EventsRequest) -> IngestResponse:
    return ingest_client_events(body, jwt_claims(app))


@app.post("/v1/server/events")
def server_events(body: ServerEventsRequest) -> ServerIngestResponse:
    require_iam_caller(app)
    return ingest_server_events(body)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)


gc.freeze()
gc.enable()

"""Lambda `api`: the app's reads (me, history, leaderboards, inbox), its devices and the user's preferences."""

# ruff: noqa: E402  (the imports run with the garbage collector off: see below)
# Cold start: loading this module makes objects that live as long as the process, and collecting garbage
# among them meanwhile cost about 40 ms here. At the end of the module they are frozen out of every later
# collection, and collection resumes.
import gc

gc.disable()

from typing import Annotated, Literal
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from engage.api.http import jwt_claims, make_resolver
from engage.api.models import (
    DeviceIn,
    DeviceOut,
    HistoryResponse,
    InboxResponse,
    LeaderboardResponse,
    MeResponse,
    PreferencesIn,
    PreferencesOut,
)
from engage.observability import logger, metrics
from engage.services.devices import register_device, remove_device
from engage.services.history import my_history
from engage.services.inbox import mark_message, my_inbox
from engage.services.leaderboards import leaderboard
from engage.services.me import my_progress
from engage.services.preferences import my_preferences, update_preferences

app = make_resolver()


@app.get("/v1/me")
def me() -> MeResponse:
    metrics.add_metric(name="ProgressRead", unit="Count", value=1)
    return my_progress(jwt_claims(app))


@app.get("/v1/me/history")
def history(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> HistoryResponse:
    metrics.add_metric(name="HistoryRead", unit="Count", value=1)
    return my_history(jwt_claims(app), limit, cursor)


@app.get("/v1/leaderboards/<board_id>")
def board(
    board_id: str,
    period: Annotated[Literal["current", "previous"], Query()] = "current",
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    around: Annotated[Literal["me"] | None, Query()] = None,
) -> LeaderboardResponse:
    metrics.add_metric(name="LeaderboardRead", unit="Count", value=1)
    return leaderboard(jwt_claims(app), board_id, period, limit, around_me=around == "me")


@app.post("/v1/me/devices")
def add_device(body: DeviceIn) -> DeviceOut:
    metrics.add_metric(name="DeviceRegistered", unit="Count", value=1)
    return register_device(jwt_claims(app), body)


@app.delete("/v1/me/devices/<device_id>")
def delete_device(device_id: str) -> Response[None]:
    remove_device(jwt_claims(app), unquote(device_id))  # in case the path came percent-encoded
    metrics.add_metric(name="DeviceRemoved", unit="Count", value=1)
    return Response(status_code=204, body=None)


@app.get("/v1/me/preferences")
def preferences() -> PreferencesOut:
    metrics.add_metric(name="PreferencesRead", unit="Count", value=1)
    return my_preferences(jwt_claims(app))


@app.put("/v1/me/preferences")
def change_preferences(body: PreferencesIn) -> PreferencesOut:
    metrics.add_metric(name="PreferencesChanged", unit="Count", value=1)
    return update_preferences(jwt_claims(app), body)


@app.get("/v1/me/inbox")
def inbox(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> InboxResponse:
    metrics.add_metric(name="InboxRead", unit="Count", value=1)
    return my_inbox(jwt_claims(app), limit, cursor)


@app.post("/v1/me/inbox/<message_id>/<action>")
def mark(message_id: str, action: str) -> Response[None]:
    mark_message(jwt_claims(app), unquote(message_id), action)
    metrics.add_metric(name="InboxMarked", unit="Count", value=1)
    return Response(status_code=204, body=None)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)


gc.freeze()
gc.enable()

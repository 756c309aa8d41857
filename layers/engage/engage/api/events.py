"""POST /v1/events and /v1/server/events: the request and response bodies of the ingest function.

Apart from the other API bodies (engage.api.models) so that ingest, the function on every app event, builds
only its own models at a cold start.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    Field,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_serializer,
)

from ..config.types import CLIENT_ID, Locale, PropertyName, TimeZoneName
from .common import Body, LevelOut

MAX_EVENTS_PER_REQUEST = 100
# Each event is stored in its ledger row: this keeps 99 of them well inside a 4 MB transaction.
MAX_PROPERTIES_BYTES = 16_384

EventId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=CLIENT_ID)]
UserId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
MAX_STRING_PROPERTY = 1024


def _property_value(value: Any) -> Any:
    """A value a ledger row can keep, or one error that says why not (not one per type it might have been)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if len(value) > MAX_STRING_PROPERTY:
            raise ValueError(f"is {len(value)} characters long. Fix: at most {MAX_STRING_PROPERTY} are kept")
        return value
    # DynamoDB stores numbers of up to 38 digits between 1e-130 and 1e126; NaN and infinity not at all.
    if isinstance(value, int):
        if not -(10**38) < value < 10**38:
            raise ValueError("has more than 38 digits. Fix: DynamoDB keeps numbers of up to 38 digits")
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or abs(value) >= 1e125 or (value and abs(value) < 1e-130):
            raise ValueError("is outside what DynamoDB stores. Fix: send a finite number between 1e-130 and 1e125")
        return value
    kind = "an object" if isinstance(value, dict) else "a list" if isinstance(value, list) else type(value).__name__
    raise ValueError(f"is {kind}. Fix: send a string, a number, true/false or null (flatten objects into names)")


PropertyValue = Annotated[
    str | int | float | bool | None,
    PlainValidator(_property_value),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "maxLength": MAX_STRING_PROPERTY},
                {"type": "number"},
                {"type": "boolean"},
                {"type": "null"},
            ]
        }
    ),
]


class ClientContext(Body):
    """What the SDK knows about the device; the user's profile keeps the latest valid values."""

    timezone: TimeZoneName | None = Field(None, description="IANA zone of the device, e.g. Europe/Berlin")
    locale: Locale | None = Field(None, description="BCP 47 language tag, e.g. de-DE")
    app_version: Annotated[str, StringConstraints(max_length=64)] | None = None  # semver with build metadata fits


class EventIn(Body):
    """One event as the app sends it. `id` is the app's unique id for it: resending it is safe."""

    id: EventId
    type: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    occurred_at: AwareDatetime = Field(description="ISO 8601 with offset, e.g. 2026-11-22T07:30:00Z")
    properties: dict[PropertyName, PropertyValue] = Field(default_factory=dict, max_length=50)

    @field_validator("occurred_at")
    @classmethod
    def _in_utc(cls, moment: datetime) -> datetime:
        try:
            return moment.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00+01:00, what some SDKs write for "no date"
            raise ValueError("is before year 1 or after 9999 in UTC. Fix: send when the event happened") from None

    @field_validator("properties")
    @classmethod
    def _fits_a_ledger_row(cls, properties: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(properties, ensure_ascii=False, separators=(",", ":")).encode())  # UTF-8 bytes
        if size > MAX_PROPERTIES_BYTES:
            raise ValueError(
                f"properties take {size:,} bytes as UTF-8 JSON; at most {MAX_PROPERTIES_BYTES:,} are kept per event. "
                "Fix: send shorter texts or fewer properties"
            )
        return properties


class ServerEventIn(EventIn):
    user_id: UserId


class EventsRequest(Body):
    """POST /v1/events. Events are parsed one by one, so one bad event does not sink the batch."""

    events: list[Any] = Field(min_length=1, max_length=MAX_EVENTS_PER_REQUEST)
    context: ClientContext | None = None


class ServerEventsRequest(Body):
    """POST /v1/server/events: like /v1/events, with a user_id on each event."""

    events: list[Any] = Field(min_length=1, max_length=MAX_EVENTS_PER_REQUEST)


class EventResultOut(BaseModel):
    index: int = Field(description="position of the event in the request")
    id: str | None
    status: Literal["accepted", "duplicate", "rejected"]
    code: str | None = Field(None, description="machine-readable reason: unknown_type, bad_property, …")
    reason: str | None = None
    user_id: str | None = None
    awards: dict[str, int] = {}
    facts: list[dict[str, Any]] = []
    warnings: list[str] = []

    @model_serializer(mode="wrap")
    def _without_empty_fields(self, handler: Any) -> dict[str, Any]:
        # code/reason only on rejections and duplicates, user_id only on the server route
        return {key: value for key, value in handler(self).items() if value is not None}


class LevelChange(BaseModel):
    before: LevelOut
    after: LevelOut


class BoardScoreOut(BaseModel):
    board: str
    period: str
    score: int = Field(description="the user's score on this board period after the request")
    rank: int = Field(description="estimated rank after the request (GET /v1/leaderboards/{id} counts it exactly)")
    rank_before: int | None = Field(description="estimated rank before; null if the user was not on the board yet")
    as_of: AwareDatetime = Field(description="age of the histogram the estimates come from (at most a minute)")


class ProgressDelta(BaseModel):
    gained: dict[str, int] = Field(description="points gained per currency by this request")
    balances: dict[str, int]
    level: LevelChange | None = None
    badges: list[dict[str, Any]] = Field([], description="badge_awarded facts of this request, in order")
    streaks: list[dict[str, Any]] = Field([], description="streak_extended/frozen/broken/milestone facts")
    quests: list[dict[str, Any]] = Field([], description="quest_step_completed/completed/expired facts")
    leaderboards: list[BoardScoreOut] = Field(
        [], description="boards whose score this request changed (ranks: GET /v1/leaderboards/{id})"
    )


class IngestResponse(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    results: list[EventResultOut]
    progress: ProgressDelta


class ServerIngestResponse(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    results: list[EventResultOut]
    progress: dict[str, ProgressDelta] = Field(description="per user id")

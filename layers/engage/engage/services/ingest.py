"""Ingest events: parse each one, apply a user's events exactly once, answer with the progress delta.

Cost per user per request: one GetItem of the user and one TransactWriteItems. Extra round trips happen
only when something forces them: a concurrent writer (re-read and retry), an event already applied by an
earlier request (the transaction names it; retry without it), or more than 99 events of one user
(DynamoDB's 100-item transaction limit, so a second transaction).
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from ..api.models import (
    EventIn,
    EventResultOut,
    EventsRequest,
    IngestResponse,
    LevelChange,
    ProgressDelta,
    ServerEventIn,
    ServerEventsRequest,
    ServerIngestResponse,
)
from ..config import EngagementConfig
from ..config.checks import format_path
from ..engine import Event, EventResult, Profile, UserState, apply_batch
from ..engine.model import Source
from ..observability import metrics
from ..store.progress import MAX_ROWS_PER_TRANSACTION, CommitConflict, commit, load_user
from .config import active_config
from .errors import Busy, Unauthorized
from .views import level_out

MAX_ATTEMPTS = 6


def ingest_client_events(
    request: EventsRequest, claims: Mapping[str, Any], now: datetime | None = None
) -> IngestResponse:
    """POST /v1/events: the user is the JWT's `sub`, never a field of the body."""
    user_id = str(claims.get("sub") or "")
    if not user_id:
        raise Unauthorized("the token has no 'sub' claim")
    config = active_config().config
    now = now or datetime.now(UTC)
    parsed, results = _parse(request.events, EventIn)
    context = request.context
    profile = Profile(
        timezone=context.timezone if context else None,
        locale=context.locale if context else None,
        app_version=context.app_version if context else None,
        display_name=str(claims["name"])[:100] if claims.get("name") else None,
    )
    applied, before, after = _apply_for_user(config, user_id, parsed, "client", profile, now)
    results += applied
    return IngestResponse(**_counts(results), results=_sorted(results), progress=_delta(config, before, after, applied))


def ingest_server_events(request: ServerEventsRequest, now: datetime | None = None) -> ServerIngestResponse:
    """POST /v1/server/events: trusted backend events, each naming its user; one transaction per user."""
    config = active_config().config
    now = now or datetime.now(UTC)
    parsed, results = _parse(request.events, ServerEventIn)
    by_user: dict[str, list[tuple[int, Event]]] = {}
    for index, event, user_id in parsed:
        by_user.setdefault(user_id, []).append((index, event, user_id))  # type: ignore[arg-type]
    progress: dict[str, ProgressDelta] = {}
    for user_id, events in by_user.items():
        applied, before, after = _apply_for_user(config, user_id, events, "server", None, now)  # type: ignore[arg-type]
        results += [result.model_copy(update={"user_id": user_id}) for result in applied]
        progress[user_id] = _delta(config, before, after, applied)
    return ServerIngestResponse(**_counts(results), results=_sorted(results), progress=progress)


def _parse(raw_events: Sequence[dict[str, Any]], model: type[EventIn]) -> tuple[list, list[EventResultOut]]:
    """Structurally valid events as (index, Event, user_id); the others as rejected results naming the field."""
    parsed: list = []
    rejected: list[EventResultOut] = []
    for index, raw in enumerate(raw_events):
        try:
            item = model.model_validate(raw)
        except ValidationError as exc:
            raw_id = raw.get("id") if isinstance(raw, dict) else None
            rejected.append(
                EventResultOut(
                    index=index,
                    id=raw_id if isinstance(raw_id, str) else None,
                    status="rejected",
                    code="invalid_event",
                    reason=_describe(exc),
                )
            )
            continue
        event = Event(item.id, item.type, item.occurred_at.astimezone(UTC), dict(item.properties))
        parsed.append((index, event, getattr(item, "user_id", None)))
    return parsed, rejected


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{format_path(err['loc'])}: {err['msg']}" + (f" (got {err['input']!r})" if err["type"] != "missing" else "")
        for err in exc.errors()
    )


def _apply_for_user(
    config: EngagementConfig,
    user_id: str,
    events: Sequence[tuple[int, Event, Any]],
    source: Source,
    profile: Profile | None,
    now: datetime,
) -> tuple[list[EventResultOut], UserState, UserState]:
    indexed = [(index, event) for index, event, _ in events]
    first = state = load_user(user_id)
    known_duplicates: set[str] = set()
    results: list[EventResult] = []
    for start in range(0, max(len(indexed), 1), MAX_ROWS_PER_TRANSACTION):
        chunk = indexed[start : start + MAX_ROWS_PER_TRANSACTION]
        for attempt in range(MAX_ATTEMPTS):
            outcome = apply_batch(
                config, state, chunk, source=source, now=now, already_applied=known_duplicates, profile=profile
            )
            if not outcome.changed:
                break
            try:
                commit(outcome, source, now)
            except CommitConflict as conflict:
                known_duplicates |= conflict.duplicate_ids
                if conflict.user_changed:
                    time.sleep(random.uniform(0, 0.02 * 2**attempt))  # spread out racing writers
                    state = load_user(user_id)
                    if start == 0:
                        first = state
                continue
            state = outcome.after
            state.version = outcome.before.version + 1
            break
        else:
            raise Busy("too many concurrent writes for this user; retry the request (its events are safe to resend)")
        results += outcome.results
    metrics.add_metric("EventsAccepted", "Count", sum(r.status == "accepted" for r in results))
    metrics.add_metric("EventsDuplicate", "Count", sum(r.status == "duplicate" for r in results))
    metrics.add_metric("EventsRejected", "Count", sum(r.status == "rejected" for r in results))
    return [_result_out(result) for result in results], first, state


def _result_out(result: EventResult) -> EventResultOut:
    return EventResultOut(
        index=result.index,
        id=result.id,
        status=result.status,
        code=result.code,
        reason=result.reason,
        awards=result.awards,
        facts=[fact.as_dict() for fact in result.facts],
        warnings=result.warnings,
    )


def _delta(
    config: EngagementConfig, before: UserState, after: UserState, results: list[EventResultOut]
) -> ProgressDelta:
    gained: dict[str, int] = {}
    for result in results:
        for currency, amount in result.awards.items():
            gained[currency] = gained.get(currency, 0) + amount
    balances = {currency: after.balances.get(currency, 0) for currency in config.currencies}
    level = None
    if config.levels is not None:
        currency = config.levels.currency
        level = LevelChange(
            before=level_out(config, before.earned.get(currency, 0)),
            after=level_out(config, after.earned.get(currency, 0)),
        )
    return ProgressDelta(gained=gained, balances=balances, level=level)


def _counts(results: Sequence[EventResultOut]) -> dict[str, int]:
    return {
        "accepted": sum(r.status == "accepted" for r in results),
        "duplicates": sum(r.status == "duplicate" for r in results),
        "rejected": sum(r.status == "rejected" for r in results),
    }


def _sorted(results: list[EventResultOut]) -> list[EventResultOut]:
    return sorted(results, key=lambda r: r.index)

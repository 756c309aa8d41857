"""Ingest events: parse each one, apply a user's events exactly once, answer with the progress delta.

Cost per user per request: one GetItem of the user and one TransactWriteItems. Extra round trips happen
only when something forces them: a concurrent writer (re-read and retry), an event already applied by an
earlier request (the transaction names it; retry without it), or more events of one user than a transaction
holds (DynamoDB's 100 items, less the user item and a row per leaderboard: a second transaction).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from ..api.common import explain
from ..api.events import (
    BoardScoreOut,
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
from ..config.issues import format_path
from ..engine import Event, EventResult, Outcome, Profile, UserState, apply_batch
from ..engine.model import Source
from ..observability import logger, metrics
from ..retries import MAX_ATTEMPTS, back_off
from ..store.progress import (
    CommitConflict,
    UserItemFull,
    applied_before,
    commit,
    events_per_transaction,
    load_user,
)
from .config import active_config
from .errors import Busy, signed_in_user
from .rank_estimates import cached_stats, estimated_rank
from .views import level_out


@dataclass(frozen=True)
class _Parsed:
    index: int  # position in the request
    event: Event
    user_id: str | None  # only on the server route


def ingest_client_events(
    request: EventsRequest, claims: Mapping[str, Any], now: datetime | None = None
) -> IngestResponse:
    """POST /v1/events: the user is the JWT's `sub`, never a field of the body."""
    user_id = signed_in_user(claims)
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
    results = _sorted(results + applied)
    _count(results)
    return IngestResponse(**_counts(results), results=results, progress=_delta(config, before, after, applied))


def ingest_server_events(request: ServerEventsRequest, now: datetime | None = None) -> ServerIngestResponse:
    """POST /v1/server/events: trusted backend events, each naming its user; one transaction per user.

    If one user's writes fail (busy), the request fails as a whole: users before it are committed, and the
    backend's retry reports their events as duplicates, so nothing is applied twice or lost.
    """
    config = active_config().config
    now = now or datetime.now(UTC)
    parsed, results = _parse(request.events, ServerEventIn)
    by_user: dict[str, list[_Parsed]] = {}
    for item in parsed:
        by_user.setdefault(item.user_id or "", []).append(item)
    progress: dict[str, ProgressDelta] = {}
    for user_id, events in by_user.items():
        applied, before, after = _apply_for_user(config, user_id, events, "server", None, now)
        results += [result.model_copy(update={"user_id": user_id}) for result in applied]
        progress[user_id] = _delta(config, before, after, applied)
    results = _sorted(results)
    _count(results)
    return ServerIngestResponse(**_counts(results), results=results, progress=progress)


def _parse(raw_events: Sequence[Any], model: type[EventIn]) -> tuple[list[_Parsed], list[EventResultOut]]:
    """Structurally valid events, and the others as rejected results naming the field."""
    parsed: list[_Parsed] = []
    rejected: list[EventResultOut] = []
    for index, raw in enumerate(raw_events):
        try:
            item = model.model_validate(raw)
        except ValidationError as exc:
            fields = raw if isinstance(raw, dict) else {}
            rejected.append(
                EventResultOut(
                    index=index,
                    id=_text(fields.get("id")),
                    user_id=_text(fields.get("user_id")) if model is ServerEventIn else None,  # a client sends none
                    status="rejected",
                    code="invalid_event",
                    reason=_describe(exc),
                )
            )
            continue
        event = Event(item.id, item.type, item.occurred_at.astimezone(UTC), dict(item.properties))
        parsed.append(_Parsed(index, event, getattr(item, "user_id", None)))
    return parsed, rejected


def _text(value: Any) -> str | None:
    """An id echoed back with a rejected event, so the caller can tell which it was: not one of 100 huge ones,
    which could push the answer past Lambda's 6 MB (an id that long is refused anyway)."""
    return value if isinstance(value, str) and len(value) <= 128 else None


def _describe(exc: ValidationError) -> str:
    return "; ".join(_problem(err) for err in exc.errors())


def _problem(error: Any) -> str:
    """One field's problem: where, what, the value given, and the fix."""
    message = explain(error)
    quoted = error["type"] not in ("missing", "extra_forbidden", "too_long")  # an unknown field may hold a token
    given = f" (got {_short(error['input'])})" if quoted else ""
    what, fix = message.split(". Fix: ", 1) if ". Fix: " in message else (message, None)
    where = format_path(error["loc"]) if error["loc"] else "the event"
    return f"{where}: {what}{given}" + (f". Fix: {fix}" if fix else "")


def _short(value: Any) -> str:
    """The offending value as the reason quotes it: enough to recognise, never the whole of a huge one."""
    text = repr(value)
    return text if len(text) <= 100 else f"{text[:97]}…"


def _apply_for_user(
    config: EngagementConfig,
    user_id: str,
    events: Sequence[_Parsed],
    source: Source,
    profile: Profile | None,
    now: datetime,
) -> tuple[list[EventResultOut], UserState, UserState]:
    """Apply one user's events exactly once; returns their results and the user's state before and after."""
    indexed = [(item.index, item.event) for item in events]
    before = state = load_user(user_id)
    known_duplicates: set[str] = set()
    results: list[EventResult] = []
    # One transaction holds the user item, a row per leaderboard and the rest events (99 with no boards):
    # only a request with more events of one user than that needs a second transaction.
    size = events_per_transaction(len(config.leaderboards))
    for start in range(0, max(len(indexed), 1), size):
        chunk = indexed[start : start + size]
        outcome = _commit_chunk(config, state, chunk, source, profile, now, known_duplicates)
        if start == 0:
            before = outcome.before  # the state this request started from (re-read if it had to retry)
        state = outcome.after
        known_duplicates |= {applied.event.id for applied in outcome.applied}
        results += outcome.results
    return [_result_out(result) for result in _replays_of_applied(user_id, source, results)], before, state


def _replays_of_applied(user_id: str, source: Source, results: list[EventResult]) -> list[EventResult]:
    """Rejected events an earlier request applied are duplicates: a retry that comes after the late window
    closed, or after a config change, must not say "rejected" of points that were paid. Looked up (one read)
    only when the request has rejected events. An id this request applied (a later event with the same id)
    does not make a rejected one a duplicate: it was not paid."""
    applied_now = {result.id for result in results if result.status == "accepted"}
    rejected = [r.id for r in results if r.status == "rejected" and r.id and r.id not in applied_now]
    if not rejected:
        return results
    applied = applied_before(user_id, source, rejected)
    return [
        EventResult.duplicate(result.index, result.id)
        if result.status == "rejected" and result.id in applied  # `applied` holds only ids in `rejected`
        else result
        for result in results
    ]


def _commit_chunk(
    config: EngagementConfig,
    state: UserState,
    chunk: list[tuple[int, Event]],
    source: Source,
    profile: Profile | None,
    now: datetime,
    known_duplicates: set[str],
) -> Outcome:
    """Apply and commit one transaction's worth of events, retrying on conflicts a bounded number of times.

    `known_duplicates` grows with the events a cancelled transaction reported as already applied.
    """
    for attempt in range(MAX_ATTEMPTS):
        outcome = apply_batch(
            config, state, chunk, source=source, now=now, already_applied=known_duplicates, profile=profile
        )
        if not outcome.changed:
            return outcome
        try:
            commit(outcome, source, now)
        except UserItemFull:
            return _refused_for_size(state, outcome)
        except CommitConflict as conflict:
            known_duplicates |= conflict.duplicate_ids
            if conflict.user_changed:
                back_off(attempt)
                state = load_user(state.user_id)
            continue
        outcome.after.version = outcome.before.version + 1
        return outcome
    raise Busy("too many concurrent writes for this user; retry the request (its events are safe to resend)")


def _refused_for_size(state: UserState, outcome: Outcome) -> Outcome:
    """The events this user's item has no room for are rejected, each saying why, rather than failing the request
    (and a server request's other users) on every retry. Logged as an error: the config needs changing."""
    logger.error("user item full: events rejected", extra={"user_id": state.user_id, "events": len(outcome.applied)})
    metrics.add_metric("UserItemFull", "Count", 1)
    reason = (
        "this user's stored progress has reached DynamoDB's 400 KB item limit, so nothing more can be applied. "
        "Fix (in the config): run `engage config validate` on it, which names what keeps too much per user"
    )
    results = [
        EventResult(r.index, r.id, "rejected", "progress_full", reason) if r.status == "accepted" else r
        for r in outcome.results
    ]
    return Outcome(before=state, after=state, results=results, applied=[])


def _count(results: Sequence[EventResultOut]) -> None:
    for name, status in (
        ("EventsAccepted", "accepted"),
        ("EventsDuplicate", "duplicate"),
        ("EventsRejected", "rejected"),
    ):
        metrics.add_metric(name, "Count", sum(result.status == status for result in results))


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
    facts = [fact for result in results for fact in result.facts]
    boards = []
    for board in config.leaderboards:
        entry, previous = after.boards.get(board.id), before.boards.get(board.id)
        if not entry or entry == previous:
            continue
        try:
            stats, as_of = cached_stats(f"{board.id}#{entry['period']}", board.shards, datetime.now(UTC))
        except Exception:  # read after the commit: the awards stand, only this board's rank is left out
            logger.exception("could not read the histograms of %s to estimate ranks", board.id)
            continue
        was_on_board = previous is not None and previous["period"] == entry["period"]
        boards.append(
            BoardScoreOut(
                board=board.id,
                period=entry["period"],
                score=entry["score"],
                rank=estimated_rank(stats, entry["score"]),
                rank_before=estimated_rank(stats, previous["score"]) if was_on_board else None,  # type: ignore[index]
                as_of=as_of,
            )
        )
    return ProgressDelta(
        gained=gained,
        balances=balances,
        level=level,
        badges=[fact for fact in facts if fact["type"] == "badge_awarded"],
        streaks=[fact for fact in facts if fact["type"].startswith("streak_")],
        quests=[fact for fact in facts if fact["type"].startswith("quest_")],
        leaderboards=boards,
    )


def _counts(results: Sequence[EventResultOut]) -> dict[str, int]:
    return {
        "accepted": sum(r.status == "accepted" for r in results),
        "duplicates": sum(r.status == "duplicate" for r in results),
        "rejected": sum(r.status == "rejected" for r in results),
    }


def _sorted(results: list[EventResultOut]) -> list[EventResultOut]:
    return sorted(results, key=lambda r: r.index)

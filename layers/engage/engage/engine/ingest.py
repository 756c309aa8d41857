"""Apply a batch of one user's events: validate each against the config, run the rules, move levels.

Events are applied in the order given, so applying a sequence in one batch or split across several
consecutive batches gives the same state and facts (a property the tests check).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

from ..config.expressions import Scope, make_scope
from ..config.schema import MAX_LATE_WINDOW, EngagementConfig, EventSpec, PropertySpec, Rule, fits_type, yaml_number
from ..config.types import format_in_days, tzinfo_of
from .badges import apply_badges, retired_badge
from .effects import EventContext, amount_of, credit, holds, move_level, user_scope
from .leaderboards import update_boards
from .model import Applied, Event, EventResult, Outcome, Profile, Source, UserState
from .quests import apply_quests
from .streak_progress import apply_streaks

FUTURE_TOLERANCE = timedelta(minutes=5)  # device clocks drift; beyond this an event is refused


class _Rejected(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def apply_batch(
    config: EngagementConfig,
    state: UserState,
    events: Sequence[tuple[int, Event]],
    *,
    source: Source,
    now: datetime,
    already_applied: set[str] = frozenset(),  # type: ignore[assignment]
    profile: Profile | None = None,
) -> Outcome:
    """Apply `events` (with their positions in the request) to a copy of `state`.

    `already_applied` holds ids the store knows were applied before: they come back as duplicates.
    `profile`, when given, replaces the stored profile fields it sets (the request's context).
    """
    after = copy.deepcopy(state)
    if profile is not None:
        after.profile = merge_profile(state.profile, profile, state.preferences)
    seen = set(already_applied)
    results: list[EventResult] = []
    applied: list[Applied] = []
    for index, event in events:
        if event.id in seen:
            results.append(EventResult.duplicate(index, event.id))
            continue
        try:
            event = _checked(config, event, source, now)
        except _Rejected as rejection:
            results.append(EventResult(index, event.id, "rejected", rejection.code, rejection.reason))
            continue
        seen.add(event.id)
        result = EventResult(index, event.id, "accepted")
        _apply_rules(config, after, event, result)
        results.append(result)
        applied.append(Applied(event, tuple(result.facts)))
    boards = []
    if applied:
        _prune_counters(config, after, now)
        _compact_removed(config, after)
        gained: dict[str, int] = {}
        for result in results:
            for currency, amount in result.awards.items():
                gained[currency] = gained.get(currency, 0) + amount
        boards = update_boards(config, after, gained, now)
    return Outcome(before=state, after=after, results=results, applied=applied, boards=boards)


def local_time(config: EngagementConfig, profile: Profile, moment: datetime) -> datetime:
    """`moment` on the user's wall clock (their zone, else the config's default zone)."""
    return moment.astimezone(tzinfo_of(profile.timezone or config.default_timezone))


def period_key(per: str, local: datetime | date) -> str:
    """The user's local calendar period a moment falls in: '2026-11-22' or '2026-W47'."""
    if per == "day":
        return local.strftime("%Y-%m-%d")
    year, week, _ = local.isocalendar()
    return f"{year}-W{week:02d}"


# ---------------------------------------------------------------- validation


def _checked(config: EngagementConfig, event: Event, source: Source, now: datetime) -> Event:
    """The event if the config accepts it (integer properties as ints), else _Rejected with the reason."""
    spec = config.events.get(event.type)
    if spec is None:
        raise _Rejected(
            "unknown_type", f"unknown event type {event.type!r}; this app's types: {', '.join(sorted(config.events))}"
        )
    if spec.source == "server" and source == "client":
        raise _Rejected(
            "server_only",
            f"{event.type!r} is a server event; send it from your backend to POST /v1/server/events",
        )
    if event.occurred_at > now + FUTURE_TOLERANCE:
        raise _Rejected(
            "in_future",
            f"occurred_at {event.occurred_at.isoformat()} is more than 5 minutes ahead of server time "
            f"{now.isoformat(timespec='seconds')}; check the device clock",
        )
    if event.occurred_at < now - config.late_window:
        raise _Rejected(
            "too_late",
            f"occurred_at {event.occurred_at.isoformat()} is older than the late window "
            f"({format_in_days(config.late_window)}); such events no longer count",
        )
    return _with_checked_properties(event, spec)


def _with_checked_properties(event: Event, spec: EventSpec) -> Event:
    properties = dict(event.properties)
    for name, prop in spec.properties.items():
        if name not in event.properties or event.properties[name] is None:
            if prop.required:
                raise _Rejected("bad_property", f"property {name!r} is required for {event.type!r}")
            properties.pop(name, None)  # null is absent, for expressions too: has(event.<name>) is false
            continue
        problem = _property_problem(event.properties[name], prop)
        if problem:
            raise _Rejected("bad_property", f"property {name!r} = {event.properties[name]!r} {problem}")
        # One CEL type per declared property, whatever the JSON looked like: 12.0 is the integer 12, and a
        # number property is always a double (so `event.amount * 0.5` works for 10 as for 10.5).
        if prop.type == "integer":
            properties[name] = int(properties[name])
        elif prop.type == "number":
            properties[name] = float(properties[name])
    return Event(event.id, event.type, event.occurred_at, properties)


def _property_problem(value: Any, prop: PropertySpec) -> str | None:
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if numeric and isinstance(value, float) and not math.isfinite(value):
        return "is not a finite number"
    if not fits_type(value, prop.type):
        return f"is not {'an' if prop.type[0] in 'aeiou' else 'a'} {prop.type}"
    if prop.type == "integer" and not -(2**63) <= value < 2**63:  # CEL integers are 64-bit
        return "is outside the 64-bit integer range"
    if prop.min is not None and numeric and value < prop.min:
        return f"is below the minimum {yaml_number(prop.min)}"
    if prop.max is not None and numeric and value > prop.max:
        return f"is above the maximum {yaml_number(prop.max)}"
    if prop.enum is not None and value not in prop.enum:
        return f"is not one of {', '.join(map(str, prop.enum))}"
    return None


# ---------------------------------------------------------------- rules and levels


def _apply_rules(config: EngagementConfig, state: UserState, event: Event, result: EventResult) -> None:
    local = local_time(config, state.profile, event.occurred_at)
    ctx = EventContext(config, state, event, local, _scope(config, state, event, local), result)
    periods = {"day": period_key("day", local), "week": period_key("week", local)}
    for rule in config.rules_for(event.type):
        if not holds(ctx, rule.when, f"rule {rule.id}"):
            continue
        counter = f"{rule.id}|{periods[rule.limit.per]}" if rule.limit else None
        if counter and state.counters.get(counter, 0) >= rule.limit.max:  # type: ignore[union-attr]
            continue
        amounts = _amounts(ctx, rule)
        if not amounts:
            continue
        if counter:
            state.counters[counter] = state.counters.get(counter, 0) + 1
        for currency, amount in amounts.items():
            credit(ctx, currency, amount, rule=rule.id)
    apply_badges(ctx)
    apply_streaks(ctx)
    apply_quests(ctx)
    move_level(ctx)


def _scope(config: EngagementConfig, state: UserState, event: Event, local: datetime) -> Scope:
    return make_scope(
        {
            "event": event.properties,
            "local": {
                "date": local.strftime("%Y-%m-%d"),
                "weekday": local.isoweekday(),  # 1 = Monday … 7 = Sunday
                "hour": local.hour,
                "minute": local.minute,
            },
            "user": user_scope(config, state),
        }
    )


def _amounts(ctx: EventContext, rule: Rule) -> dict[str, int]:
    amounts = {
        currency: amount_of(ctx, amount, f"rule {rule.id}: award {currency}") for currency, amount in rule.award.items()
    }
    return {currency: amount for currency, amount in amounts.items() if amount > 0}


def _prune_counters(config: EngagementConfig, state: UserState, now: datetime) -> None:
    """Drop limit counters for periods no accepted event can fall into any more (keeps the item small).

    Kept for the longest late window any config may set, not this one's: a product owner who lengthens the
    window lets older events in, and a limit already reached on their day must still hold.
    """
    oldest = (now - MAX_LATE_WINDOW - timedelta(days=2)).date()
    state.counters = {key: n for key, n in state.counters.items() if _period_end(key.rsplit("|", 1)[1]) >= oldest}


def _compact_removed(config: EngagementConfig, state: UserState) -> None:
    """Shrink the progress of badges the config no longer has to what they paid (keeps the item small).

    Nothing that paid is dropped: a badge, quest, streak or board that comes back under the same id must not
    pay again what it already paid (see badges.retired_badge). Streaks, quests and boards keep their state,
    which is small and bounded.
    """
    current = {badge.id for badge in config.badges}
    for badge_id in set(state.badges) - current:
        kept = retired_badge(state.badges.pop(badge_id))
        if kept is not None:
            state.badges[badge_id] = kept


def _period_end(period: str) -> date:
    if "-W" in period:
        year, week = period.split("-W")
        return date.fromisocalendar(int(year), int(week), 7)
    return date.fromisoformat(period)


def merge_profile(stored: Profile, update: Profile, preferences: dict[str, Any]) -> Profile:
    """What the app reports (an events request's context, a device's registration) updates the profile; a zone
    or locale the user chose in the preferences stays in force, and the report is kept for when it is reset."""
    timezone, reported_timezone = _settled(
        stored.timezone, stored.reported_timezone, preferences.get("timezone"), preferences.get("timezone"),
        update.timezone,
    )  # fmt: skip
    locale, reported_locale = _settled(
        stored.locale, stored.reported_locale, preferences.get("locale"), preferences.get("locale"), update.locale
    )
    return Profile(
        timezone=timezone,
        locale=locale,
        app_version=update.app_version or stored.app_version,
        display_name=update.display_name or stored.display_name,
        reported_timezone=reported_timezone,
        reported_locale=reported_locale,
    )


def with_choices(profile: Profile, chosen: dict[str, Any], before: dict[str, Any]) -> Profile:
    """The profile under the user's zone and locale choices `chosen` (their preferences after a change), where
    `before` were the choices it was made under: a choice is in force, else what the app last reported."""
    timezone, reported_timezone = _settled(
        profile.timezone, profile.reported_timezone, before.get("timezone"), chosen.get("timezone")
    )
    locale, reported_locale = _settled(
        profile.locale, profile.reported_locale, before.get("locale"), chosen.get("locale")
    )
    return replace(
        profile, timezone=timezone, locale=locale, reported_timezone=reported_timezone, reported_locale=reported_locale
    )


def _settled(
    in_force: str | None, kept: str | None, chosen_before: str | None, chosen: str | None, report: str | None = None
) -> tuple[str | None, str | None]:
    """(the value in force, the app's report kept apart): the report is kept apart only while a choice is in
    force; without one, the value in force is the report."""
    report = report or (kept if chosen_before else in_force)
    return chosen or report, report if chosen else None

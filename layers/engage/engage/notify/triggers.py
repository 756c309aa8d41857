"""From committed facts (or the clock) to candidate messages: which triggers fire, with what texts.

Pure: the caller passes the config, the user's current state and the facts; nothing here reads or writes.
A message's id is derived from (trigger, user, fact), so a fact seen twice (a retried stream record)
yields the same message, which the inbox's conditional write then stores once.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ulid import ULID

from ..config.expressions import ExpressionError
from ..config.schema import EngagementConfig, Trigger
from ..engine.effects import user_scope
from ..engine.ingest import local_time
from ..engine.model import UserState
from ..engine.streaks import load_streak, period_index, streak_view
from .policy import Candidate, UserPrefs
from .templates import Rendered, render

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FactSeen:
    """One fact from the ledger: `key` identifies it for good (ledger row + position), `at` is when it was written.

    `id_at` is the time the message id carries when it must not depend on the moment of evaluation (a schedule
    run twice a day gives one message); by default `at`.
    """

    key: str
    at: datetime
    fact: dict[str, Any]
    id_at: datetime | None = None

    @property
    def position(self) -> int:
        """The fact's place in its ledger row (the key's last part; 0 for a fact of its own, a schedule's)."""
        last = self.key.rsplit("#", 1)[-1]
        return int(last) if last.isdigit() else 0


@dataclass(frozen=True)
class Prepared:
    """A trigger that fired for a fact: the policy's candidate, the texts, and what its `when` was read on."""

    candidate: Candidate
    trigger: Trigger
    rendered: Rendered
    fact: FactSeen


def message_id(trigger_id: str, user_id: str, fact_key: str, at: datetime) -> str:
    """A ULID whose time is the fact's and whose randomness is a hash of (trigger, user, fact): the same
    fact always gives the same id (dedupe), and the inbox still sorts by time."""
    digest = hashlib.sha256(f"{trigger_id}\x1f{user_id}\x1f{fact_key}".encode()).digest()
    millis = int(at.timestamp() * 1000)
    return str(ULID.from_bytes(millis.to_bytes(6, "big") + digest[:10]))


def user_values(config: EngagementConfig, state: UserState) -> dict[str, Any]:
    """`user` as templates and `when` expressions see it."""
    name = state.profile.display_name
    return {
        "id": state.user_id,
        "first_name": name.split()[0] if name and name.split() else None,
        "display_name": name,
        "locale": state.profile.locale or config.default_locale,
        "timezone": state.profile.timezone or config.default_timezone,
        **user_scope(config, state),  # level, balances, earned: as rules read them
    }


def streak_values(config: EngagementConfig, state: UserState, streak_id: str, now: datetime) -> dict[str, Any]:
    """A streak as of now on the user's clock (length 0 once broken), as `streak` in scope."""
    spec = next((streak for streak in config.streaks if streak.id == streak_id), None)
    if spec is None:
        return {}
    current = period_index(spec.period, local_time(config, state.profile, now))
    view = streak_view(spec, load_streak(spec, state.streaks.get(streak_id)), current)
    return {
        "id": spec.id,
        "name": spec.name,
        "length": view.length,
        "longest": view.longest,
        "freezes": view.freezes,
        "done_today": view.done_this_period,
        "at_risk": view.at_risk,
    }


def scope(
    config: EngagementConfig, trigger: Trigger, state: UserState, seen: FactSeen, now: datetime
) -> dict[str, Any]:
    """What a trigger's `when` and texts read: fact, user, and the badge/level/streak/quest/board it is about."""
    fact = seen.fact
    values: dict[str, Any] = {
        "fact": fact,
        "user": user_values(config, state),
        "badge": {},
        "level": {},
        "streak": {},
        "quest": {},
        "leaderboard": {},
    }
    if fact.get("type") == "badge_awarded":
        badge = next((b for b in config.badges if b.id == fact.get("badge")), None)
        values["badge"] = {
            "id": fact.get("badge"),
            "name": fact.get("name") or (badge.name if badge else None),
            "tier": fact.get("tier"),
            "description": badge.description if badge else None,
        }
    elif fact.get("type") == "level_up":
        values["level"] = {"number": fact.get("level"), "name": fact.get("name")}
    board_id = trigger.leaderboard or fact.get("board")
    if board_id:
        board = next((b for b in config.leaderboards if b.id == board_id), None)
        values["leaderboard"] = {"id": board_id, "name": board.name if board else board_id}
    streak_id = trigger.streak or fact.get("streak")
    if streak_id:
        values["streak"] = streak_values(config, state, str(streak_id), now)
    if fact.get("quest"):
        quest = next((q for q in config.quests if q.id == fact.get("quest")), None)
        values["quest"] = {"id": fact.get("quest"), "name": quest.name if quest else fact.get("quest")}
    return values


def applies(trigger: Trigger, fact: dict[str, Any]) -> bool:
    """Whether a trigger listens for this fact (type, and the leaderboard or streak it names)."""
    if trigger.on != fact.get("type"):
        return False
    if trigger.leaderboard is not None and trigger.leaderboard != fact.get("board"):
        return False
    # On a streak fact's trigger, `streak:` picks that streak's facts; on others it only puts a streak in scope.
    return trigger.streak is None or "streak" not in fact or trigger.streak == fact["streak"]


def holds(trigger: Trigger, values: dict[str, Any]) -> bool:
    """The trigger's `when` on these values; an expression that fails on real data does not fire (logged)."""
    if trigger.when is None:
        return True
    try:
        return bool(trigger.when.evaluate(values))
    except ExpressionError as exc:
        log.warning("trigger %s: `when` failed, not sent: %s", trigger.id, exc)
        return False


def prepare(config: EngagementConfig, state: UserState, facts: list[FactSeen], now: datetime) -> list[Prepared]:
    """Every (trigger, fact) pair that fires, with its candidate and rendered texts, in fact order."""
    notifications = config.notifications
    if notifications is None:
        return []
    prepared = []
    for seen in facts:
        for trigger in notifications.triggers:
            if not applies(trigger, seen.fact):
                continue
            values = scope(config, trigger, state, seen, now)
            if not holds(trigger, values):
                continue
            prepared.append(prepared_message(config, trigger, state, seen, values))
    return prepared


def prepared_message(
    config: EngagementConfig, trigger: Trigger, state: UserState, seen: FactSeen, values: dict[str, Any]
) -> Prepared:
    """The candidate and texts of a trigger that fired for a fact, `values` being its scope()."""
    candidate = Candidate(
        message_id=message_id(trigger.id, state.user_id, seen.key, seen.id_at or seen.at),
        trigger_id=trigger.id,
        category=trigger.category,
        priority=trigger.priority,
        fact_key=seen.key,
        created_at=seen.at,
        valid_until=seen.at + trigger.valid_for,
        position=seen.position,
    )
    rendered = render(trigger, state.profile.locale, config.default_locale, values)
    return Prepared(candidate, trigger, rendered, seen)


def scheduled_fact(config: EngagementConfig, trigger: Trigger, state: UserState, now: datetime) -> FactSeen:
    """The clock's 'fact' for a schedule trigger: one per trigger and local day of the user (so once a day).

    Its message id carries the day's slot (`at_local` on the user's clock), so every run that day — a retry,
    a second scheduler call — names the same message; validity counts from the run itself.
    """
    local = local_time(config, state.profile, now)
    key = f"schedule#{trigger.id}#{local.date().isoformat()}"
    hour, minute = (int(part) for part in (trigger.at_local or "00:00").split(":"))
    # fold=0: a run in the hour repeated when clocks go back names the same slot as one before it.
    slot = local.replace(hour=hour, minute=minute, second=0, microsecond=0, fold=0).astimezone(UTC)
    fact = {"type": "schedule", "event_id": key, "trigger": trigger.id}
    return FactSeen(key, now.astimezone(UTC), fact, id_at=slot)


def _pause_end(stored: str) -> datetime | None:
    """A stored pause's end in UTC. One stored before the API bounded pauses may fall outside the calendar in
    UTC ("9999-12-31T23:00-05:00"): read as paused for good, or (year 1) not paused, never as a failure."""
    end = datetime.fromisoformat(stored)
    try:
        return end.astimezone(UTC)
    except OverflowError:
        return datetime.max.replace(tzinfo=UTC) if end.year > 1 else None


def user_prefs(config: EngagementConfig, state: UserState) -> UserPrefs:
    """The policy's view of the user's choices: theirs where set, else the config's defaults."""
    from ..config.schema import QuietHours

    chosen = state.preferences
    defaults = config.notifications.defaults if config.notifications else None
    # A null stored by PUT /v1/me/preferences means "the app's default", false "none" (services/preferences.py).
    quiet: QuietHours | None = defaults.quiet_hours if defaults else None
    if chosen.get("quiet_hours") is False:
        quiet = None
    elif chosen.get("quiet_hours"):
        quiet = QuietHours(**chosen["quiet_hours"])
    paused = chosen.get("paused_until")
    return UserPrefs(
        opted_out={category for category, on in chosen.get("categories", {}).items() if not on},
        paused_until=_pause_end(paused) if paused else None,
        quiet_hours=quiet,
        timezone=state.profile.timezone or config.default_timezone,
        weekly_budget=chosen.get("weekly_budget"),
    )

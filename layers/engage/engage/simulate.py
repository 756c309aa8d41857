"""`engage config simulate`: what a config would award for a recorded stream of events, before publishing it.

Pure: the engine applies the events in the order of the file, each as if it arrived when it happened, or at
its `received_at` when the line gives one (so a late upload is refused past the late window, as the ingest
would), and nothing is read from or written to AWS. The same engine serves POST /v1/events, so a simulation
awards what the API would have. Leaderboard standings and their period rewards (paid when a period is
closed) are not simulated.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, ValidationError

from .api.common import explain
from .api.events import ServerEventIn
from .config import EngagementConfig
from .config.issues import format_path
from .config.types import TimeZoneName
from .engine import Event, Profile, UserState, apply_batch


class EventsInvalid(ValueError):
    """Lines of an events file that are no event; each problem names its line."""


class RecordedEvent(ServerEventIn):
    """One line of an events file: a server event (with its user), optionally the zone the app reported then,
    the route it came by (default: the one its type is declared for) and when it reached the server."""

    timezone: TimeZoneName | None = None
    source: Literal["client", "server"] | None = None
    received_at: AwareDatetime | None = None


@dataclass
class UserRun:
    """One user's simulated history: the final state, every fact, and how each event was answered."""

    state: UserState
    facts: list[dict[str, Any]] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)  # accepted, duplicate, rejected:<code>
    warnings: Counter[str] = field(default_factory=Counter)  # e.g. an award that failed on an event
    applied: dict[str, set[str]] = field(default_factory=lambda: {"client": set(), "server": set()})  # ids by route


def read_events(path: Path) -> list[RecordedEvent]:
    """The events of a JSON Lines file (one object per line; blank lines and lines starting with # are skipped)."""
    events, problems = [], []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line_number = exc.object[: exc.start].count(b"\n") + 1
        raise EventsInvalid(
            f"line {line_number}: not UTF-8 text (byte {exc.object[exc.start]:#04x}). Fix: save the file as UTF-8"
        ) from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            events.append(RecordedEvent.model_validate_json(line))
        except ValidationError as exc:
            for error in exc.errors():
                where = format_path(error["loc"]) if error["loc"] else "the line"
                problems.append(f"line {number}, {where}: {explain(error)}")
    if problems:
        raise EventsInvalid(
            "\n".join(problems[:20] + ([f"… and {len(problems) - 20} more"] if len(problems) > 20 else []))
        )
    return events


def simulate(config: EngagementConfig, events: list[RecordedEvent]) -> dict[str, UserRun]:
    """Apply the events in file order, as the ingest would have when each arrived: when it happened, or at its
    `received_at`. A client and a server event may share an id, as in the ledger."""
    runs: dict[str, UserRun] = {}
    for index, recorded in enumerate(events):
        run = runs.setdefault(recorded.user_id, UserRun(UserState(user_id=recorded.user_id)))
        spec = config.events.get(recorded.type)
        source = recorded.source or (spec.source if spec is not None else "client")
        event = Event(recorded.id, recorded.type, recorded.occurred_at, dict(recorded.properties))
        outcome = apply_batch(
            config,
            run.state,
            [(index, event)],
            source=source,
            now=recorded.received_at or recorded.occurred_at,
            already_applied=run.applied[source],
            profile=Profile(timezone=recorded.timezone) if recorded.timezone else None,
        )
        run.state = outcome.after
        for result in outcome.results:
            run.answers[result.status if result.status != "rejected" else f"rejected:{result.code}"] += 1
            run.facts += [fact.as_dict() for fact in result.facts]
            run.warnings.update(result.warnings)
        run.applied[source] |= {applied.event.id for applied in outcome.applied}
    return runs


def summary(config: EngagementConfig, runs: dict[str, UserRun]) -> dict[str, Any]:
    """What each user ends with, and the totals a product owner weighs a change by (JSON-able)."""
    users = {user_id: _user_summary(config, run) for user_id, run in runs.items()}
    badge_holders = Counter(badge for user in users.values() for badge in user["badges"])
    return {
        "users": users,
        "totals": {
            currency: sum(u["balances"].get(currency, 0) for u in users.values()) for currency in config.currencies
        },
        "levels": dict(sorted(Counter(u["level"] for u in users.values()).items())),
        "badges": {badge.id: badge_holders.get(badge.id, 0) for badge in config.badges},  # holders by badge id
        "answers": dict(sum((run.answers for run in runs.values()), Counter())),
        "warnings": dict(sum((run.warnings for run in runs.values()), Counter()).most_common()),
    }


def _user_summary(config: EngagementConfig, run: UserRun) -> dict[str, Any]:
    state = run.state
    badges = {}  # badge id → the highest tier earned (None for a badge without tiers)
    streaks: dict[str, int] = {}  # streak id → the longest run reached
    quests: Counter[str] = Counter()  # quest id → runs completed
    for fact in run.facts:
        if fact["type"] == "badge_awarded":
            badges[fact["badge"]] = fact.get("tier")
        elif fact["type"] == "streak_extended":
            streaks[fact["streak"]] = max(streaks.get(fact["streak"], 0), fact.get("current_length", fact["length"]))
        elif fact["type"] == "quest_completed":
            quests[fact["quest"]] += 1
    level = f"{state.level + 1} {config.levels.name_of(state.level)}" if config.levels else None
    return {
        "balances": {currency: state.balances.get(currency, 0) for currency in config.currencies},
        "level": level,
        "badges": badges,
        "longest_streaks": streaks,
        "quests_completed": dict(quests),
        "answers": dict(run.answers),
    }

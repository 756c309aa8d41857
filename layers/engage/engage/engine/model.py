"""Plain values the engine takes and returns: no I/O, no AWS types."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Source = Literal["client", "server", "system"]  # system: Engage itself (e.g. leaderboard rewards)
Status = Literal["accepted", "duplicate", "rejected"]


@dataclass(frozen=True)
class Event:
    """One in-app event, already structurally valid (id, type, aware occurred_at)."""

    id: str
    type: str
    occurred_at: datetime
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class Profile:
    """What personalises messages and sets the user's calendar. `timezone` and `locale` are the ones in force:
    the user's choice in the preferences, else what the app last reported, which is kept apart in
    `reported_*` so that resetting the choice returns to it."""

    timezone: str | None = None
    locale: str | None = None
    app_version: str | None = None
    display_name: str | None = None
    reported_timezone: str | None = None
    reported_locale: str | None = None


@dataclass
class UserState:
    """Everything the engine needs about one user; `version` 0 means the user is new."""

    user_id: str
    version: int = 0
    balances: dict[str, int] = field(default_factory=dict)
    earned: dict[str, int] = field(default_factory=dict)  # lifetime totals; levels follow these
    level: int = 0  # index into levels.thresholds
    counters: dict[str, int] = field(default_factory=dict)  # "rule-id|period" → times awarded
    profile: Profile = field(default_factory=Profile)
    # Progress toward badges, streaks and quests, by id: plain JSON-able dicts (see badges.py, quests.py,
    # streaks.py for their shapes), so the store can keep them without knowing them.
    badges: dict[str, dict[str, Any]] = field(default_factory=dict)
    streaks: dict[str, dict[str, Any]] = field(default_factory=dict)
    quests: dict[str, dict[str, Any]] = field(default_factory=dict)
    boards: dict[str, dict[str, Any]] = field(default_factory=dict)  # board id → {"period", "score"}
    # What the user chose for notifications (services/preferences.py): categories off, quiet hours, pause, budget.
    preferences: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Fact:
    """Something that happened because of an event, e.g. points_awarded or level_up."""

    type: str
    event_id: str
    data: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "event_id": self.event_id, **self.data}


@dataclass
class EventResult:
    index: int
    id: str | None
    status: Status
    code: str | None = None
    reason: str | None = None
    awards: dict[str, int] = field(default_factory=dict)
    facts: list[Fact] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # e.g. an award expression that failed on this event

    @classmethod
    def duplicate(cls, index: int, event_id: str | None) -> EventResult:
        """An event an earlier request (or an earlier copy in this one) applied already."""
        return cls(index, event_id, "duplicate", "duplicate", "this event id was already applied")


@dataclass(frozen=True)
class Applied:
    """An accepted event and what it caused: becomes one ledger row (dedupe marker + facts)."""

    event: Event
    facts: tuple[Fact, ...]


@dataclass
class Outcome:
    """The result of applying a batch to a user's state."""

    before: UserState
    after: UserState
    results: list[EventResult]
    applied: list[Applied]
    boards: list[Any] = field(default_factory=list)  # leaderboards.BoardScore rows to write

    @property
    def changed(self) -> bool:
        return (
            bool(self.applied)
            or self.before.profile != self.after.profile
            or self.before.preferences != self.after.preferences
        )

"""Streaks: consecutive active periods (days or ISO weeks) on the user's calendar, bridged by freezes.

A streak is defined by its set of active periods: the state is that set, replayed in order. Events may
arrive late and in any order, so recording a period replays the recent window and reports only the facts
the replay did not already contain; periods older than the window are folded into an anchor so the state
stays bounded. Pure code: no I/O, no clock.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal

from ..config.schema import Streak

FactType = Literal["streak_extended", "streak_frozen", "streak_broken", "streak_milestone"]


def period_index(period: Literal["day", "week"], local: datetime | date) -> int:
    """Ordinal of the user's local period: consecutive days (or ISO weeks) have consecutive indices.

    `local` must already be on the user's wall clock: the index is taken from its local date.
    """
    day = local.date() if isinstance(local, datetime) else local
    if period == "day":
        return day.toordinal()
    # Mondays have ordinals 1, 8, 15, …: floor division maps each ISO week to one integer.
    return (day - timedelta(days=day.weekday())).toordinal() // 7


@dataclass(frozen=True)
class Tally:
    """The replay's running totals after some prefix of the active periods."""

    length: int = 0
    longest: int = 0
    freezes: int = 0  # held
    run: int = 0  # active periods toward the next freeze (a frozen gap does not reset it, a break does)
    last: int | None = None  # last active period


@dataclass(frozen=True)
class StreakState:
    """The anchor (replay of everything folded) plus the active periods after it, sorted.

    Milestones reached in the current run need no storing: within a run the length grows by exactly one
    per active period, so a milestone is reached exactly when the length equals it.
    """

    anchor: Tally = Tally()
    active: tuple[int, ...] = ()

    @property
    def newest(self) -> int | None:
        return self.active[-1] if self.active else self.anchor.last

    def to_dict(self) -> dict[str, Any]:
        return {"anchor": asdict(self.anchor), "active": list(self.active)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StreakState:
        return cls(Tally(**data["anchor"]), tuple(sorted(data["active"])))


def load_streak(spec: Streak, stored: dict[str, Any] | None) -> StreakState | None:
    """A streak's stored state, or None (a fresh start) if its period was changed in the config since: day
    and week numbers do not convert, and read as the other they would never extend again."""
    if not stored or stored.get("period", spec.period) != spec.period:
        return None
    return StreakState.from_dict(stored)


def stored_streak(spec: Streak, state: StreakState) -> dict[str, Any]:
    """What the user item keeps of a streak: its state and the period it counts in."""
    return {**state.to_dict(), "period": spec.period}


@dataclass(frozen=True)
class StreakFact:
    type: FactType
    data: dict[str, Any]

    @property
    def key(self) -> tuple[Any, ...]:
        """What identifies a fact across replays: its data (lengths, freezes left) may shift as late
        periods arrive, but a milestone value is part of what happened."""
        milestone = (self.data["length"],) if self.type == "streak_milestone" else ()
        return (self.type, self.data["period"], *milestone)


def record_activity(
    spec: Streak, state: StreakState | None, period: int, keep_periods: int
) -> tuple[StreakState, list[StreakFact]]:
    """Mark `period` active (idempotent) and return the new state and the facts this activity newly caused.

    `keep_periods` is how far behind the newest active period a late event may still land (the late
    window in periods); older periods are ignored, since their effect was folded into the anchor.
    """
    state = state or StreakState()
    if period in state.active or _outside_window(state, period, keep_periods):
        return state, []
    tally, before = _replay(spec, state.anchor, state.active)
    active = list(state.active)
    bisect.insort(active, period)
    current, after = _replay(spec, state.anchor, active)
    known = {fact.key for fact in before}
    # A late period can move where a milestone falls (lengthening a run from its start, joining two runs): a
    # milestone its run had already reached was celebrated then and is no news now. That run is the current
    # one up to its length (its earlier milestones may be folded into the anchor), unless the late period cut
    # it (it can change the freezes held, so a gap it bridged breaks it now), or any run whose replay before
    # had that milestone.
    breaks = [fact.data["period"] for fact in after if fact.type == "streak_broken"]
    reached = [(fact.data["period"], fact.data["length"]) for fact in before if fact.type == "streak_milestone"]
    # Where the current run began before (None: at or before the anchor), and whether a break now cuts it.
    began = max((f.data["period"] for f in before if f.type == "streak_broken"), default=None)
    split = tally.last is not None and any((began is None or began < b) and b <= tally.last for b in breaks)

    def same_run(a: int, b: int) -> bool:
        low, high = sorted((a, b))
        return not any(low < start <= high for start in breaks)

    def celebrated(fact: StreakFact) -> bool:
        if fact.type != "streak_milestone":
            return False
        at, length = fact.data["period"], fact.data["length"]
        if any(length == was and same_run(at, period) for period, was in reached):
            return True
        return not split and tally.last is not None and length <= tally.length and same_run(at, tally.last)

    facts = [fact for fact in after if fact.key not in known and not celebrated(fact)]
    # `length` is the run's length at the fact's period; a late event that fills a gap also lengthens the
    # periods after it, which have their facts already: `current_length` is what the streak is now.
    facts = [
        StreakFact(fact.type, {**fact.data, "current_length": current.length})
        if fact.type == "streak_extended"
        else fact
        for fact in facts
    ]
    cut = bisect.bisect_right(active, active[-1] - keep_periods)
    anchor = _replay(spec, state.anchor, active[:cut])[0] if cut else state.anchor
    return StreakState(anchor, tuple(active[cut:])), facts


@dataclass(frozen=True)
class StreakView:
    length: int  # current length as the user sees it *now*: 0 once the streak is broken beyond repair by freezes
    longest: int
    freezes: int  # held now
    done_this_period: bool
    at_risk: bool  # length > 0 and not done this period
    last_period: int | None


def streak_view(spec: Streak, state: StreakState | None, current_period: int) -> StreakView:
    """The streak as of `current_period`; a break shows as length 0 now, its fact comes with the next activity."""
    state = state or StreakState()
    tally, _ = _replay(spec, state.anchor, state.active)
    if tally.last is None:
        return StreakView(0, tally.longest, tally.freezes, False, False, None)
    done = tally.last >= current_period  # ahead of `current_period` only if the caller's clock lags
    missed = current_period - tally.last - 1  # the current period is not missed yet
    length = 0 if missed > tally.freezes else tally.length
    return StreakView(length, tally.longest, tally.freezes, done, length > 0 and not done, tally.last)


# ---------------------------------------------------------------- replay


def _outside_window(state: StreakState, period: int, keep_periods: int) -> bool:
    # The anchor check matters when keep_periods grew since the last fold.
    newest, folded = state.newest, state.anchor.last
    return (newest is not None and period <= newest - keep_periods) or (folded is not None and period <= folded)


def _replay(spec: Streak, tally: Tally, periods: Iterable[int]) -> tuple[Tally, list[StreakFact]]:
    """Apply the active periods (sorted, all after `tally.last`) one by one: the single source of truth."""
    facts: list[StreakFact] = []

    def fact(type_: FactType, period: int, **data: Any) -> None:
        facts.append(StreakFact(type_, {"streak": spec.id, "period": period, **data}))

    for q in periods:
        length, freezes, run = tally.length + 1, tally.freezes, tally.run
        if tally.last is not None and q > tally.last + 1:
            gap = q - tally.last - 1
            if freezes >= gap:
                for frozen in range(tally.last + 1, q):
                    freezes -= 1
                    fact("streak_frozen", frozen, freezes_left=freezes)
            else:
                fact("streak_broken", q, previous_length=tally.length)
                length, run = 1, 0  # held freezes stay; the run toward the next one restarts
        run += 1
        if spec.freezes is not None and run >= spec.freezes.earn_every:
            run = 0
            if freezes < spec.freezes.max:  # earned at the cap is lost, not banked
                freezes += 1
        fact("streak_extended", q, length=length)
        if length in spec.milestones:
            fact("streak_milestone", q, length=length)
        tally = replace(tally, length=length, longest=max(tally.longest, length), freezes=freezes, run=run, last=q)
    return tally, facts

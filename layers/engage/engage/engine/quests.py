"""Quests: steps done in any order, optionally within a time from the first progress, optionally recurring.

Progress of one quest in UserState.quests[id]:
  {"instance": "once" | "2026-11-22" | "2026-W47",  # which run of the quest (daily/weekly: the user's local period)
   "started": epoch_s | None,                        # first progress, for `within`
   "steps": {step_id: value},
   "state": "active" | "completed" | "expired",
   "previous": {the same} | None}                   # the newest run but one; None: no run before this one
                                                     # was kept; absent (stored before it was kept, or the
                                                     # recurrence changed): older runs are over
A recurring quest starts afresh at the user's local midnight (daily) or Monday 00:00 (weekly). A late event
counts for its run while that run is one of the two newest the user has had events in (yesterday's workout
synced this morning still completes yesterday's goal, whether today's came first or not); an older run is
over. A run is paid at most once. A `within` window opens at the first event that counts; events before it
(arriving late) or after it do not count, and one after it expires the quest, which an event from inside the
window that arrives later can still complete.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..config.schema import Quest
from .effects import EventContext, amount_of, credit, holds, summed


def instance_of(quest: Quest, local: datetime) -> str:
    """The run of the quest a local moment belongs to."""
    if quest.recurrence == "daily":
        return local.strftime("%Y-%m-%d")
    if quest.recurrence == "weekly":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    return "once"


def _recurrence(instance: str) -> str:
    return "once" if instance == "once" else "week" if "-W" in instance else "day"


def _newer_run(stored: str, current: str) -> bool:
    """Whether `current` starts a new run after `stored` (a changed recurrence always does)."""
    return _recurrence(stored) != _recurrence(current) or current > stored


def _placed(stored: dict[str, Any] | None, instance: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(the quest's progress to store if the event changes it, the run in it the event counts for), or None for
    a run that is over (older than the two newest).

    A run put in `previous` by a late event was never current nor kept before (both only move forward), so it
    was never paid: a run is paid at most once.
    """
    fresh: dict[str, Any] = {"instance": instance, "started": None, "steps": {}, "state": "active"}
    if stored is None:
        first = {**fresh, "previous": None}  # the user's first run: none before it was ever paid
        return first, first
    if stored["instance"] == instance:
        return stored, stored
    if _newer_run(stored["instance"], instance):
        if _recurrence(instance) != _recurrence(stored["instance"]):
            return fresh, fresh  # no `previous`: runs of the old recurrence are over
        current = {**fresh, "previous": {key: value for key, value in stored.items() if key != "previous"}}
        return current, current
    if "previous" not in stored:
        return None  # kept before `previous` existed, or the recurrence changed: older runs may have been paid
    previous = stored["previous"]
    if previous is not None and previous["instance"] == instance:
        return stored, previous
    if previous is None or _newer_run(previous["instance"], instance):  # newer than the run kept before
        return {**stored, "previous": fresh}, fresh
    return None


def run_of(progress: dict[str, Any] | None, instance: str) -> dict[str, Any] | None:
    """The stored run of a quest for `instance` (the current one or the one kept before), if any."""
    if progress is None:
        return None
    if progress["instance"] == instance:
        return progress
    previous = progress.get("previous")
    return previous if previous is not None and previous["instance"] == instance else None


def apply_quests(ctx: EventContext) -> None:
    """Advance the steps this event counts for; complete (and reward) or expire quests as they finish."""
    for quest in ctx.config.quests_for(ctx.event.type):
        instance = instance_of(quest, ctx.local)
        placed = _placed(ctx.state.quests.get(quest.id), instance)
        if placed is None or placed[1]["state"] == "completed":
            continue  # a late event of a run that is over, or this run is already completed
        progress, run = placed
        moment = ctx.event.occurred_at.timestamp()
        started = run["started"]
        if quest.within and started is not None and moment < started:
            continue  # a late event from before the window opened does not count
        deadline = started + quest.within.total_seconds() if quest.within and started is not None else None
        if deadline is not None and moment > deadline:
            if run["state"] == "active":
                run["state"] = "expired"
                ctx.fact("quest_expired", quest=quest.id, name=quest.name, instance=instance)
                ctx.state.quests[quest.id] = progress
            continue
        # Inside the window: it counts, also after a later event expired the quest (a late event that happened
        # in time completes it as it would have in time order).
        if _advance_steps(ctx, quest, run, moment):
            ctx.state.quests[quest.id] = progress


def _advance_steps(ctx: EventContext, quest: Quest, progress: dict[str, Any], moment: float) -> bool:
    advanced = False
    for step in quest.steps:
        flt = step.filter
        if flt.event != ctx.event.type or not holds(ctx, flt.when, f"quest {quest.id} step {step.id}"):
            continue
        amount = 1 if step.count is not None else ctx.event.properties.get(step.sum.property)  # type: ignore[union-attr]
        if not isinstance(amount, int | float) or isinstance(amount, bool) or amount <= 0:
            continue
        before = progress["steps"].get(step.id, 0)
        progress["steps"][step.id] = summed(before, amount)
        progress["started"] = progress["started"] or moment
        advanced = True
        if before < step.gte <= progress["steps"][step.id]:
            ctx.fact(
                "quest_step_completed", quest=quest.id, step=step.id, name=quest.name, instance=progress["instance"]
            )
    if advanced and all(progress["steps"].get(step.id, 0) >= step.gte for step in quest.steps):
        progress["state"] = "completed"
        ctx.fact("quest_completed", quest=quest.id, name=quest.name, instance=progress["instance"])
        for currency, amount in (quest.reward or {}).items():
            paid = amount_of(ctx, amount, f"quest {quest.id}: reward {currency}")
            if paid > 0:
                credit(ctx, currency, paid, quest=quest.id)
    return advanced

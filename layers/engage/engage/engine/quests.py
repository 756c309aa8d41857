"""Quests: steps done in any order, optionally within a time from the first progress, optionally recurring.

Progress of one quest in UserState.quests[id]:
  {"instance": "once" | "2026-11-22" | "2026-W47",  # which run of the quest (daily/weekly: the user's local period)
   "started": epoch_s | None,                        # first progress, for `within`
   "steps": {step_id: value},
   "state": "active" | "completed" | "expired"}
A recurring quest starts afresh at the user's local midnight (daily) or Monday 00:00 (weekly); a late event
of an earlier run counts for nothing (that run is over). A `within` window opens at the first event that
counts; events before it (arriving late) or after it do not count, and one after it expires the quest, which
an event from inside the window that arrives later can still complete.
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


def _newer_run(stored: str, current: str) -> bool:
    """Whether `current` starts a new run after `stored` (a changed recurrence always does)."""

    def kind(instance: str) -> str:
        return "once" if instance == "once" else "week" if "-W" in instance else "day"

    return kind(stored) != kind(current) or current > stored


def apply_quests(ctx: EventContext) -> None:
    """Advance the steps this event counts for; complete (and reward) or expire quests as they finish."""
    for quest in ctx.config.quests_for(ctx.event.type):
        instance = instance_of(quest, ctx.local)
        progress = ctx.state.quests.get(quest.id)
        if progress is None or _newer_run(progress["instance"], instance):
            progress = {"instance": instance, "started": None, "steps": {}, "state": "active"}
        if progress["instance"] != instance or progress["state"] == "completed":
            continue  # a late event of a finished run, or this run is already completed
        moment = ctx.event.occurred_at.timestamp()
        started = progress["started"]
        if quest.within and started is not None and moment < started:
            continue  # a late event from before the window opened does not count
        deadline = started + quest.within.total_seconds() if quest.within and started is not None else None
        if deadline is not None and moment > deadline:
            if progress["state"] == "active":
                progress["state"] = "expired"
                ctx.fact("quest_expired", quest=quest.id, name=quest.name, instance=instance)
                ctx.state.quests[quest.id] = progress
            continue
        # Inside the window: it counts, also after a later event expired the quest (a late event that happened
        # in time completes it as it would have in time order).
        if _advance_steps(ctx, quest, progress, moment):
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

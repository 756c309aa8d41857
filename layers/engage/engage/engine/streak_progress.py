"""Streaks in the ingest: which period an event lands in, for the user, and what that changes."""

from __future__ import annotations

from ..config.schema import EngagementConfig, Streak
from .effects import EventContext, holds
from .streaks import load_streak, period_index, record_activity, stored_streak


def keep_periods(config: EngagementConfig, streak: Streak) -> int:
    """How many recent periods a streak keeps in detail: a late event can reach back this far."""
    days = config.late_window.days + 2
    return days if streak.period == "day" else days // 7 + 2


def apply_streaks(ctx: EventContext) -> None:
    """Mark the event's local period active on every streak it counts for (idempotent per period)."""
    for streak in ctx.config.streaks_for(ctx.event.type):
        if not holds(ctx, streak.when, f"streak {streak.id}"):
            continue
        state = load_streak(streak, ctx.state.streaks.get(streak.id))
        period = period_index(streak.period, ctx.local)
        state, facts = record_activity(streak, state, period, keep_periods(ctx.config, streak))
        ctx.state.streaks[streak.id] = stored_streak(streak, state)
        for fact in facts:
            ctx.fact(fact.type, **fact.data)

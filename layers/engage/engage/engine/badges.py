"""Badges: count, sum or distinct values of matching events, optionally within a rolling window; tiers in order.

Progress of one badge in UserState.badges[id]:
  {"value": number,                 # count or sum so far (without a window)
   "seen": [digests],               # distinct criteria: short digests of the values met so far (until earned)
   "window": [[epoch_s, amount]],   # `within` criteria: recent matching events (distinct: value digests)
   "tiers": n,                      # how many thresholds were awarded (each exactly once, in order)
   "counts": "sum:minutes"}         # what the value measures; if the config changes it, progress starts over
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from ..config.schema import MAX_DISTINCT, MAX_WINDOW_ENTRIES, Badge
from .effects import EventContext, amount_of, credit, holds, summed


def thresholds(badge: Badge) -> list[int]:
    """The values at which the badge (or each of its tiers, in order) is earned."""
    return [tier.gte for tier in badge.tiers] if badge.tiers else [badge.criteria.gte or 1]


def apply_badges(ctx: EventContext) -> None:
    """Advance every badge this event counts toward and award each newly reached tier, in order."""
    for badge in ctx.config.badges_for(ctx.event.type):
        goals = thresholds(badge)
        progress = badge_progress(badge, ctx.state.badges.get(badge.id))
        if progress["tiers"] >= len(goals) or not holds(ctx, badge.criteria.filter.when, f"badge {badge.id}"):
            continue
        value = _advance(ctx, badge, progress)
        if value is None:
            continue
        while progress["tiers"] < len(goals) and value >= goals[progress["tiers"]]:
            _award(ctx, badge, progress["tiers"], value)
            progress["tiers"] += 1
        if progress["tiers"] >= len(goals):  # earned in full: keep the value (and the values seen: a tier
            progress["value"] = value  # added later counts on from them), drop a window (it only gets old)
            progress.pop("window", None)
        ctx.state.badges[badge.id] = progress


def badge_progress(badge: Badge, stored: dict[str, Any] | None) -> dict[str, Any]:
    """The badge's stored progress; started over (tiers won are kept) if the config changed what it counts:
    a count is no sum, digests of distinct values add up to nothing, and a window holds other entries."""
    counts = _measure(badge)
    if stored is None or stored.get("counts", counts) != counts:
        return {"value": 0, "tiers": stored["tiers"] if stored else 0, "counts": counts}
    return {**stored, "counts": counts}


def retired_badge(stored: dict[str, Any]) -> dict[str, Any] | None:
    """What the user item keeps of a badge the config no longer has (None: nothing). The tiers won stay, so
    that it never pays twice if it comes back under its id. A count or a sum is small and kept as it is; the
    detail of a window or of distinct values can be large and goes, so that progress starts over then (no
    measure is called "retired"). A badge earned in full has dropped its window already."""
    if "window" not in stored and "seen" not in stored:
        return stored
    tiers = stored.get("tiers", 0)
    return {"value": 0, "tiers": tiers, "counts": "retired"} if tiers else None


def _measure(badge: Badge) -> str:
    criteria = badge.criteria
    kind = "count" if criteria.count is not None else "sum" if criteria.sum is not None else "distinct"
    prop = "" if criteria.count is not None else f":{criteria.filter.property}"  # type: ignore[attr-defined]
    return f"{kind}{prop}{':window' if criteria.within is not None else ''}"


def _advance(ctx: EventContext, badge: Badge, progress: dict[str, Any]) -> float | None:
    """Count the event into the badge's progress; its value now, or None if the event cannot count."""
    criteria = badge.criteria
    if criteria.count is not None:
        amount: Any = 1
    else:
        amount = ctx.event.properties.get(criteria.filter.property)  # type: ignore[attr-defined]
        if amount is None or (criteria.sum is not None and isinstance(amount, bool | str)):
            return None
    if criteria.distinct is not None:
        amount = _digest(amount)  # values may be long strings: a fixed-size digest keeps the item small
    if criteria.within is not None:
        return _in_window(ctx, criteria.within, progress, amount, distinct=criteria.distinct is not None)
    if criteria.distinct is not None:
        seen = progress.setdefault("seen", [])
        if amount not in seen and len(seen) < MAX_DISTINCT:  # a bound publishing enforces; kept for older configs
            seen.append(amount)
        return len(seen)
    progress["value"] = summed(progress["value"], amount)
    return progress["value"]


def _digest(value: Any) -> str:
    return hashlib.blake2b(repr(value).encode(), digest_size=6).hexdigest()


def _in_window(ctx: EventContext, within: timedelta, progress: dict[str, Any], amount: Any, distinct: bool) -> float:
    """The best value of any window of length `within` that holds this event: the sum of its amounts, or
    (distinct) how many different values it holds.

    Events land in their own place in time, so a late event can complete a window that ends at a later one.
    """
    moment = ctx.event.occurred_at.timestamp()
    span = within.total_seconds()
    window = sorted([*progress.get("window", []), [moment, amount]])
    # Keep what a later (or late) event's window can still reach.
    horizon = window[-1][0] - span - ctx.config.late_window.total_seconds()
    progress["window"] = [entry for entry in window if entry[0] >= horizon][-MAX_WINDOW_ENTRIES:]
    kept = progress["window"] if [moment, amount] in progress["window"] else [*progress["window"], [moment, amount]]
    ends = [at for at, _ in kept if moment <= at <= moment + span]  # never empty: the event's own time is one

    def measure(values: list[Any]) -> float:
        return len(set(values)) if distinct else summed(*values)

    return max(measure([value for at, value in kept if end - span <= at <= end]) for end in ends)


def _award(ctx: EventContext, badge: Badge, tier_index: int, value: float) -> None:
    tier = badge.tiers[tier_index].name if badge.tiers else None
    ctx.fact(
        "badge_awarded",
        badge=badge.id,
        name=badge.name,
        tier=tier,
        tier_index=tier_index,
        value=value,
        secret=badge.secret,
    )
    for currency, amount in (badge.reward or {}).items():
        paid = amount_of(ctx, amount, f"badge {badge.id}: reward {currency}")
        if paid > 0:
            credit(ctx, currency, paid, badge=badge.id, tier=tier)

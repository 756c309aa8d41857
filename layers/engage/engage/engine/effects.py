"""What every part of the engine does with one accepted event: test a condition, credit points."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..config.expressions import Expr, ExpressionError, Scope
from ..config.schema import MAX_AWARD, EngagementConfig
from .levels import level_index
from .model import Event, EventResult, Fact, UserState


@dataclass(frozen=True)
class EventContext:
    """One accepted event being applied: the config, the state it changes and the result it reports into."""

    config: EngagementConfig
    state: UserState
    event: Event
    local: datetime  # occurred_at on the user's wall clock
    scope: Scope  # CEL variables: event, local, user
    result: EventResult

    def fact(self, type_: str, **data: Any) -> None:
        self.result.facts.append(Fact(type_, self.event.id, data))


def holds(ctx: EventContext, expr: Expr | None, owner: str) -> bool:
    """The value of a `when`; an expression that fails or is not boolean counts as false, with a warning."""
    if expr is None:
        return True
    try:
        value = expr.evaluate(ctx.scope)
    except ExpressionError as exc:
        # Usually an optional property the event did not carry: the condition simply does not hold.
        ctx.result.warnings.append(f"{owner}: when {exc}")
        return False
    if not isinstance(value, bool):
        ctx.result.warnings.append(f"{owner}: when {expr.source!r} gave {value!r}, not true/false")
        return False
    return value


def amount_of(ctx: EventContext, amount: int | Expr, owner: str) -> int:
    """A whole, non-negative amount: a constant, or a CEL expression's value cut to a whole number.

    An expression that fails (or gives no finite number) pays nothing and leaves a warning on the event.
    """
    if not isinstance(amount, Expr):
        if amount > MAX_AWARD:  # only a config published before the bound was checked can hold one
            ctx.result.warnings.append(f"{owner}: {amount} is more than one award may pay")
            return 0
        return amount
    try:
        value = amount.evaluate(ctx.scope)
    except ExpressionError as exc:
        ctx.result.warnings.append(f"{owner}: {exc}")
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        ctx.result.warnings.append(f"{owner}: {amount.source!r} gave {value!r}, not a finite number")
        return 0
    if value > MAX_AWARD:
        ctx.result.warnings.append(f"{owner}: {amount.source!r} gave {value!r}, more than one award may pay")
        return 0
    return max(int(value), 0)  # fractions are cut off: currencies are whole numbers


def summed(*values: float) -> float:
    """A total of event amounts as people count it: ten runs of 0.1 km make 1 km, not 0.9999999999999999
    (doubles drift in their last digits; 9 decimals are more than any property means). Whole numbers stay
    exact integers."""
    if all(isinstance(value, int) for value in values):
        return sum(values)
    return round(math.fsum(values), 9)


def credit(ctx: EventContext, currency: str, amount: int, **cause: Any) -> None:
    """Add points and record a points_awarded fact naming what caused them (a rule, a badge, a quest)."""
    state = ctx.state
    state.balances[currency] = state.balances.get(currency, 0) + amount
    state.earned[currency] = state.earned.get(currency, 0) + amount
    ctx.result.awards[currency] = ctx.result.awards.get(currency, 0) + amount
    ctx.fact("points_awarded", **cause, currency=currency, amount=amount, balance=state.balances[currency])


def user_scope(config: EngagementConfig, state: UserState) -> dict[str, Any]:
    """`user` as expressions read it: the level the app shows (from the lifetime total, so also after the
    thresholds changed), and every declared currency's balance and lifetime total (0 before the first)."""
    levels = config.levels
    level = level_index(levels, state.earned.get(levels.currency, 0)) if levels else state.level
    return {
        "level": level + 1,
        "balances": {currency: state.balances.get(currency, 0) for currency in config.currencies},
        "earned": {currency: state.earned.get(currency, 0) for currency in config.currencies},
    }


def move_level(ctx: EventContext) -> None:
    """Raise the level to what the lifetime total reaches: one level_up fact per level crossed, in order."""
    levels = ctx.config.levels
    if levels is None:
        return
    total = ctx.state.earned.get(levels.currency, 0)
    reached = level_index(levels, total)
    for index in range(ctx.state.level + 1, reached + 1):
        ctx.fact("level_up", level=index + 1, name=levels.name_of(index), currency=levels.currency, total=total)
    ctx.state.level = max(ctx.state.level, reached)

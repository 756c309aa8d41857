"""Grants that no event of the user's causes, such as a leaderboard period's rewards."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from ..config.expressions import Expr, make_scope
from ..config.schema import EngagementConfig
from .effects import EventContext, amount_of, credit, move_level, user_scope
from .ingest import local_time
from .leaderboards import update_boards
from .model import Applied, Event, EventResult, Outcome, UserState


def grant(
    config: EngagementConfig,
    state: UserState,
    grant_id: str,
    award: dict[str, int | Expr],
    fact_type: str,
    now: datetime,
    **fact: Any,
) -> Outcome:
    """Apply one grant like an event (id `grant_id`): its fact, the points it awards, the levels they reach.

    Committed like any event, its ledger row makes it happen once however often the grant is retried.
    """
    after = copy.deepcopy(state)
    event = Event(grant_id, fact_type, now, {})
    result = EventResult(0, grant_id, "accepted")
    user = user_scope(config, after)
    local = local_time(config, after.profile, now)
    moment = {
        "date": local.strftime("%Y-%m-%d"),
        "weekday": local.isoweekday(),
        "hour": local.hour,
        "minute": local.minute,
    }
    ctx = EventContext(config, after, event, local, make_scope({"user": user, "local": moment}), result)
    ctx.fact(fact_type, **fact)
    for currency, amount in award.items():
        paid = amount_of(ctx, amount, f"{fact_type} {grant_id}: {currency}")
        if paid > 0:
            credit(ctx, currency, paid, **{fact_type: grant_id})
    move_level(ctx)
    boards = update_boards(config, after, result.awards, now)
    return Outcome(
        before=state, after=after, results=[result], applied=[Applied(event, tuple(result.facts))], boards=boards
    )

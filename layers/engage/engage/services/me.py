"""GET /v1/me: the signed-in user's balances, level, badges, streaks, quests and ranks."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..api.models import BadgeOut, CurrencyOut, MeResponse, QuestOut, QuestStepOut, RankOut, StreakOut
from ..config import EngagementConfig
from ..config.schema import Badge
from ..engine.badges import badge_progress, thresholds
from ..engine.ingest import local_time
from ..engine.leaderboards import board_period
from ..engine.model import UserState
from ..engine.quests import instance_of, run_of
from ..engine.streaks import load_streak, period_index, streak_view
from ..store.leaderboards import find
from ..store.progress import load_user
from .config import active_config
from .errors import signed_in_user
from .leaderboards import my_rank
from .views import level_out


def my_progress(claims: Mapping[str, Any], now: datetime | None = None) -> MeResponse:
    user_id = signed_in_user(claims)
    config = active_config().config
    state = load_user(user_id)
    now = now or datetime.now(UTC)
    currencies = {
        currency_id: CurrencyOut(
            name=currency.name,
            balance=state.balances.get(currency_id, 0),
            earned=state.earned.get(currency_id, 0),
        )
        for currency_id, currency in config.currencies.items()
    }
    level = None
    if config.levels is not None:
        level = level_out(config, state.earned.get(config.levels.currency, 0))
    return MeResponse(
        user_id=user_id,
        display_name=state.profile.display_name,
        timezone=state.profile.timezone or config.default_timezone,
        locale=state.profile.locale or config.default_locale,
        currencies=currencies,
        level=level,
        badges=_badges(config, state, now),
        streaks=_streaks(config, state, now),
        quests=_quests(config, state, now),
        ranks=_ranks(config, state, now),
    )


def _badges(config: EngagementConfig, state: UserState, now: datetime) -> list[BadgeOut]:
    shown = []
    for badge in config.badges:
        progress = badge_progress(badge, state.badges.get(badge.id))
        goals = thresholds(badge)
        earned = progress.get("tiers", 0)
        if badge.secret and not earned:
            continue  # a secret stays secret until it is earned
        value = _badge_value(progress, badge, now)
        shown.append(
            BadgeOut(
                id=badge.id,
                name=badge.name,
                description=badge.description,
                earned=earned > 0,
                tier=badge.tiers[earned - 1].name if badge.tiers and earned else None,
                tiers_earned=earned,
                tiers_total=len(goals),
                value=value,
                next_goal=goals[earned] if earned < len(goals) else None,
                next_tier=badge.tiers[earned].name if badge.tiers and earned < len(goals) else None,
                secret=badge.secret,
            )
        )
    return shown


def _badge_value(progress: dict[str, Any], badge: Badge, now: datetime) -> float:
    if "seen" in progress:
        return len(progress["seen"])
    within = badge.criteria.within
    if "window" in progress and within is not None:  # what counts now: the events of the last `within`
        start = now.timestamp() - within.total_seconds()
        recent = [amount for at, amount in progress["window"] if at >= start]
        return len(set(recent)) if badge.criteria.distinct is not None else sum(recent)  # distinct: digests
    return progress.get("value", 0)


def _streaks(config: EngagementConfig, state: UserState, now: datetime) -> list[StreakOut]:
    local = local_time(config, state.profile, now)
    shown = []
    for streak in config.streaks:
        view = streak_view(
            streak, load_streak(streak, state.streaks.get(streak.id)), period_index(streak.period, local)
        )
        shown.append(
            StreakOut(
                id=streak.id,
                name=streak.name,
                period=streak.period,
                length=view.length,
                longest=view.longest,
                freezes=view.freezes,
                done_this_period=view.done_this_period,
                at_risk=view.at_risk,
            )
        )
    return shown


def _quests(config: EngagementConfig, state: UserState, now: datetime) -> list[QuestOut]:
    local = local_time(config, state.profile, now)
    shown = []
    for quest in config.quests:
        instance = instance_of(quest, local)
        progress = run_of(state.quests.get(quest.id), instance) or {
            "instance": instance, "started": None, "steps": {}, "state": "active"
        }  # fmt: skip
        ends_at = None
        if quest.within is not None and progress["started"] is not None:
            ends_at = datetime.fromtimestamp(progress["started"] + quest.within.total_seconds(), UTC)
            if progress["state"] == "active" and ends_at < now:
                progress = {**progress, "state": "expired"}  # reported as a fact with the next event
        steps = [
            QuestStepOut(
                id=step.id,
                value=progress["steps"].get(step.id, 0),
                goal=step.gte,
                done=progress["steps"].get(step.id, 0) >= step.gte,
            )
            for step in quest.steps
        ]
        shown.append(
            QuestOut(
                id=quest.id, name=quest.name, instance=instance, state=progress["state"], steps=steps, ends_at=ends_at
            )
        )
    return shown


def _ranks(config: EngagementConfig, state: UserState, now: datetime) -> dict[str, RankOut]:
    """The user's rank on each board they have a score on this period (a few reads per board)."""
    ranks = {}
    for board in config.leaderboards:
        entry = state.boards.get(board.id)
        if not entry or entry["period"] != board_period(board, now):
            continue
        key = f"{board.id}#{entry['period']}"
        row = find(key, state.user_id)
        if row is not None:
            ranks[board.id] = my_rank(board, key, row, now)
    return ranks

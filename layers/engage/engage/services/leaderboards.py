"""GET /v1/leaderboards/{id}: the top of a board period, and where the user stands — saying how exactly.

A rank is exact where that is cheap: when the board's score histogram (one query) puts fewer than
EXACT_COUNT_CAP users ahead, the rows ahead are counted (at most that many read per write shard). Below
that it is estimated from the histogram (exact: false). The percentile comes from the histogram's total.
Other users appear by display name only, never by id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from ..api.models import BoardEntryOut, LeaderboardResponse, RankOut
from ..config import EngagementConfig
from ..config.schema import Leaderboard
from ..engine.leaderboards import board_period, estimate_ahead, is_period
from ..engine.rewards import grant
from ..retries import MAX_ATTEMPTS, back_off
from ..store import leaderboards as store
from ..store.progress import CommitConflict, commit, load_user
from .config import active_config
from .errors import Busy, InvalidInput, NotFound, signed_in_user

EXACT_COUNT_CAP = 1000


def leaderboard(
    claims: Mapping[str, Any],
    board_id: str,
    period: Literal["current", "previous"] = "current",
    limit: int = 10,
    around_me: bool = False,
    now: datetime | None = None,
) -> LeaderboardResponse:
    user_id = signed_in_user(claims)
    board = _board(board_id)
    now = now or datetime.now(UTC)
    key = f"{board.id}#{board_period(board, now, back=1 if period == 'previous' else 0)}"
    stats = store.stats(key, board.shards)
    entries = [_entry(rank, row, user_id) for rank, row in enumerate(store.top(key, stats.shards, limit), start=1)]
    me = store.find(key, user_id)
    rank = my_rank(board, key, me, now, stats) if me else None
    around: list[BoardEntryOut] = []
    if around_me and me and rank:
        above, below = store.neighbours(key, stats.shards, me.rank_key, 5)
        around = [_entry(rank.rank - i - 1, row, user_id) for i, row in enumerate(above)][::-1]
        around += [_entry(rank.rank, me, user_id)]
        around += [_entry(rank.rank + i + 1, row, user_id) for i, row in enumerate(below)]
    return LeaderboardResponse(
        board=board.id,
        name=board.name,
        period=key.split("#", 1)[1],
        entries=entries,
        me=rank,
        around=around,
    )


def my_rank(
    board: Leaderboard, key: str, me: store.BoardRow, now: datetime, stats: store.BoardStats | None = None
) -> RankOut:
    """The user's rank, counted exactly near the top and estimated from the histogram below it.

    `me` may be an earlier row of the user than the stored one (a stream record): their own newer row is
    then not counted as someone ahead."""
    stats = stats or store.stats(key, board.shards)
    estimated, total = estimate_ahead(stats.histogram, me.score)
    if estimated < EXACT_COUNT_CAP:
        counted, complete = store.count_ahead(key, stats.shards, me.rank_key, EXACT_COUNT_CAP, excluding=me.user_id)
        if complete:
            return _rank(counted + 1, True, total, now, me.score)
        estimated = max(estimated, counted)  # a lagging histogram must not place the user above users counted
    return _rank(round(estimated) + 1, False, total, now, me.score)


def _rank(rank: int, exact: bool, total: int, now: datetime, score: int) -> RankOut:
    total = max(total, rank)  # the histogram may lag a concurrent first score by a moment
    percentile = round(100.0 * (total - rank) / total, 1) if total else None
    return RankOut(rank=rank, exact=exact, percentile=percentile, as_of=now, score=score)


def _board(board_id: str) -> Leaderboard:
    config = active_config().config
    for board in config.leaderboards:
        if board.id == board_id:
            return board
    known = ", ".join(b.id for b in config.leaderboards) or "(none)"
    raise NotFound(f"no leaderboard {board_id!r}; this app's boards: {known}")


def _entry(rank: int, row: store.BoardRow, user_id: str) -> BoardEntryOut:
    return BoardEntryOut(rank=rank, name=row.name, score=row.score, is_me=row.user_id == user_id)


@dataclass(frozen=True)
class Granted:
    user_id: str
    rank: int
    newly: bool  # False: this winner had already been rewarded for the period


def close_period(board_id: str, period: str | None = None, now: datetime | None = None) -> list[Granted]:
    """Reward a finished period's winners, each exactly once however often this runs.

    The scheduler calls it after each period; the CLI (`engage leaderboard close`) and tests call it directly.
    """
    config = active_config().config
    board = _board(board_id)
    now = now or datetime.now(UTC)
    period = period or board_period(board, now, back=1)
    if board.period != "all" and not is_period(board, period):
        raise InvalidInput(
            f"period {period!r} is not a {board.period} of {board.id!r}. "
            f"Fix: write it like {board_period(board, now, back=1)!r} (the last finished one)"
        )
    if board.period == "all" or period >= board_period(board, now):
        raise InvalidInput(f"period {period!r} of {board.id!r} has not ended; only finished periods are closed")
    tiers = sorted(board.rewards, key=lambda reward: reward.rank_lte)
    if not tiers:
        return []
    key = f"{board.id}#{period}"
    winners = store.top(key, store.stats(key, board.shards).shards, tiers[-1].rank_lte)
    granted = []
    for rank, row in enumerate(winners, start=1):
        reward = next(tier for tier in tiers if rank <= tier.rank_lte)
        grant_id = f"leaderboard-{board.id}-{period}"
        newly = _grant_once(config, row.user_id, grant_id, reward.award, now, board=board.id, period=period, rank=rank)
        granted.append(Granted(row.user_id, rank, newly))
    return granted


def _grant_once(
    config: EngagementConfig, user_id: str, grant_id: str, award: dict[str, Any], now: datetime, **fact: Any
) -> bool:
    for attempt in range(MAX_ATTEMPTS):
        outcome = grant(config, load_user(user_id), grant_id, award, "leaderboard_reward", now, **fact)
        try:
            commit(outcome, "system", now)
        except CommitConflict as conflict:
            if grant_id in conflict.duplicate_ids:
                return False  # its ledger row exists: granted by an earlier run
            back_off(attempt)
            continue
        return True
    raise Busy(f"could not reward {user_id} for {grant_id}: too many concurrent writes; run the close again")

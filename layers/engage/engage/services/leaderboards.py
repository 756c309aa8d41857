"""GET /v1/leaderboards/{id}: the top of a board period, and where the user stands — saying how exactly.

Ranks are exact while counting the rows ahead is cheap: at most EXACT_COUNT_CAP rows read per write shard.
Past that the rank is a lower bound (exact: false). Other users appear by display name only, never by id.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from ..api.models import BoardEntryOut, LeaderboardResponse, RankOut
from ..config.schema import Leaderboard
from ..engine.leaderboards import board_period
from ..store import leaderboards as store
from .config import active_config
from .errors import NotFound, Unauthorized

EXACT_COUNT_CAP = 1000


def leaderboard(
    claims: Mapping[str, Any],
    board_id: str,
    period: Literal["current", "previous"] = "current",
    limit: int = 10,
    around_me: bool = False,
    now: datetime | None = None,
) -> LeaderboardResponse:
    user_id = str(claims.get("sub") or "")
    if not user_id:
        raise Unauthorized("the token has no 'sub' claim")
    board = _board(board_id)
    now = now or datetime.now(UTC)
    key = f"{board.id}#{board_period(board, now, back=1 if period == 'previous' else 0)}"
    entries = [_entry(rank, row, user_id) for rank, row in enumerate(store.top(key, board.shards, limit), start=1)]
    me = store.find(key, user_id)
    rank = my_rank(board, key, me, now) if me else None
    around: list[BoardEntryOut] = []
    if around_me and me and rank:
        above, below = store.neighbours(key, board.shards, me.rank_key, 5)
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


def my_rank(board: Leaderboard, key: str, me: store.BoardRow, now: datetime) -> RankOut:
    """The user's rank: exact when every shard's count of rows ahead stays under the cap."""
    ahead, exact = store.count_ahead(key, board.shards, me.rank_key, EXACT_COUNT_CAP)
    return RankOut(rank=ahead + 1, exact=exact, percentile=None, as_of=now, score=me.score)


def _board(board_id: str) -> Leaderboard:
    config = active_config().config
    for board in config.leaderboards:
        if board.id == board_id:
            return board
    known = ", ".join(b.id for b in config.leaderboards) or "(none)"
    raise NotFound(f"no leaderboard {board_id!r}; this app's boards: {known}")


def _entry(rank: int, row: store.BoardRow, user_id: str) -> BoardEntryOut:
    return BoardEntryOut(rank=rank, name=row.name, score=row.score, is_me=row.user_id == user_id)

"""Leaderboards in the engine: a user's score on each board for the current period, and its sort key.

The score is the metric currency earned in the board's period (in the board's time zone), counted when
it is awarded. The store writes one row per board whose score changed, in the ingest transaction.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..config.schema import EngagementConfig, Leaderboard
from ..config.types import tzinfo_of
from .model import UserState

_MAX_MS = 10**15 - 1  # beyond year 33000: room enough for "earlier ranks higher"


@dataclass(frozen=True)
class BoardScore:
    """A user's new score on one board period, and when it was reached (ties: earlier ranks higher)."""

    board: str
    period: str
    score: int
    reached_ms: int
    shards: int  # the board's write shards: the store spreads rows over them
    previous: int | None  # the score before, in this period (None: first score of the period)


def board_period(board: Leaderboard, moment: datetime, back: int = 0) -> str:
    """The board's period holding `moment` ('2026-W47', '2026-11-22', '2026-11', 'all'); `back` periods earlier."""
    local = moment.astimezone(tzinfo_of(board.timezone))
    if board.period == "all":
        return "all"
    if board.period == "day":
        return (local - timedelta(days=back)).strftime("%Y-%m-%d")
    if board.period == "week":
        year, week, _ = (local - timedelta(weeks=back)).isocalendar()
        return f"{year}-W{week:02d}"
    month_index = local.year * 12 + local.month - 1 - back
    return f"{month_index // 12}-{month_index % 12 + 1:02d}"


def is_period(board: Leaderboard, text: str) -> bool:
    """Whether `text` names a period of this board, written as board_period writes it ('2026-W47', …)."""
    formats = {"day": "%Y-%m-%d", "week": "%G-W%V-%u", "month": "%Y-%m"}
    if board.period not in formats:
        return text == "all"
    written = f"{text}-1" if board.period == "week" else text  # a week parses from its Monday
    try:
        parsed = datetime.strptime(written, formats[board.period])
    except ValueError:
        return False
    return parsed.strftime(formats[board.period]) == written  # no '2026-1-5' or '2026-W1'


def rank_key(score: int, reached_ms: int, user_id: str) -> str:
    """Sorts descending as the board ranks: higher score first, then the earlier to reach it.

    The user id ends the key so that no two rows tie exactly: every rank is well defined.
    """
    return f"{score:015d}#{_MAX_MS - reached_ms:015d}#{user_id}"


def shard_of(user_id: str, shards: int) -> int:
    """A stable shard for the user (the same on every Lambda, unlike Python's salted hash())."""
    return zlib.crc32(user_id.encode()) % shards


def update_boards(
    config: EngagementConfig, state: UserState, gained: dict[str, int], now: datetime
) -> list[BoardScore]:
    """Add this batch's gains to the user's current-period score on every board they count for."""
    scores = []
    for board in config.leaderboards:
        amount = gained.get(board.metric.currency, 0)
        if amount <= 0:
            continue
        period = board_period(board, now)
        entry = state.boards.get(board.id)
        previous = entry["score"] if entry and entry["period"] == period else None
        score = (previous or 0) + amount
        state.boards[board.id] = {"period": period, "score": score}
        scores.append(BoardScore(board.id, period, score, int(now.timestamp() * 1000), board.shards, previous))
    return scores


# Score histogram buckets: four per doubling, so a bucket spans at most ~19% of its scores. Ranks below the
# exactly counted top are estimated from it, assuming scores spread evenly within a bucket.
_PER_DOUBLING = 4


def bucket_of(score: int) -> int:
    """The histogram bucket of a score: 0 for 0, then 1, 2, … on a quarter-octave scale."""
    return 0 if score <= 0 else int(math.log2(score) * _PER_DOUBLING) + 1


def bucket_range(bucket: int) -> tuple[float, float]:
    """The scores [low, high) a bucket holds."""
    if bucket == 0:
        return 0.0, 1.0
    return 2 ** ((bucket - 1) / _PER_DOUBLING), 2 ** (bucket / _PER_DOUBLING)


def estimate_ahead(histogram: dict[int, int], score: int) -> tuple[float, int]:
    """(users estimated to rank above `score`, users on the board) from a histogram of bucket → count."""
    mine = bucket_of(score)
    ahead = float(sum(count for bucket, count in histogram.items() if bucket > mine))
    low, high = bucket_range(mine)
    share_above = (high - score) / (high - low) if high > low else 0.0
    ahead += max(histogram.get(mine, 0) - 1, 0) * min(max(share_above, 0.0), 1.0)
    return ahead, sum(histogram.values())

"""What follows a score change on a board, from the leaderboards table's stream (function `boards`).

Kept out of the ingest, so an ingest costs one read and one transaction and never contends on shared items:
- rank_lost facts: when a score rises past others near the top, each of them is told. Each fact is a
  conditional put to the passed user's ledger, keyed by who passed them and when: written once.
- the score histogram of the user's shard, which estimated ranks and percentiles are read from. Each record
  moves it once: a marker is written with the move (a retried batch brings records already handled).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from ulid import ULID

from ..config.schema import Leaderboard
from ..engine.leaderboards import bucket_of
from ..store import leaderboards as store
from ..store.models import LedgerItem
from ..store.writes import written
from .config import active_config
from .leaderboards import my_rank

# Only the top of a board hears about being passed; further down nobody notices, and it would cost reads.
RANK_LOST_TOP = 100
FACT_RETENTION = timedelta(days=35)


def score_changed(old: dict[str, Any] | None, new: dict[str, Any] | None, now: datetime | None = None) -> int:
    """Handle one stream record of the leaderboards table; returns how many rank_lost facts it wrote."""
    if not new or "rank_key" not in new:
        return 0  # a histogram item, or a removal
    board = _board(str(new["board"]).split("#", 1)[0])
    written = report_overtakes(board, old, new, now) if board else 0
    shard = int(str(new["shard"]).rsplit("#", 1)[1])
    old_bucket = bucket_of(int(old["score"])) if old and "rank_key" in old else None
    expires = new.get("expires_at")
    expires_at = datetime.fromtimestamp(int(expires), UTC) if expires else None
    move = str(new["rank_key"])  # the score change this record is about: a user, a score, when reached
    store.move_in_histogram(str(new["board"]), shard, old_bucket, bucket_of(int(new["score"])), expires_at, move)
    return written


def report_overtakes(
    board: Leaderboard, old: dict[str, Any] | None, new: dict[str, Any], now: datetime | None = None
) -> int:
    """Write a rank_lost fact for each user the new score passed within the top; returns how many."""
    if old and int(new["score"]) <= int(old["score"]):
        return 0
    now = now or datetime.now(UTC)
    key = str(new["board"])
    passer = store.BoardRow(str(new["user_id"]), new.get("name"), int(new["score"]), str(new["rank_key"]))
    rank = my_rank(board, key, passer, now)
    if not rank.exact or rank.rank >= RANK_LOST_TOP:
        return 0
    floor = str(old["rank_key"]) if old else "0"  # below every key ("0000…" sorts after "0")
    shards = store.stats(key, board.shards).shards
    between = store.between(key, shards, floor, passer.rank_key, RANK_LOST_TOP - rank.rank)
    # The stream is read a moment later: a row that reached its score after this write was never passed by it
    # (it is still ranked in between, so it counts for the others' new ranks).
    others = [row for row in between if row.user_id != passer.user_id]
    return sum(
        _tell(row.user_id, key, passer, rank.rank + 1 + offset, now)
        for offset, row in enumerate(others)
        if row.reached_ms < int(new["reached_ms"])
    )


def _board(board_id: str) -> Leaderboard | None:
    return next((board for board in active_config().config.leaderboards if board.id == board_id), None)


def _tell(user_id: str, key: str, passer: store.BoardRow, new_rank: int, now: datetime) -> int:
    board, period = key.split("#", 1)
    reached = passer.rank_key.split("#")[1]
    # The passer appears by display name only: the id (shown in the history) carries a digest of their user id.
    passer_digest = hashlib.sha256(passer.user_id.encode()).hexdigest()[:16]
    fact = {"type": "rank_lost", "event_id": f"rank_lost#{key}#{passer_digest}#{reached}", "board": board,
            "period": period, "new_rank": new_rank, "passed_by": passer.name, "score": passer.score}  # fmt: skip
    row = LedgerItem(
        user_id,
        f"fact#{fact['event_id']}",
        ts=str(ULID.from_datetime(now)),
        event_type="rank_lost",
        source="system",
        occurred_at=now,
        received_at=now,
        facts=[fact],
        expires_at=now + FACT_RETENTION,
    )
    # False: written by an earlier delivery of the same stream record.
    return int(written(lambda: row.save(condition=LedgerItem.sk.does_not_exist())))

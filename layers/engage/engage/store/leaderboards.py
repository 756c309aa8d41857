"""Reading a leaderboard period: merged top-N across write shards, one user's row, ranks around it."""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from pynamodb.exceptions import DoesNotExist

from .models import HistogramItem, LeaderboardItem, connection


@dataclass(frozen=True)
class BoardRow:
    user_id: str
    name: str | None
    score: int
    rank_key: str
    reached_ms: int = 0  # when the score was reached


def _row(item: LeaderboardItem) -> BoardRow:
    return BoardRow(item.user_id, item.name, int(item.score), item.rank_key, int(item.reached_ms))


def _shards(board: str, shards: int) -> list[str]:
    return [f"{board}#{n}" for n in range(shards)]


def top(board: str, shards: int, limit: int) -> list[BoardRow]:
    """The best `limit` rows of a board period: the best `limit` of each shard, merged (one query per shard)."""
    per_shard = [
        [_row(item) for item in LeaderboardItem.by_score.query(shard, scan_index_forward=False, limit=limit)]
        for shard in _shards(board, shards)
    ]
    merged = heapq.merge(*per_shard, key=lambda row: row.rank_key, reverse=True)
    return list(merged)[:limit]


def find(board: str, user_id: str) -> BoardRow | None:
    try:
        return _row(LeaderboardItem.get(board, user_id))
    except DoesNotExist:
        return None


def count_ahead(board: str, shards: int, key: str, cap: int) -> tuple[int, bool]:
    """How many rows rank above `key`, counted exactly up to `cap` per shard; False once a shard hits the cap."""
    total, complete = 0, True
    for shard in _shards(board, shards):
        ahead = LeaderboardItem.by_score.count(shard, LeaderboardItem.rank_key > key, limit=cap)
        total += ahead
        complete = complete and ahead < cap
    return total, complete


def neighbours(board: str, shards: int, key: str, k: int) -> tuple[list[BoardRow], list[BoardRow]]:
    """The k rows just above `key` (nearest first) and the k just below it (nearest first)."""
    above: list[BoardRow] = []
    below: list[BoardRow] = []
    for shard in _shards(board, shards):
        above += [_row(i) for i in LeaderboardItem.by_score.query(shard, LeaderboardItem.rank_key > key, limit=k)]
        below += [
            _row(i)
            for i in LeaderboardItem.by_score.query(
                shard, LeaderboardItem.rank_key < key, scan_index_forward=False, limit=k
            )
        ]
    above.sort(key=lambda row: row.rank_key)
    below.sort(key=lambda row: row.rank_key, reverse=True)
    return above[:k], below[:k]


def between(board: str, shards: int, low: str, high: str, limit: int) -> list[BoardRow]:
    """Up to `limit` rows ranked strictly between two keys, best first (merged across shards)."""
    if limit <= 0:
        return []
    per_shard = [
        [
            _row(item)
            for item in LeaderboardItem.by_score.query(
                shard, LeaderboardItem.rank_key.between(low, high), scan_index_forward=False, limit=limit + 2
            )
            if low < item.rank_key < high
        ]
        for shard in _shards(board, shards)
    ]
    return list(heapq.merge(*per_shard, key=lambda row: row.rank_key, reverse=True))[:limit]


def histogram(board: str) -> dict[int, int]:
    """The board period's score histogram, bucket → users, summed over its shards (one query)."""
    # A raw query: the bucket attributes are not declared on the model (their names are open-ended).
    response = connection().dispatch(
        "Query",
        {
            "TableName": HistogramItem.Meta.table_name,
            "KeyConditionExpression": "#board = :board",
            "ExpressionAttributeNames": {"#board": "board"},
            "ExpressionAttributeValues": {":board": {"S": f"{board}#histogram"}},
        },
    )
    totals: dict[int, int] = {}
    for item in response.get("Items", []):
        for name, value in item.items():
            if name.startswith("b") and name[1:].isdigit():
                totals[int(name[1:])] = totals.get(int(name[1:]), 0) + int(value["N"])
    return {bucket: count for bucket, count in totals.items() if count > 0}

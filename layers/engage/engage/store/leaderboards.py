"""Reading a leaderboard period: merged top-N across write shards, one user's row, ranks around it."""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pynamodb.exceptions import DoesNotExist, TransactWriteError

from ..retries import back_off
from ..settings import get_settings
from .models import HistogramItem, LeaderboardItem, connection

# A stream record is retried within the stream's 24 hours: its histogram move is remembered for two days.
MOVE_MARKER_SECONDS = 2 * 24 * 3600
MOVE_ATTEMPTS = 5  # a transaction on a histogram item another one is writing is cancelled, not queued


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


@dataclass(frozen=True)
class BoardStats:
    histogram: dict[int, int]  # score bucket → users, over all shards
    shards: int  # shards holding rows this period: at least the configured count, more if it was lowered


def stats(board: str, configured_shards: int) -> BoardStats:
    """The period's histogram and the shards its rows are spread over (one query)."""
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
    shards = configured_shards
    for item in response.get("Items", []):
        shards = max(shards, int(item["user_id"]["S"]) + 1)
        for name, value in item.items():
            if name.startswith("b") and name[1:].isdigit():
                totals[int(name[1:])] = totals.get(int(name[1:]), 0) + int(value["N"])
    return BoardStats({bucket: count for bucket, count in totals.items() if count > 0}, shards)


def move_in_histogram(
    board: str, shard: int, old_bucket: int | None, new_bucket: int, expires_at: datetime | None, move_id: str
) -> bool:
    """Count a user's score in its new bucket (and out of the old one), once per `move_id`: a marker in the
    idempotency table is written in the same transaction, so a stream record handled again (Lambda retries a
    whole batch after a timeout or a crash) moves nothing. False if there was nothing (more) to move."""
    if old_bucket == new_bucket:
        return False
    names, values = {"#new": f"b{new_bucket}"}, {":one": {"N": "1"}}
    expression = "ADD #new :one"
    if old_bucket is not None:
        names["#old"], values[":minus"] = f"b{old_bucket}", {"N": "-1"}
        expression += ", #old :minus"
    if expires_at is not None:  # histograms expire with the rows of their period
        names["#expires"], values[":expires"] = "expires_at", {"N": str(int(expires_at.timestamp()))}
        expression += " SET #expires = :expires"
    marker = {
        "id": {"S": f"histogram-move#{board}#{move_id}"},
        "expiration": {"N": str(int(time.time() + MOVE_MARKER_SECONDS))},
    }
    claim = {
        "TableName": get_settings().required("idempotency_table"),
        "Item": marker,
        "ConditionExpression": "attribute_not_exists(id)",
    }
    histogram = {
        "TableName": HistogramItem.Meta.table_name,
        "Key": {"board": {"S": f"{board}#histogram"}, "user_id": {"S": str(shard)}},
        "UpdateExpression": expression,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }
    for attempt in range(MOVE_ATTEMPTS):
        try:
            connection().transact_write_items([], [], put_items=[claim], update_items=[histogram])  # claim first
            return True
        except TransactWriteError as exc:
            codes = [reason.code if reason is not None else None for reason in exc.cancellation_reasons or []]
            if codes and codes[0] == "ConditionalCheckFailed":
                return False  # moved when this record was handled before
            if "TransactionConflict" not in codes or attempt == MOVE_ATTEMPTS - 1:
                raise
            back_off(attempt)  # another shard's record moved the same histogram item at the same moment
    raise AssertionError("unreachable")


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


def count_ahead(board: str, shards: int, key: str, cap: int, excluding: str | None = None) -> tuple[int, bool]:
    """How many rows rank above `key`, counted exactly up to `cap` per shard (reading no further); False once
    a shard reaches the cap. `excluding`: a user left out of the count."""
    total, complete = 0, True
    for shard in _shards(board, shards):
        ahead = _count_above(shard, key, cap, excluding)
        total += ahead
        complete = complete and ahead < cap
    return total, complete


def _count_above(shard: str, key: str, cap: int, excluding: str | None) -> int:
    # PynamoDB's count() takes its limit as a page size and reads on to the shard's end: page here, and stop.
    request: dict[str, Any] = {
        "TableName": LeaderboardItem.Meta.table_name,
        "IndexName": LeaderboardItem.by_score.Meta.index_name,
        "Select": "COUNT",
        "KeyConditionExpression": "#shard = :shard AND #rank > :key",
        "ExpressionAttributeNames": {"#shard": "shard", "#rank": "rank_key"},
        "ExpressionAttributeValues": {":shard": {"S": shard}, ":key": {"S": key}},
    }
    if excluding is not None:
        request["FilterExpression"] = "#user <> :user"
        request["ExpressionAttributeNames"]["#user"] = "user_id"
        request["ExpressionAttributeValues"][":user"] = {"S": excluding}
    counted = 0
    while True:
        page = connection().dispatch("Query", {**request, "Limit": cap - counted})
        counted += int(page["Count"])
        if counted >= cap or "LastEvaluatedKey" not in page:
            return counted
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


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

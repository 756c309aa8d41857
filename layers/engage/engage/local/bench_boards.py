"""`make bench`, leaderboards: seed one board period with many users, then price a top-N and rank lookups."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from typing import Any

import boto3

from ..config import EngagementConfig
from ..engine.leaderboards import bucket_of, rank_key, shard_of
from ..settings import get_settings

PERIOD = "bench"  # a period of its own, apart from any real week


def leaderboard_costs(users: int) -> str:
    """Seed `users` scores on the FitQuest weekly board and report calls, capacity and rank accuracy."""
    from ..services.config import active_config, forget_cached_config
    from ..services.leaderboards import EXACT_COUNT_CAP, my_rank
    from ..store import leaderboards as store
    from .bench import count_dynamodb_calls

    forget_cached_config()
    config: EngagementConfig = active_config().config
    board = config.leaderboards[0]
    key = f"{board.id}#{PERIOD}"
    started = time.perf_counter()
    ordered = _seed(key, board.shards, users)
    seeded_s = time.perf_counter() - started

    rows = []
    with count_dynamodb_calls() as calls:
        top = store.top(key, store.stats(key, board.shards).shards, 100)
    assert [row.user_id for row in top] == [user for user, _ in ordered[:100]], "top-100 does not match the truth"
    rows.append(("top 100", "-", len(top), calls))
    now = datetime.now(UTC)
    for true_rank in (10, 900, 5_000, 50_000, users - 10):
        user_id = ordered[true_rank - 1][0]
        with count_dynamodb_calls() as calls:
            rank = my_rank(board, key, store.find(key, user_id), now)  # type: ignore[arg-type]
        error = abs(rank.rank - true_rank) / true_rank
        exactness = "exact" if rank.exact else f"estimated, {error:.1%} off"
        rows.append((f"rank of #{true_rank:,}", exactness, rank.rank, calls))
    lines = [
        "",
        f"## Leaderboard of {users:,} users ({board.shards} write shards)",
        "",
        f"Seeded directly into the `{board.id}` board ({seeded_s:.0f} s with BatchWriteItem), scores skewed like a real "
        "board (a few very active users, a long tail). Capacity is what DynamoDB Local reports as consumed "
        f"(ReturnConsumedCapacity). A rank is counted exactly when the histogram puts fewer than {EXACT_COUNT_CAP:,} "
        "users ahead; below that it is estimated from the shards' score histograms (one query).",
        "",
        "| read | answer | rank returned | DynamoDB calls | capacity units |",
        "|---|---|---:|---|---:|",
        *[
            f"| {label} | {exactness} | {value:,} | "
            f"{', '.join(f'{n} {op}' for op, n in sorted(c.operations.items()))} | {c.capacity:.1f} |"
            for label, exactness, value, c in rows
        ],
        "",
    ]
    return "\n".join(lines)


def _seed(key: str, shards: int, users: int) -> list[tuple[str, int]]:
    """Write the rows and the histograms; return (user, score) best first, as the board must rank them."""
    rng = random.Random(47)
    client = boto3.client("dynamodb")
    table = get_settings().leaderboards_table
    base_ms = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)
    people: list[tuple[str, int, int]] = []
    histograms: list[dict[int, int]] = [{} for _ in range(shards)]
    for n in range(users):
        user_id = f"bench-user-{n:06d}"
        score = int(rng.paretovariate(1.16) * 20)
        people.append((user_id, score, base_ms + rng.randrange(7 * 86_400_000)))
        bucket = histograms[shard_of(user_id, shards)]
        bucket[bucket_of(score)] = bucket.get(bucket_of(score), 0) + 1
    items = [_item(key, shards, user_id, score, reached) for user_id, score, reached in people]
    for start in range(0, len(items), 25):
        _batch_write(client, table, items[start : start + 25])
    for shard, histogram in enumerate(histograms):
        item: dict[str, Any] = {"board": {"S": f"{key}#histogram"}, "user_id": {"S": str(shard)}}
        item.update({f"b{bucket}": {"N": str(count)} for bucket, count in histogram.items()})
        client.put_item(TableName=table, Item=item)
    people.sort(key=lambda p: rank_key(p[1], p[2], p[0]), reverse=True)
    return [(user_id, score) for user_id, score, _ in people]


def _item(key: str, shards: int, user_id: str, score: int, reached_ms: int) -> dict[str, Any]:
    return {
        "board": {"S": key},
        "user_id": {"S": user_id},
        "shard": {"S": f"{key}#{shard_of(user_id, shards)}"},
        "rank_key": {"S": rank_key(score, reached_ms, user_id)},
        "score": {"N": str(score)},
        "reached_ms": {"N": str(reached_ms)},
    }


def _batch_write(client: Any, table: str, items: list[dict[str, Any]]) -> None:
    pending = [{"PutRequest": {"Item": item}} for item in items]
    while pending:
        response = client.batch_write_item(RequestItems={table: pending})
        pending = response.get("UnprocessedItems", {}).get(table, [])

"""Leaderboard arithmetic: periods in the board's zone, sort keys, histogram buckets and rank estimates."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engage.config.schema import Leaderboard
from engage.engine.leaderboards import (
    board_period,
    bucket_of,
    bucket_range,
    estimate_ahead,
    is_period,
    rank_key,
    shard_of,
)


def board(period: str, timezone: str = "UTC") -> Leaderboard:
    return Leaderboard(id="b", name="B", metric={"currency": "xp"}, period=period, timezone=timezone)


@pytest.mark.parametrize(
    ("period", "back", "expected"),
    [("day", 0, "2026-01-04"), ("week", 0, "2026-W01"), ("week", 1, "2025-W52"), ("month", 1, "2025-12"),
     ("month", 0, "2026-01"), ("all", 3, "all")],
)  # fmt: skip
def test_periods_follow_the_boards_calendar(period, back, expected):
    assert board_period(board(period), datetime(2026, 1, 4, 12, tzinfo=UTC), back) == expected


@pytest.mark.parametrize(
    ("period", "text", "valid"),
    [("week", "2026-W47", True), ("week", "2026-W53", True), ("week", "2025-W53", False), ("week", "2026-47", False),
     ("week", "2026-W1", False), ("day", "2026-11-22", True), ("day", "2026-02-30", False), ("day", "2026-11-2", False),
     ("month", "2026-11", True), ("month", "2026-13", False), ("month", "last-month", False), ("all", "all", True)],
)  # fmt: skip
def test_a_period_is_recognised_only_as_the_board_writes_it(period, text, valid):
    assert is_period(board(period), text) is valid


def test_the_boards_time_zone_decides_the_period():
    sunday_night_utc = datetime(2026, 11, 22, 23, 30, tzinfo=UTC)  # already Monday in Tokyo
    assert board_period(board("week"), sunday_night_utc) == "2026-W47"
    assert board_period(board("week", "Asia/Tokyo"), sunday_night_utc) == "2026-W48"


def test_rank_keys_sort_by_score_then_by_who_reached_it_first():
    keys = [
        rank_key(100, 2_000, "late"),
        rank_key(100, 1_000, "early"),
        rank_key(150, 9_000, "top"),
        rank_key(5, 0, "low"),
    ]
    assert [key.rsplit("#", 1)[1] for key in sorted(keys, reverse=True)] == ["top", "early", "late", "low"]


def test_shards_are_stable_and_spread():
    assert shard_of("user-1", 10) == shard_of("user-1", 10)
    assert len({shard_of(f"user-{n}", 10) for n in range(1000)}) == 10


@pytest.mark.parametrize("score", [0, 1, 2, 3, 10, 99, 100, 1000, 123_456, 10**12])
def test_every_score_falls_inside_its_bucket(score):
    low, high = bucket_range(bucket_of(score))
    assert low <= score < high


def test_rank_estimate_from_a_histogram_is_close_for_evenly_spread_scores():
    scores = list(range(1, 10_001))
    histogram: dict[int, int] = {}
    for score in scores:
        histogram[bucket_of(score)] = histogram.get(bucket_of(score), 0) + 1

    for score in (9_000, 5_000, 1_234, 50):
        ahead, total = estimate_ahead(histogram, score)
        true_ahead = sum(1 for other in scores if other > score)
        assert total == 10_000
        assert abs(ahead - true_ahead) <= 0.02 * 10_000, (score, ahead, true_ahead)

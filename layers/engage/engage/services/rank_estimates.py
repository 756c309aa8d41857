"""Estimated ranks for the ingest response: from a board period's score histogram, read at most once a
minute per Lambda environment, so showing a rank adds no read to an ingest request. Apart from
services.leaderboards (the GET route, with the API's read models) to keep ingest's cold start small."""

from __future__ import annotations

import time
from datetime import datetime

from ..engine.leaderboards import estimate_ahead
from ..settings import get_settings
from ..store import leaderboards as store

_stats_cache: dict[str, tuple[float, store.BoardStats, datetime]] = {}


def cached_stats(key: str, shards: int, now: datetime) -> tuple[store.BoardStats, datetime]:
    """A board period's histogram as of at most a minute ago (one query per minute per Lambda environment),
    for the ingest's rank estimates, which must not add a read to every request."""
    max_age = get_settings().config_cache_seconds
    cached = _stats_cache.get(key)
    if cached is None or time.monotonic() - cached[0] >= max_age:
        cached = (time.monotonic(), store.stats(key, shards), now)
        _stats_cache[key] = cached
    return cached[1], cached[2]


def estimated_rank(stats: store.BoardStats, score: int) -> int:
    return round(estimate_ahead(stats.histogram, score)[0]) + 1

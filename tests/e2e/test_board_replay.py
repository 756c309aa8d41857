"""Stream batches the boards function gave up on are replayed from their failure records
(`engage leaderboard replay`): the users passed are told, the histogram moves, each once."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from engage.config import load_config_file
from engage.engine.leaderboards import bucket_of
from engage.services.replay import replay_failed_board_batches
from engage.store import leaderboards as boards
from engage.store import queues

from ..conftest import FITQUEST
from ..integration.test_overtakes import earn, rank_lost, three_players
from .test_notify_replay import failure_record, queued

WEEK = datetime(2026, 8, 17, 9, 0, tzinfo=UTC)  # 2026-W34: a week of its own, so other tests' scores never mix in
BOARD = "weekly-xp#2026-W34"


def histogram() -> dict[int, int]:
    shards = next(board.shards for board in load_config_file(FITQUEST).leaderboards if board.id == "weekly-xp")
    return boards.stats(BOARD, shards).histogram


def board_replay_command(stack: Any, tmp_path: Path, monkeypatch: Any) -> Any:
    """`engage leaderboard replay` against the test's stack, with only the settings the CLI gives itself for a
    local stage (from the state `engage local up` records): none of the test process's own."""
    import engage.local.stack as local_stack
    from engage.cli import _QUEUES, _TABLES, app
    from engage.settings import get_settings

    recorded = tmp_path / "stack.json"
    recorded.write_text(json.dumps({"dynamodb_endpoint": stack.dynamodb.endpoint, "tables": stack.tables,
                                    "queues": stack.queue_urls, "sqs_endpoint": stack.sqs.wait_ready()}))  # fmt: skip
    monkeypatch.setattr(local_stack, "state_file", lambda: recorded)
    saved = dict(os.environ)
    for name in (*_TABLES, *_QUEUES, "IDEMPOTENCY_TABLE", "BOARDS_FAILED_BATCHES_QUEUE_URL"):
        os.environ.pop(name, None)  # the CLI must set each one it needs
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(app, ["leaderboard", "replay"])
    finally:
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()


def test_given_a_batch_boards_gave_up_on_when_replayed_then_the_passed_are_told_and_the_histogram_moves_once(
    stack, streams, tmp_path, monkeypatch
):
    failed_batches_queue = stack.queue_urls["BoardsFailedBatchesQueue"]
    ada, grace, linus = three_players(stack, WEEK)  # 100, 300 and 200 XP, handled by boards
    before = histogram()

    with stack.paused():  # boards does not see Ada's new score: as if it had failed on it
        earn(ada, 150, WEEK + timedelta(minutes=3), "Ada")  # 400 XP: past Linus and Grace
        record = failure_record(streams, stack, ada, table="LeaderboardsTable")  # from her first row: some handled
        twice = [queues.Outgoing(json.dumps(record))] * 2  # Lambda may send one more than once: safe to replay
        queues.send(failed_batches_queue, twice)
        assert rank_lost(grace) == [] and histogram() == before

        replayed = board_replay_command(stack, tmp_path, monkeypatch)  # as an operator runs it

        assert replayed.exit_code == 0, replayed.output
        assert "replayed 2 batch(es)" in replayed.output and ": 2 rank_lost fact(s) written" in replayed.output
        assert [f["passed_by"] for f in rank_lost(grace)] == ["Ada"] and len(rank_lost(linus)) == 1
        moved = histogram()
        assert moved.get(bucket_of(100), 0) == before.get(bucket_of(100), 0) - 1
        assert moved.get(bucket_of(400), 0) == before.get(bucket_of(400), 0) + 1
        assert replay_failed_board_batches(failed_batches_queue, streams).batches == 0  # nothing left
        assert json.dumps(record) not in queued(failed_batches_queue)

    stack.streams.drain()  # boards sees the record after all: nobody is told twice, nothing moves twice
    assert len(rank_lost(grace)) == 1 and len(rank_lost(linus)) == 1 and histogram() == moved

"""rank_lost facts: the leaderboards stream tells users near the top who passed them, once."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import engage.services.overtakes as overtakes
from engage.api.events import EventsRequest
from engage.services.ingest import ingest_client_events
from engage.store.models import LedgerItem

from ..conftest import FITQUEST

# A week of its own (2026-W30), so other tests' scores never mix in.
MONDAY = datetime(2026, 7, 20, 9, 0, tzinfo=UTC)
_n = itertools.count()


def earn(user: str, minutes: int, at: datetime, name: str) -> None:
    event = {"id": f"{user}-{next(_n)}", "type": "workout_completed", "occurred_at": at.isoformat(),
             "properties": {"minutes": minutes, "kind": "run"}}  # fmt: skip
    ingest_client_events(EventsRequest.model_validate({"events": [event]}), {"sub": user, "name": name}, now=at)


def rank_lost(user: str) -> list[dict]:
    return [fact for row in LedgerItem.query(user) for fact in row.facts if fact["type"] == "rank_lost"]


def three_players(stack, week: datetime) -> tuple[str, str, str]:
    """Ada, Grace and Linus with 100, 300 and 200 XP in `week`, their stream records handled."""
    prefix = f"ot{next(_n)}"
    ada, grace, linus = f"{prefix}-ada", f"{prefix}-grace", f"{prefix}-linus"
    earn(grace, 150, week, "Grace")
    earn(linus, 100, week + timedelta(minutes=1), "Linus")
    earn(ada, 50, week + timedelta(minutes=2), "Ada")
    stack.streams.drain()
    return ada, grace, linus


def test_users_passed_near_the_top_are_told_once(stack):
    ada, grace, linus = three_players(stack, MONDAY)
    assert rank_lost(grace) == [] and rank_lost(linus) == []

    # When Ada jumps to 400 XP, past Linus and Grace
    earn(ada, 150, MONDAY + timedelta(minutes=3), "Ada")
    stack.streams.drain()

    # Then each of them hears who passed them and where they stand now; Ada hears nothing
    assert [(f["passed_by"], f["board"], f["period"]) for f in rank_lost(grace)] == [("Ada", "weekly-xp", "2026-W30")]
    assert rank_lost(grace)[0]["new_rank"] < rank_lost(linus)[0]["new_rank"]
    assert rank_lost(ada) == []

    # And draining again (the stream holds nothing new) tells nobody twice
    stack.streams.drain()
    assert len(rank_lost(grace)) == 1 and len(rank_lost(linus)) == 1


def test_a_passer_who_scored_again_before_the_stream_was_read_is_counted_once_and_shown_by_name_only(stack):
    week = datetime(2026, 9, 28, 9, 0, tzinfo=UTC)  # 2026-W40: nobody else's scores
    ada, grace, linus = three_players(stack, week)

    # When Ada passes both, then scores again, before the stream is read
    with stack.paused():
        earn(ada, 150, week + timedelta(minutes=3), "Ada")  # 400 XP
        earn(ada, 10, week + timedelta(minutes=4), "Ada")  # 420 XP
    stack.streams.drain()

    # Then Grace is second and Linus third: Ada's newer row is not someone else ahead of Ada
    assert [f["new_rank"] for f in rank_lost(grace)] == [2]
    assert [f["new_rank"] for f in rank_lost(linus)] == [3]
    # and the fact's id, which the history shows, does not carry Ada's user id
    assert ada not in rank_lost(grace)[0]["event_id"] and rank_lost(grace)[0]["passed_by"] == "Ada"
    # and the history lists the fact under the fact's own id
    from engage.store.history import history_page

    entries, _ = history_page(grace, 10, None)
    assert [e.event_id for e in entries if e.event_type == "rank_lost"] == [rank_lost(grace)[0]["event_id"]]


def test_an_exact_count_stops_at_its_cap_and_a_lagging_histogram_never_ranks_above_it(stack, monkeypatch, held_pollers):
    import engage.services.leaderboards as leaderboards
    from engage.config import load_config_file
    from engage.engine.leaderboards import rank_key
    from engage.services.leaderboards import my_rank
    from engage.store import leaderboards as store
    from engage.store.models import LeaderboardItem

    key = "weekly-xp#2026-W41"
    for n in range(8):  # 8 users ahead, all in shard 0, and no histogram yet (the boards function lags)
        LeaderboardItem(key, f"ahead-{n}", shard=f"{key}#0", rank_key=rank_key(100 + n, n, f"ahead-{n}"),
                        score=100 + n, reached_ms=n, name=None).save()  # fmt: skip
    me = store.BoardRow("me", None, 50, rank_key(50, 9, "me"))

    assert store.count_ahead(key, 1, me.rank_key, cap=3) == (3, False)  # read no further than the cap
    board = next(b for b in load_config_file(FITQUEST).leaderboards if b.id == "weekly-xp")
    monkeypatch.setattr(leaderboards, "EXACT_COUNT_CAP", 3)
    rank = my_rank(board, key, me, MONDAY, stats=store.BoardStats({}, 1))
    assert (rank.rank, rank.exact) == (4, False)  # not first: at least the 3 counted are ahead


def test_the_same_record_delivered_twice_writes_one_fact(stack):
    prefix = f"ot{next(_n)}"
    new = {"board": "weekly-xp#2026-W31", "user_id": f"{prefix}-a", "name": "A", "score": 50, "shard": "weekly-xp#2026-W31#0",
           "rank_key": "000000000000050#999999999999999#x"}  # fmt: skip
    victim = {"board": "weekly-xp#2026-W31", "user_id": f"{prefix}-b", "name": "B", "score": 40}
    from engage.engine.leaderboards import rank_key
    from engage.store.models import LeaderboardItem

    LeaderboardItem("weekly-xp#2026-W31", victim["user_id"], shard="weekly-xp#2026-W31#0",
                    rank_key=rank_key(40, 1, victim["user_id"]), score=40, reached_ms=1, name="B").save()  # fmt: skip
    new["rank_key"] = rank_key(50, 2, new["user_id"])
    new["reached_ms"] = 2
    LeaderboardItem("weekly-xp#2026-W31", new["user_id"], shard="weekly-xp#2026-W31#0", rank_key=new["rank_key"],
                    score=50, reached_ms=2, name="A").save()  # fmt: skip
    old = {**new, "score": 30, "rank_key": rank_key(30, 0, new["user_id"])}

    first = overtakes.score_changed(old, new)
    again = overtakes.score_changed(old, new)

    assert (first, again) == (1, 0)
    assert [f["new_rank"] for f in rank_lost(victim["user_id"])] == [2]


def test_a_histogram_move_handled_again_counts_once(stack):
    from engage.store import leaderboards as store

    board = f"moves-{next(_n)}#2026-W42"
    first = store.move_in_histogram(board, 0, None, 7, None, move_id="user-a@300")
    again = store.move_in_histogram(board, 0, None, 7, None, move_id="user-a@300")  # a retried batch
    other = store.move_in_histogram(board, 0, 7, 9, None, move_id="user-a@450")  # the user's next score

    assert (first, again, other) == (True, False, True)
    assert store.stats(board, 1).histogram == {9: 1}


def test_a_histogram_move_that_meets_another_transaction_is_tried_again(stack, monkeypatch, held_pollers):
    from pynamodb.exceptions import CancellationReason, TransactWriteError, VerboseClientError

    from engage.store import leaderboards as store

    real = store.connection()
    conflicts = []

    class Busy:  # the first transaction meets another writer of the same histogram item
        def transact_write_items(self, *args, **kwargs):
            if not conflicts:
                error = {"Error": {"Code": "TransactionCanceledException", "Message": "conflict"}}
                reasons = [None, CancellationReason(code="TransactionConflict")]
                cause = VerboseClientError(error, "TransactWriteItems", cancellation_reasons=reasons)
                conflicts.append(cause)
                raise TransactWriteError("Failed to write transaction items", cause)
            return real.transact_write_items(*args, **kwargs)

    monkeypatch.setattr(store, "connection", Busy)
    board = f"moves-{next(_n)}#2026-W43"
    assert store.move_in_histogram(board, 0, None, 3, None, move_id="user-b@100") and conflicts
    monkeypatch.undo()
    assert store.stats(board, 1).histogram == {3: 1}


def test_far_below_the_top_nobody_is_told(stack, monkeypatch, held_pollers):
    monkeypatch.setattr(overtakes, "RANK_LOST_TOP", 1)  # as if everyone here were ranked below the top
    prefix = f"ot{next(_n)}"
    earn(f"{prefix}-b", 20, MONDAY + timedelta(days=14), "B")
    earn(f"{prefix}-a", 10, MONDAY + timedelta(days=14, minutes=1), "A")
    stack.streams.drain()
    earn(f"{prefix}-a", 30, MONDAY + timedelta(days=14, minutes=2), "A")
    stack.streams.drain()

    assert rank_lost(f"{prefix}-b") == []


def test_no_stream_batch_has_failed_so_far(stack):
    from engage.local.stack import failed_batches

    stack.streams.drain()
    path = failed_batches(stack.prefix)
    assert not path.exists() or path.read_text() == ""


def test_a_failing_record_and_those_after_it_are_retried_unhandled(stack, monkeypatch):
    # Lambda redelivers everything from the first failed record: handling the later ones now would count twice.
    import sys

    from engage.local.server import HandlerPool, LambdaContext

    handled = []

    def flaky(old, new):
        if new["user_id"] == "second":
            raise RuntimeError("DynamoDB hiccup")
        handled.append(new["user_id"])
        return 0

    pool = HandlerPool(stack.template.functions["BoardsFunction"])
    pool.invoke({"Records": []}, LambdaContext("BoardsFunction", "load"))  # loads the handler module
    for name, module in list(sys.modules.items()):
        if name.startswith("engage_local_BoardsFunction"):
            monkeypatch.setattr(module, "score_changed", flaky)
    records = [
        {"eventName": "MODIFY", "dynamodb": {"SequenceNumber": str(n), "NewImage": {"user_id": {"S": user}}}}
        for n, user in enumerate(("first", "second", "third"))
    ]

    answer = pool.invoke({"Records": records}, LambdaContext("BoardsFunction", "t"))

    assert [f["itemIdentifier"] for f in answer["batchItemFailures"]] == ["1", "2"]
    assert handled == ["first"]


def test_records_left_when_time_runs_short_are_handed_back_unhandled(stack, monkeypatch):
    import sys
    import time

    from engage.local.server import HandlerPool, LambdaContext

    handled = []
    pool = HandlerPool(stack.template.functions["BoardsFunction"])
    pool.invoke({"Records": []}, LambdaContext("BoardsFunction", "load"))  # loads the handler module
    for name, module in list(sys.modules.items()):
        if name.startswith("engage_local_BoardsFunction"):
            monkeypatch.setattr(module, "score_changed", lambda old, new: handled.append(new["user_id"]) or 0)
    records = [{"eventName": "MODIFY", "dynamodb": {"SequenceNumber": "1", "NewImage": {"user_id": {"S": "a"}}}}]

    answer = pool.invoke({"Records": records}, LambdaContext("BoardsFunction", "t", deadline=time.monotonic() + 1))

    assert answer["batchItemFailures"] == [{"itemIdentifier": "1"}] and handled == []

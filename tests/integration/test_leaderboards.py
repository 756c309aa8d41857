"""Leaderboards against DynamoDB Local: scores ride in the ingest transaction, shards merge, ranks say how exact."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

import engage.services.leaderboards as boards_service
from engage.api.events import EventsRequest
from engage.services.errors import NotFound
from engage.services.ingest import ingest_client_events
from engage.services.leaderboards import leaderboard
from engage.store.models import LeaderboardItem

# A week of its own (2026-W24), so other tests' users never show up on these boards.
MONDAY = datetime(2026, 6, 8, 9, 0, tzinfo=UTC)
_run = itertools.count()


def earn(user: str, minutes: int, at: datetime, name: str | None = None) -> None:
    """A workout worth 2 XP a minute, sent `at` (the server's clock then)."""
    event = {"id": f"{user}-{next(_run)}", "type": "workout_completed", "occurred_at": at.isoformat(),
             "properties": {"minutes": minutes, "kind": "run"}}  # fmt: skip
    claims = {"sub": user, **({"name": name} if name else {})}
    ingest_client_events(EventsRequest.model_validate({"events": [event]}), claims, now=at)


@pytest.fixture
def board_users(stack):
    prefix = f"lb{next(_run)}"
    # Ada and Grace tie on 120 XP; Ada got there first, so she ranks higher.
    earn(f"{prefix}-ada", 60, MONDAY, name=f"Ada {prefix}")
    earn(f"{prefix}-grace", 60, MONDAY + timedelta(hours=1), name=f"Grace {prefix}")
    earn(f"{prefix}-linus", 100, MONDAY + timedelta(hours=2), name=f"Linus {prefix}")  # 200 XP
    earn(f"{prefix}-alan", 20, MONDAY + timedelta(hours=3), name=f"Alan {prefix}")  # 40 XP
    stack.streams.drain()  # the histograms follow the rows through the stream
    return prefix


def test_scores_ride_in_the_ingest_transaction_and_count_the_period_only(board_users):
    row = LeaderboardItem.get("weekly-xp#2026-W24", f"{board_users}-linus")
    assert (row.score, row.name) == (200, f"Linus {board_users}")

    # A week later the board starts afresh for Linus
    earn(f"{board_users}-linus", 10, MONDAY + timedelta(days=7))
    assert LeaderboardItem.get("weekly-xp#2026-W25", f"{board_users}-linus").score == 20


def test_top_merges_shards_and_breaks_ties_by_who_got_there_first(board_users):
    view = leaderboard({"sub": f"{board_users}-grace"}, "weekly-xp", limit=100, now=MONDAY + timedelta(hours=5))

    mine = [(e.name.split()[0], e.score) for e in view.entries if e.name and e.name.endswith(board_users)]
    assert mine == [("Linus", 200), ("Ada", 120), ("Grace", 120), ("Alan", 40)]
    assert [e.rank for e in view.entries] == list(range(1, len(view.entries) + 1))
    assert view.period == "2026-W24"
    assert view.me is not None and view.me.exact and view.me.score == 120
    assert view.me.rank == next(e.rank for e in view.entries if e.is_me)


def test_around_me_lists_neighbours_with_their_ranks(board_users):
    view = leaderboard({"sub": f"{board_users}-grace"}, "weekly-xp", around_me=True, now=MONDAY + timedelta(hours=5))

    me = next(e for e in view.around if e.is_me)
    assert view.me is not None and me.rank == view.me.rank and me.score == 120
    position = view.around.index(me)
    assert all(e.score >= me.score for e in view.around[:position])
    assert all(e.score <= me.score for e in view.around[position + 1 :])
    assert 0 < position <= 5 and len(view.around) - position - 1 <= 5
    ranks = [e.rank for e in view.around]
    assert ranks == list(range(ranks[0], ranks[0] + len(ranks)))
    assert view.around == view.entries[ranks[0] - 1 : ranks[-1]] or len(view.entries) < ranks[-1]


def test_past_the_exact_cap_a_rank_is_a_lower_bound_and_says_so(board_users, monkeypatch):
    monkeypatch.setattr(boards_service, "EXACT_COUNT_CAP", 1)

    view = leaderboard({"sub": f"{board_users}-alan"}, "weekly-xp", now=MONDAY + timedelta(hours=5))

    assert view.me is not None and view.me.exact is False
    assert view.me.rank >= 2


def test_previous_period_and_unknown_boards(board_users):
    next_week = MONDAY + timedelta(days=7, hours=1)
    previous = leaderboard({"sub": f"{board_users}-ada"}, "weekly-xp", period="previous", now=next_week)
    current = leaderboard({"sub": f"{board_users}-ada"}, "weekly-xp", now=next_week)

    assert previous.period == "2026-W24" and previous.me is not None and previous.me.score == 120
    assert current.me is None  # no score yet this week
    with pytest.raises(NotFound, match="weekly-xp"):
        leaderboard({"sub": "x"}, "no-such-board")


def test_other_users_are_shown_by_name_never_by_id(board_users):
    view = leaderboard({"sub": f"{board_users}-ada"}, "weekly-xp", now=MONDAY + timedelta(hours=5))

    dumped = view.model_dump_json()
    assert f"{board_users}-linus" not in dumped and f"Linus {board_users}" in dumped


def test_closing_a_week_rewards_each_winner_exactly_once(board_users):
    from engage.services.errors import InvalidInput
    from engage.services.leaderboards import close_period
    from engage.store.progress import load_user

    next_week = MONDAY + timedelta(days=7, hours=1)
    linus = f"{board_users}-linus"
    coins_before = load_user(linus).balances["coins"]

    first = close_period("weekly-xp", now=next_week)
    again = close_period("weekly-xp", now=next_week)

    ranks = {g.user_id: g for g in first}
    assert ranks[linus].newly and all(not g.newly for g in again)
    top = next(g for g in first if g.rank == 1)
    assert load_user(top.user_id).balances["coins"] >= 100  # rank 1 wins 100 coins, ranks 2–10 win 20
    expected = 100 if ranks[linus].rank == 1 else 20 if ranks[linus].rank <= 10 else 0
    assert load_user(linus).balances["coins"] == coins_before + expected
    with pytest.raises(InvalidInput, match="has not ended"):
        close_period("weekly-xp", period="2026-W25", now=next_week)
    with pytest.raises(InvalidInput, match=r"is not a week .* Fix: write it like '2026-W"):
        close_period("weekly-xp", period="2026-25", now=next_week)  # would compare as an ended period


def test_a_small_gain_inside_the_same_histogram_bucket_still_commits(board_users):
    # 200 → 205 XP (the daily app-open bonus) stays in one histogram bucket: the row changes, the histogram not.
    linus = f"{board_users}-linus"
    at = MONDAY + timedelta(hours=4)
    event = {"id": f"{linus}-open", "type": "app_opened", "occurred_at": at.isoformat()}
    ingest_client_events(EventsRequest.model_validate({"events": [event]}), {"sub": linus}, now=at)

    assert LeaderboardItem.get("weekly-xp#2026-W24", linus).score == 205


def test_histograms_follow_the_rows_through_the_stream(board_users, stack):
    from collections import Counter

    from engage.engine.leaderboards import bucket_of
    from engage.store.leaderboards import stats

    earn(f"{board_users}-alan", 200, MONDAY + timedelta(hours=6))  # a move from one bucket to another
    stack.streams.drain()

    rows = list(LeaderboardItem.query("weekly-xp#2026-W24"))
    assert stats("weekly-xp#2026-W24", 10).histogram == dict(Counter(bucket_of(int(row.score)) for row in rows))


def test_a_rank_estimate_that_cannot_be_read_leaves_the_award_and_the_answer_intact(user_id, monkeypatch):
    import engage.services.ingest as ingest

    def unreadable(*args):
        raise RuntimeError("DynamoDB throttled the histogram read")

    monkeypatch.setattr(ingest, "cached_stats", unreadable)
    event = {"id": f"{user_id}-1", "type": "workout_completed", "occurred_at": MONDAY.isoformat(),
             "properties": {"minutes": 30, "kind": "run"}}  # fmt: skip

    answer = ingest_client_events(EventsRequest.model_validate({"events": [event]}), {"sub": user_id}, now=MONDAY)

    # The commit came first: a 500 now would turn the app's retry into a "duplicate" with no feedback at all
    assert answer.accepted == 1 and answer.progress.gained["xp"] == 60
    assert answer.progress.leaderboards == []

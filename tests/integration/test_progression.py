"""Badges, streaks and quests against DynamoDB Local: stored progress, races, and what /v1/me shows."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from engage.api.events import EventsRequest
from engage.services.ingest import ingest_client_events
from engage.services.me import my_progress
from engage.store.models import LedgerItem
from engage.store.progress import load_user

from .test_ingest import _both_read_before_either_writes, workout


def send(user_id: str, events: list[dict], timezone: str | None = None):
    context = {"timezone": timezone} if timezone else None
    return ingest_client_events(EventsRequest.model_validate({"events": events, "context": context}), {"sub": user_id})


def test_concurrent_requests_race_for_the_same_badge_and_it_is_awarded_once(user_id, monkeypatch):
    now = datetime.now(UTC)
    _both_read_before_either_writes(monkeypatch, 2)
    answers = []

    def post(n: int):
        answers.append(send(user_id, [workout(f"{user_id}-{n}", now - timedelta(minutes=n))]))

    threads = [threading.Thread(target=post, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    awarded = [f for a in answers for f in a.progress.badges if f["badge"] == "first-workout"]
    assert len(awarded) == 1
    rows = list(LedgerItem.query(user_id))
    assert sum(1 for row in rows for fact in row.facts if fact.get("badge") == "first-workout") == 1
    assert load_user(user_id).badges["first-workout"]["tiers"] == 1


def test_progress_survives_the_round_trip_and_me_shows_it(user_id):
    # Given a user in New York with a workout on each of the last three local days
    zone = ZoneInfo("America/New_York")
    now = datetime.now(zone)  # not 09:00 of today: before 09:00 in New York that is still to come
    days = [now - timedelta(days=d) for d in (2, 1, 0)]
    answer = send(user_id, [workout(f"{user_id}-{i}", day, minutes=40) for i, day in enumerate(days)],
                  timezone="America/New_York")  # fmt: skip

    # Then the ingest reports the streak and badge progress it caused
    assert [f["length"] for f in answer.progress.streaks if f["type"] == "streak_extended"] == [1, 2, 3]
    assert [f["length"] for f in answer.progress.streaks if f["type"] == "streak_milestone"] == [3]
    assert "first-workout" in [f["badge"] for f in answer.progress.badges]

    # And GET /v1/me reads it all back from DynamoDB
    me = my_progress({"sub": user_id})
    streak = next(s for s in me.streaks if s.id == "daily-workout")
    assert (streak.length, streak.done_this_period, streak.at_risk) == (3, True, False)
    badges = {b.id: b for b in me.badges}
    assert badges["first-workout"].earned
    assert (badges["marathoner"].value, badges["marathoner"].next_goal, badges["marathoner"].next_tier) == (
        120,
        300,
        "Bronze",
    )
    assert "weekend-warrior" not in badges or badges["weekend-warrior"].earned  # secret until earned
    daily = next(q for q in me.quests if q.id == "daily-goal")
    assert daily.state == "completed" and daily.steps[0].value == 40


def test_a_secret_badge_appears_once_earned(user_id):
    zone = ZoneInfo("UTC")
    now = datetime.now(zone)
    saturday = (now - timedelta(days=(now.isoweekday() - 6) % 7)).replace(hour=10, minute=0, second=0, microsecond=0)
    weekend = [saturday, saturday + timedelta(hours=1)]
    if weekend[-1] > now:  # on a Saturday before 11:00 the second would lie in the future
        weekend = [at - timedelta(days=7) for at in weekend]

    answer = send(user_id, [workout(f"{user_id}-{i}", at) for i, at in enumerate(weekend)], timezone="UTC")

    assert "weekend-warrior" in [f["badge"] for f in answer.progress.badges]
    me = my_progress({"sub": user_id})
    assert next(b for b in me.badges if b.id == "weekend-warrior").earned


def test_me_shows_a_distinct_badge_within_a_window_as_a_count_of_kinds():
    # Its window holds digests of the kinds: /v1/me counted them by summing, which failed (a 500)
    from engage.config.loader import parse_yaml, validate_config_data
    from engage.engine import Event, UserState, apply_batch
    from engage.services.me import _badges

    from ..conftest import FITQUEST

    data, _ = parse_yaml(FITQUEST.read_text(), str(FITQUEST))
    data["badges"] = [{"id": "variety", "name": "Variety", "criteria": {"distinct": {"event": "workout_completed",
                       "property": "kind"}, "gte": 3, "within": "1d"}}]  # fmt: skip
    config, now = validate_config_data(data), datetime.now(UTC)
    kinds = [(1, "run"), (2, "ride"), (3, "run")]
    events = [(i, Event(f"e{i}", "workout_completed", now - timedelta(hours=h), {"minutes": 20, "kind": k}))
              for i, (h, k) in enumerate(kinds)]  # fmt: skip
    state = apply_batch(config, UserState("u"), events, source="client", now=now).after

    [variety] = _badges(config, state, now)
    assert (variety.value, variety.earned, variety.next_goal) == (2, False, 3)


def test_me_shows_the_run_of_the_users_day_after_a_move_west_puts_them_back_in_the_day_before():
    # A workout in Tokyo early on its Saturday; then, in Los Angeles, it is still Friday there: 30 minutes on
    # Friday complete Friday's run, which the engine keeps as the run before, and /v1/me shows that run.
    from engage.config import load_config_file
    from engage.engine import Event, Profile, UserState, apply_batch
    from engage.services.me import _quests

    from ..conftest import FITQUEST

    config = load_config_file(FITQUEST)
    now = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)  # Saturday 10:00 in Tokyo, Friday 17:00 in Los Angeles
    tokyo = apply_batch(config, UserState("u", profile=Profile("Asia/Tokyo")), [
        (0, Event("t", "workout_completed", now - timedelta(minutes=30), {"minutes": 5, "kind": "run"}))
    ], source="client", now=now)  # fmt: skip
    moved = apply_batch(config, tokyo.after, [
        (0, Event("la", "workout_completed", now - timedelta(minutes=10), {"minutes": 30, "kind": "run"}))
    ], source="client", now=now, profile=Profile("America/Los_Angeles"))  # fmt: skip

    completed = [f.data["instance"] for r in moved.results for f in r.facts if f.type == "quest_completed"]
    daily = next(q for q in _quests(config, moved.after, now) if q.id == "daily-goal")
    assert completed == ["2026-11-20"]
    assert (daily.state, daily.steps[0].value) == ("completed", 30)

"""Behaviour the FitQuest config cannot show, on a published variant of it, through DynamoDB Local:
a weekly quest resetting at the user's local Monday 00:00, and one workout skipping a badge tier."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from engage.api.events import EventsRequest
from engage.config.loader import parse_yaml
from engage.services.config import forget_cached_config
from engage.services.ingest import ingest_client_events
from engage.store import config_store
from engage.store.progress import load_user

from ..conftest import FITQUEST

NEW_YORK = ZoneInfo("America/New_York")
MONDAY = datetime(2026, 11, 16, 0, 0, tzinfo=NEW_YORK)  # local Monday 00:00 = 05:00 UTC


@pytest.fixture(scope="module", autouse=True)
def _variant(stack):
    document, _ = parse_yaml(FITQUEST.read_text(), str(FITQUEST))
    variant = {
        **document,
        "quests": [{"id": "weekly-three", "name": "Three a week", "recurrence": "weekly",
                    "steps": [{"id": "three", "count": {"event": "workout_completed"}, "gte": 3}],
                    "reward": {"coins": 25}}],
        "badges": [{"id": "marathoner", "name": "Marathoner", "criteria": {"sum": {"event": "workout_completed",
                    "property": "minutes"}}, "tiers": [{"name": "Bronze", "gte": 100}, {"name": "Silver", "gte": 250},
                    {"name": "Gold", "gte": 5000}]}],
    }  # fmt: skip
    config_store.publish("fitquest", variant)
    forget_cached_config()
    yield
    config_store.publish("fitquest", document)
    forget_cached_config()


def send(user_id: str, at: datetime, minutes: int = 30, now: datetime | None = None):
    event = {"id": f"{user_id}-{at.timestamp()}", "type": "workout_completed", "occurred_at": at.isoformat(),
             "properties": {"minutes": minutes, "kind": "run"}}  # fmt: skip
    request = EventsRequest.model_validate({"events": [event], "context": {"timezone": "America/New_York"}})
    return ingest_client_events(request, {"sub": user_id}, now=now or at)


def test_weekly_quest_resets_at_the_users_local_monday_midnight(user_id):
    # Two workouts late on Sunday night in New York (already Monday in UTC), one just after local midnight
    send(user_id, MONDAY - timedelta(minutes=40))
    send(user_id, MONDAY - timedelta(minutes=20))
    answer = send(user_id, MONDAY + timedelta(minutes=5))

    assert answer.progress.quests == []  # the third workout starts a new week: nothing completes
    quest = load_user(user_id).quests["weekly-three"]
    assert (quest["instance"], quest["steps"]) == ("2026-W47", {"three": 1})

    send(user_id, MONDAY + timedelta(hours=1))
    done = send(user_id, MONDAY + timedelta(hours=2))
    assert [f["type"] for f in done.progress.quests] == ["quest_step_completed", "quest_completed"]
    assert done.results[0].awards["coins"] == 5 + 25


def test_one_workout_skipping_a_tier_awards_both_tiers_in_order(user_id):
    at = MONDAY + timedelta(days=2)
    send(user_id, at, minutes=60)  # 60 minutes: below Bronze

    answer = send(user_id, at + timedelta(hours=1), minutes=200, now=at + timedelta(hours=1))  # 260: past Silver

    assert [(f["tier"], f["tier_index"]) for f in answer.progress.badges] == [("Bronze", 0), ("Silver", 1)]
    assert load_user(user_id).badges["marathoner"]["tiers"] == 2
    again = send(user_id, at + timedelta(hours=2), minutes=10, now=at + timedelta(hours=2))
    assert again.progress.badges == []  # each tier once

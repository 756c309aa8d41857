"""A user item at DynamoDB's 400 KB limit, through DynamoDB Local: the events that no longer fit are rejected,
each saying why, and the other users of a server request are still applied.

`engage config validate` refuses configs that could get there; this is a config published before it did."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engage.api.events import EventsRequest, ServerEventsRequest
from engage.config.loader import parse_yaml
from engage.services.config import forget_cached_config
from engage.services.ingest import ingest_client_events, ingest_server_events
from engage.store import config_store
from engage.store.progress import load_user

from ..conftest import FITQUEST

NOW = datetime.now(UTC)


@pytest.fixture(scope="module", autouse=True)
def _places_badges(stack):
    # 28 badges each keeping up to 1,000 places met: about 420 KB per user (validation now refuses it)
    document, _ = parse_yaml(FITQUEST.read_text(), str(FITQUEST))
    badges = [{"id": f"places-{n}", "name": f"Places {n}", "criteria": {"distinct": {"event": "visit", "property": "place"}},
               "tiers": [{"name": "Bronze", "gte": 10}, {"name": "Gold", "gte": 1000}]} for n in range(28)]  # fmt: skip
    variant = {**document, "events": {**document["events"], "visit": {"source": "client", "properties": {
        "place": {"type": "string"}}}}, "badges": badges}  # fmt: skip
    config_store.publish("fitquest", variant)
    forget_cached_config()
    yield
    config_store.publish("fitquest", document)
    forget_cached_config()


def visits(user: str, first: int, count: int, **extra: str) -> list[dict]:
    return [{"id": f"{user}-visit-{n}", "type": "visit", "occurred_at": (NOW - timedelta(seconds=n)).isoformat(),
             "properties": {"place": f"place {n:05d}"}, **extra} for n in range(first, first + count)]  # fmt: skip


def test_events_a_full_user_item_cannot_hold_are_rejected_saying_why_and_other_users_still_count(user_id):
    # Given a user whose item grows by 28 digests a visit, until DynamoDB refuses it
    statuses: list[str] = []
    sent = 0
    while "rejected" not in statuses and sent < 1200:
        answer = ingest_client_events(
            EventsRequest.model_validate({"events": visits(user_id, sent, 90)}), {"sub": user_id}
        )
        statuses = [result.status for result in answer.results]
        sent += 90
    # Then the request that no longer fits answers (no 500 its retries would meet again), each event saying why
    assert set(statuses) == {"rejected"}, statuses
    assert {result.code for result in answer.results} == {"progress_full"}
    assert "400 KB item limit" in (answer.results[0].reason or "")
    kept = load_user(user_id)
    assert max(len(badge.get("seen", [])) for badge in kept.badges.values()) < 1000  # the item was not written

    # And a server request with the same events and one of another user applies the other user's
    other = f"{user_id}-other"
    both = ServerEventsRequest.model_validate(
        {"events": visits(user_id, sent - 90, 90, user_id=user_id) + visits(other, 0, 1, user_id=other)}
    )
    answer = ingest_server_events(both)
    by_user = {(result.user_id, result.status) for result in answer.results}
    assert by_user == {(user_id, "rejected"), (other, "accepted")}
    assert load_user(other).badges["places-0"]["seen"]

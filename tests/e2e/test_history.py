"""GET /v1/me/history: every applied event with what it caused, newest first, a page at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engage.local import tokens
from engage.local.demo import http
from engage.store.history import encode_cursor


def test_history_pages_through_the_ledger_newest_first(stack, user):
    token = tokens.mint(user)
    headers = {"authorization": f"Bearer {token}"}
    for n in range(3):
        moment = (datetime.now(UTC) - timedelta(minutes=10 - n)).isoformat()
        workout = {"id": f"{user}-{n}", "type": "workout_completed", "occurred_at": moment,
                   "properties": {"minutes": 20 + n, "kind": "run"}}  # fmt: skip
        assert http("POST", f"{stack.api_url}/v1/events", {"events": [workout]}, headers)[0] == 200

    status, first = http("GET", f"{stack.api_url}/v1/me/history?limit=2", headers=headers)
    _, second = http("GET", f"{stack.api_url}/v1/me/history?limit=2&cursor={first['next_cursor']}", headers=headers)

    assert status == 200
    assert [e["event_id"] for e in first["entries"]] == [f"{user}-2", f"{user}-1"]
    assert [e["event_id"] for e in second["entries"]] == [f"{user}-0"]
    oldest = second["entries"][0]
    assert oldest["properties"] == {"minutes": 20, "kind": "run"}
    assert {(f["type"], f.get("rule"), f.get("badge")) for f in oldest["facts"]} >= {
        ("points_awarded", "workout-xp", None),
        ("badge_awarded", None, "first-workout"),
    }
    assert second["next_cursor"] is None  # the last page says so: no cursor to an empty page
    _, exactly = http("GET", f"{stack.api_url}/v1/me/history?limit=3", headers=headers)
    assert len(exactly["entries"]) == 3 and exactly["next_cursor"] is None


def test_a_cursor_that_is_not_ours_is_a_clear_400(stack, user):
    headers = {"authorization": f"Bearer {tokens.mint(user)}"}
    opened = [
        {"id": f"{user}-x{n}", "type": "app_opened", "occurred_at": datetime.now(UTC).isoformat()} for n in (1, 2)
    ]
    http("POST", f"{stack.api_url}/v1/events", {"events": opened},
         {"authorization": f"Bearer {tokens.mint('someone-else')}"})  # fmt: skip
    _, theirs = http("GET", f"{stack.api_url}/v1/me/history?limit=1",
                     headers={"authorization": f"Bearer {tokens.mint('someone-else')}"})  # fmt: skip

    garbage = http("GET", f"{stack.api_url}/v1/me/history?cursor=not-a-cursor", headers=headers)
    empty_key = http("GET", f"{stack.api_url}/v1/me/history?cursor={encode_cursor({})}", headers=headers)
    crafted = encode_cursor({"user_id": {"S": user}, "sk": {"S": "evt#client#x"}})  # no ts: DynamoDB would refuse it
    half_key = http("GET", f"{stack.api_url}/v1/me/history?cursor={crafted}", headers=headers)
    stolen = http("GET", f"{stack.api_url}/v1/me/history?cursor={theirs['next_cursor']}", headers=headers)
    too_many = http("GET", f"{stack.api_url}/v1/me/history?limit=1000", headers=headers)
    twice = http("GET", f"{stack.api_url}/v1/me/history?limit=5&limit=10", headers=headers)  # AWS passes "5,10"
    nested = http("GET", f"{stack.api_url}/v1/me/history?cursor={_nested()}", headers=headers)

    assert garbage[0] == 400 and "cursor" in garbage[1]["message"]
    assert empty_key[0] == 400 and "not valid" in empty_key[1]["message"]  # malformed, not "another listing"
    assert stolen[0] == 400 and "another listing" in stolen[1]["message"]
    assert half_key[0] == 400  # refused before DynamoDB could answer with a ValidationException (a 500)
    assert theirs["next_cursor"] and stolen[0] == 400
    assert too_many[0] == 422 and too_many[1]["message"].startswith("the query string is not valid: query.limit")
    assert twice[0] == 422
    assert nested[0] == 400  # JSON too deep to parse: a RecursionError was a 500


def _nested() -> str:
    import base64

    return base64.urlsafe_b64encode(b"[" * 1500).decode().rstrip("=")

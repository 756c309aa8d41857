"""The README's request and response examples are real: sent through the local stack, same shapes back."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from engage.local import tokens
from engage.local.demo import http
from engage.local.server import SERVER_KEY_HEADER

from ..conftest import REPO

_BLOCKS = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", (REPO / "README.md").read_text(), re.S)]
EVENTS_REQUEST, EVENTS_RESPONSE, SERVER_REQUEST, ME_RESPONSE = _BLOCKS


def _fresh(events: list[dict], prefix: str) -> list[dict]:
    moment = datetime.now(UTC) - timedelta(minutes=1)
    return [{**e, "id": f"{prefix}-{e['id']}", "occurred_at": moment.isoformat()} for e in events]


def _same_shape(actual, example) -> None:
    """Same keys at every level of the documented example (values differ: the example is one story)."""
    if isinstance(example, dict):
        assert set(actual) == set(example), f"{sorted(actual)} != {sorted(example)}"
        for key, value in example.items():
            _same_shape(actual[key], value)
    elif isinstance(example, list) and example and isinstance(example[0], dict):
        # Which facts and badges appear varies with the day the test runs; their shape is the promise.
        assert actual, f"expected entries like {example[0]}"
        if "type" in example[0]:
            assert all({"type", "event_id"} <= set(fact) for fact in actual)
        else:
            _same_shape(actual[0], example[0])


def test_readme_events_example_round_trips(stack):
    token = tokens.mint("readme-user", name="Ada Lovelace")
    http("POST", f"{stack.api_url}/v1/events", {"events": _fresh([{"id": "warm", "type": "app_opened",
         "occurred_at": "", "properties": {}}], "readme")}, {"authorization": f"Bearer {token}"})  # fmt: skip
    body = {**EVENTS_REQUEST, "events": _fresh(EVENTS_REQUEST["events"], "readme")}

    status, answer = http("POST", f"{stack.api_url}/v1/events", body, {"authorization": f"Bearer {token}"})

    assert status == 200
    assert [(r["status"], r.get("code")) for r in answer["results"]] == [
        (r["status"], r.get("code")) for r in EVENTS_RESPONSE["results"]
    ]
    _same_shape(
        {k: v for k, v in answer.items() if k != "results"},
        {k: v for k, v in EVENTS_RESPONSE.items() if k != "results"},
    )
    assert set(answer["results"][1]) == set(EVENTS_RESPONSE["results"][1])


def test_readme_server_and_me_examples_round_trip(stack):
    body = {"events": _fresh(SERVER_REQUEST["events"], "readme-server")}
    user = {"authorization": f"Bearer {tokens.mint('user-123')}"}
    workout = _fresh([{"id": "w", "type": "workout_completed", "properties": {"minutes": 40, "kind": "run"}}], "readme")

    status, answer = http("POST", f"{stack.api_url}/v1/server/events", body, {SERVER_KEY_HEADER: stack.server_key})
    posted = http("POST", f"{stack.api_url}/v1/events", {"events": workout}, user)  # XP: a rank on the weekly board
    me_status, me = http("GET", f"{stack.api_url}/v1/me", headers=user)

    assert status == 200 and answer["accepted"] == 1
    assert posted[0] == 200 and posted[1]["accepted"] == 1
    assert me_status == 200
    _same_shape(me, ME_RESPONSE)
    counted = next(badge["value"] for badge in me["badges"] if badge["id"] == "first-workout")
    assert type(counted) is int  # as the README shows it (1, not 1.0): typed SDKs read it as an integer

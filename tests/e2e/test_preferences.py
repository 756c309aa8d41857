"""GET/PUT /v1/me/preferences: stated by the user, validated against the app's config, never lost."""

from __future__ import annotations

from datetime import UTC, datetime

from engage.local import tokens
from engage.local.demo import http


def test_defaults_come_from_the_config_and_changes_are_partial(stack, user):
    headers = {"authorization": f"Bearer {tokens.mint(user)}"}
    url = f"{stack.api_url}/v1/me/preferences"

    _, defaults = http("GET", url, headers=headers)
    status, changed = http("PUT", url, {"categories": {"competition": False}, "weekly_budget": 3,
                                         "timezone": "Asia/Tokyo"}, headers)  # fmt: skip
    _, partial = http("PUT", url, {"quiet_hours": {"start": "22:00", "end": "7:00"}}, headers)

    assert defaults["categories"] == {"progress": True, "reminders": True, "competition": True}
    assert defaults["quiet_hours"] == {"start": "21:30", "end": "08:00"} and defaults["weekly_budget"] == 6
    assert status == 200 and changed["categories"]["competition"] is False and changed["timezone"] == "Asia/Tokyo"
    assert partial["weekly_budget"] == 3 and partial["quiet_hours"] == {
        "start": "22:00",
        "end": "07:00",
    }  # 7:00 as 07:00
    assert partial["categories"]["competition"] is False  # untouched by the second change


def test_preferences_survive_events_and_events_survive_preferences(stack, user):
    headers = {"authorization": f"Bearer {tokens.mint(user)}"}
    http("PUT", f"{stack.api_url}/v1/me/preferences", {"paused_until": "2026-12-24T00:00:00Z"}, headers)
    workout = {"id": f"{user}-w", "type": "workout_completed", "occurred_at": datetime.now(UTC).isoformat(),
               "properties": {"minutes": 30, "kind": "run"}}  # fmt: skip
    http("POST", f"{stack.api_url}/v1/events", {"events": [workout]}, headers)

    _, prefs = http("GET", f"{stack.api_url}/v1/me/preferences", headers=headers)
    _, me = http("GET", f"{stack.api_url}/v1/me", headers=headers)

    assert prefs["paused_until"].startswith("2026-12-24")
    assert me["currencies"]["xp"]["balance"] == 60


def test_wrong_preferences_get_a_clear_error(stack, user):
    headers = {"authorization": f"Bearer {tokens.mint(user)}"}
    url = f"{stack.api_url}/v1/me/preferences"

    unknown = http("PUT", url, {"categories": {"marketing": True}}, headers)
    greedy = http("PUT", url, {"weekly_budget": 99}, headers)
    bad_time = http("PUT", url, {"quiet_hours": {"start": "25:00", "end": "07:00"}}, headers)
    forever = http("PUT", url, {"paused_until": "9999-12-31T23:00:00-05:00"}, headers)  # past 9999 in UTC
    typo = http("PUT", url, {"quiet_hour": {"start": "22:00", "end": "07:00"}}, headers)
    empty = http("PUT", url, {"quiet_hours": {"start": "22:00", "end": "22:00"}}, headers)
    neither = http("PUT", url, {"quiet_hours": True}, headers)

    # The config's refusals look like the models' own: 422, the field and the value in details (before: 400, none)
    assert (unknown[0], unknown[1]["error"]) == (422, "invalid_request")
    assert unknown[1]["details"] == [{"field": "categories.marketing", "value": "marketing", "message":
                                      "not a notification category of this app. Fix: use one of competition, progress, reminders"}]  # fmt: skip
    assert (
        greedy[0] == 422 and greedy[1]["details"][0]["field"] == "weekly_budget" and "cap of 6" in greedy[1]["message"]
    )
    # A wrong window names its own field only, without pydantic's labels (before: also "quiet_hours.literal[False]")
    assert bad_time[0] == 422 and [d["field"] for d in bad_time[1]["details"]] == ["quiet_hours.start"]
    assert empty[0] == 422 and "holds no time" in empty[1]["message"] and "Fix:" in empty[1]["message"]
    assert forever[0] == 422 and "paused_until" in str(forever[1]) and "Fix:" in str(forever[1])
    assert typo[0] == 422 and "quiet_hour: unknown field. Fix: remove it or check its spelling" in typo[1]["message"]
    assert [d["field"] for d in neither[1]["details"]] == ["quiet_hours"]
    assert "is neither a window nor false. Fix:" in neither[1]["details"][0]["message"]
    assert http("GET", url, headers=headers)[1]["paused_until"] is None  # nothing was stored


def test_a_zone_chosen_in_preferences_wins_over_the_devices_context_until_reset(stack, user):
    headers = {"authorization": f"Bearer {tokens.mint(user)}"}
    url = f"{stack.api_url}/v1/me/preferences"
    http("PUT", url, {"timezone": "Asia/Tokyo", "categories": {"competition": False}}, headers)
    event = {"id": f"{user}-o", "type": "app_opened", "occurred_at": datetime.now(UTC).isoformat()}
    http("POST", f"{stack.api_url}/v1/events", {"events": [event], "context": {"timezone": "Europe/Berlin"}}, headers)

    assert http("GET", url, headers=headers)[1]["timezone"] == "Asia/Tokyo"

    _, reset = http("PUT", url, {"timezone": None, "categories": None}, headers)
    again = {**event, "id": f"{user}-o2"}
    http("POST", f"{stack.api_url}/v1/events", {"events": [again], "context": {"timezone": "Europe/Berlin"}}, headers)

    assert reset["categories"]["competition"] is True
    assert http("GET", url, headers=headers)[1]["timezone"] == "Europe/Berlin"


def test_resetting_a_chosen_zone_and_locale_returns_to_the_apps_latest_report_not_utc(stack, user):
    headers = {"authorization": f"Bearer {tokens.mint(user)}"}
    url = f"{stack.api_url}/v1/me/preferences"
    device = {"device_id": "phone", "fid": "c" * 22, "platform": "ios", "timezone": "Europe/Berlin", "locale": "de-DE"}
    http("POST", f"{stack.api_url}/v1/me/devices", device, headers)
    http("PUT", url, {"timezone": "Asia/Tokyo", "locale": "ja"}, headers)
    event = {"id": f"{user}-o", "type": "app_opened", "occurred_at": datetime.now(UTC).isoformat()}
    travelled = {"events": [event], "context": {"timezone": "Europe/Paris"}}  # reported while the choice holds
    http("POST", f"{stack.api_url}/v1/events", travelled, headers)
    assert http("GET", url, headers=headers)[1]["timezone"] == "Asia/Tokyo"

    _, reset = http("PUT", url, {"timezone": None, "locale": None}, headers)

    assert (reset["timezone"], reset["locale"]) == ("Europe/Paris", "de-DE")
    _, me = http("GET", f"{stack.api_url}/v1/me", headers=headers)
    assert (me["timezone"], me["locale"]) == ("Europe/Paris", "de-DE")


def test_an_empty_quiet_window_stored_before_they_were_refused_is_shown_not_a_500(stack, user):
    from dataclasses import replace

    from engage.services.users import change_user

    empty = {"start": "22:00", "end": "22:00"}
    change_user(user, lambda state: replace(state, preferences={"quiet_hours": empty}), datetime.now(UTC))

    status, shown = http(
        "GET", f"{stack.api_url}/v1/me/preferences", headers={"authorization": f"Bearer {tokens.mint(user)}"}
    )

    assert (status, shown["quiet_hours"]) == (200, empty)


def test_a_user_can_turn_quiet_hours_off_and_back_to_the_apps_default(stack, user):
    headers = {"authorization": f"Bearer {tokens.mint(user)}"}
    url = f"{stack.api_url}/v1/me/preferences"

    _, off = http("PUT", url, {"quiet_hours": False}, headers)
    _, shown = http("GET", url, headers=headers)
    _, default = http("PUT", url, {"quiet_hours": None}, headers)

    assert off["quiet_hours"] is False and shown["quiet_hours"] is False
    assert default["quiet_hours"] == {"start": "21:30", "end": "08:00"}

"""POST /v1/me/devices and DELETE /v1/me/devices/{id}: registering, refreshing and forgetting a push device."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime

from engage.local import tokens
from engage.local.demo import http
from engage.store.devices import token_hash
from engage.store.models import DeviceItem

TOKEN = "dGVzdC10b2tlbi0x:APA91b" + "x" * 140  # the shape of an FCM registration token


def test_a_device_is_registered_refreshed_and_removed(stack, user):
    headers = {"authorization": f"Bearer {tokens.mint(user)}"}
    body = {"device_id": "pixel:8", "fcm_token": TOKEN, "platform": "android", "app_version": "2.3.0",
            "locale": "de-DE", "timezone": "Europe/Berlin"}  # fmt: skip

    status, first = http("POST", f"{stack.api_url}/v1/me/devices", body, headers)
    _, again = http("POST", f"{stack.api_url}/v1/me/devices", {**body, "app_version": "2.4.0"}, headers)

    assert status == 200 and first["token_kind"] == "fcm_token"
    item = DeviceItem.get(user, "pixel:8")
    assert item.app_version == "2.4.0" and item.token_hash == token_hash(TOKEN)
    assert again["refreshed_at"] >= first["refreshed_at"]
    assert item.created_at.isoformat().startswith(first["refreshed_at"][:19])  # the first registration is kept

    # as encodeURIComponent("pixel:8") puts it in the path
    request = urllib.request.Request(f"{stack.api_url}/v1/me/devices/pixel%3A8", method="DELETE", headers=headers)
    with urllib.request.urlopen(request) as answer:
        assert answer.status == 204
    assert DeviceItem.count(user) == 0
    with urllib.request.urlopen(request) as answer:  # removing again is fine
        assert answer.status == 204


def test_a_device_needs_exactly_one_address_and_a_known_platform(stack, user):
    headers = {"authorization": f"Bearer {tokens.mint(user)}"}
    url = f"{stack.api_url}/v1/me/devices"

    neither = http("POST", url, {"device_id": "d", "platform": "android"}, headers)
    both = http("POST", url, {"device_id": "d", "platform": "ios", "fcm_token": TOKEN, "fid": "c" * 22}, headers)
    fax = http("POST", url, {"device_id": "d", "platform": "fax", "fid": "c" * 22}, headers)

    misspelled = http("POST", url, {"device_id": "d", "platform": "android", "fcmToken": TOKEN}, headers)
    assert neither[0] == both[0] == fax[0] == misspelled[0] == 422
    assert TOKEN not in json.dumps(misspelled[1])  # a token under an unknown name is not echoed either
    assert "fcm_token or fid" in neither[1]["message"]
    assert http("POST", url, {"device_id": "d", "platform": "ios", "fid": "c" * 22}, headers)[1]["token_kind"] == "fid"


def test_a_token_moves_with_the_phone_to_the_account_that_registers_it(stack, user):
    other = f"{user}-partner"
    body = {"device_id": "shared-ipad", "fcm_token": TOKEN.replace("x", "y"), "platform": "ios"}
    http("POST", f"{stack.api_url}/v1/me/devices", body, {"authorization": f"Bearer {tokens.mint(other)}"})

    http("POST", f"{stack.api_url}/v1/me/devices", body, {"authorization": f"Bearer {tokens.mint(user)}"})

    assert DeviceItem.count(other) == 0 and DeviceItem.count(user) == 1


def test_bad_device_input_never_echoes_the_token_and_bad_ids_are_4xx(stack, user):
    headers = {"authorization": f"Bearer {tokens.mint(user)}"}
    status, answer = http("POST", f"{stack.api_url}/v1/me/devices",
                          {"device_id": "d", "platform": "ios", "fcm_token": TOKEN, "fid": "c" * 22}, headers)  # fmt: skip
    request = urllib.request.Request(f"{stack.api_url}/v1/me/devices/{'x' * 2000}", method="DELETE", headers=headers)
    try:
        urllib.request.urlopen(request)
        deleted = 204
    except urllib.error.HTTPError as error:
        deleted = error.code

    assert status == 422 and TOKEN not in str(answer)
    assert deleted == 400


def test_the_devices_zone_and_locale_become_the_users_unless_the_user_chose_their_own(stack, user):
    # An app that sends no context with its events: quiet hours and texts used to stay on the config's defaults
    headers = {"authorization": f"Bearer {tokens.mint(user)}"}
    preferences = f"{stack.api_url}/v1/me/preferences"
    body = {"device_id": "iphone", "fid": "c" * 22, "platform": "ios", "locale": "ja-JP", "timezone": "Asia/Tokyo"}

    http("POST", f"{stack.api_url}/v1/me/devices", body, headers)  # before the user's first event

    _, chosen = http("GET", preferences, headers=headers)
    assert (chosen["timezone"], chosen["locale"]) == ("Asia/Tokyo", "ja-JP")

    # The latest report wins, from a device or from the context of events, as the user travels
    event = {"id": f"{user}-1", "type": "app_opened", "occurred_at": datetime.now(UTC).isoformat()}
    http("POST", f"{stack.api_url}/v1/events", {"events": [event], "context": {"timezone": "Europe/Berlin"}}, headers)
    assert http("GET", preferences, headers=headers)[1]["timezone"] == "Europe/Berlin"
    http("POST", f"{stack.api_url}/v1/me/devices", body, headers)
    assert http("GET", preferences, headers=headers)[1]["timezone"] == "Asia/Tokyo"

    # A zone the user chose stays, whatever the devices report
    http("PUT", preferences, {"timezone": "America/New_York"}, headers)
    http("POST", f"{stack.api_url}/v1/me/devices", {**body, "timezone": "Europe/Paris"}, headers)
    _, kept = http("GET", preferences, headers=headers)
    assert (kept["timezone"], kept["locale"]) == ("America/New_York", "ja-JP")


def test_a_device_is_registered_even_when_its_zone_cannot_reach_the_profile(stack, user, monkeypatch, caplog):
    from engage.api.models import DeviceIn
    from engage.services import devices, users
    from engage.services.errors import Busy

    def always_busy(*args, **kwargs):
        raise Busy("too many concurrent writes for this user; retry the request")

    monkeypatch.setattr(users, "commit", always_busy)
    device = DeviceIn(device_id="pixel", fid="c" * 22, platform="android", timezone="Asia/Tokyo")

    registered = devices.register_device({"sub": user}, device)

    assert registered.device_id == "pixel" and DeviceItem.get(user, "pixel").timezone == "Asia/Tokyo"
    assert "could not keep the device's zone and locale" in caplog.text

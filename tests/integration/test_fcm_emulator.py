"""The FCM v1 emulator, driven through the real firebase-admin SDK (and raw HTTP where the SDK would refuse
to send the mistake). No DynamoDB Local: plain fixtures only."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import firebase_admin
import pytest
import requests.adapters
from firebase_admin import exceptions, messaging

from engage.local.fcm_emulator import FcmEmulator, fcm_app

# firebase-admin 7.x deprecates Message.token in favour of fid; FCM still accepts both, and so do we.
pytestmark = pytest.mark.filterwarnings("ignore:Message.token is deprecated:DeprecationWarning")

PROJECT = "engage-local"


@pytest.fixture
def _stack() -> None:
    """Overrides the integration conftest's autouse DynamoDB Local fixture: the emulator needs none."""


@pytest.fixture(scope="module")
def emulator() -> Iterator[FcmEmulator]:
    running = FcmEmulator()
    running.start()
    yield running
    running.stop()


@pytest.fixture
def fcm(emulator: FcmEmulator) -> Iterator[FcmEmulator]:
    emulator.reset()
    yield emulator
    emulator.reset()


@pytest.fixture
def app(fcm: FcmEmulator) -> Iterator[firebase_admin.App]:
    created = fcm_app(fcm.base_url, PROJECT)
    yield created
    # After send_each_async, its httpx client is bound to a loop asyncio.run() already closed (see below).
    with contextlib.suppress(RuntimeError):
        firebase_admin.delete_app(created)


def _post(url: str, body: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    """A raw send, for payloads the SDK would coerce or refuse before sending."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


def _violations(body: dict[str, Any]) -> list[dict[str, str]]:
    for detail in body["error"]["details"]:
        if detail["@type"] == "type.googleapis.com/google.rpc.BadRequest":
            return list(detail["fieldViolations"])
    return []


def _assert_invalid_argument(status: int, body: dict[str, Any]) -> None:
    assert status == 400
    assert body["error"]["code"] == 400
    assert body["error"]["status"] == "INVALID_ARGUMENT"
    assert body["error"]["details"][0] == {
        "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
        "errorCode": "INVALID_ARGUMENT",
    }


def _without_sdk_retries(app: firebase_admin.App) -> None:
    """The sync SDK retries 500/503, and 429 with Retry-After, up to 4 times with backoff (urllib3 Retry
    mounted on http:// too). To measure what the emulator answers per call — and keep the test fast —
    mount a retry-less adapter on the messaging service's session."""
    session = messaging._get_messaging_service(app)._client.session
    session.mount("http://", requests.adapters.HTTPAdapter(max_retries=0, pool_maxsize=50))


def _full_message(token: str) -> messaging.Message:
    return messaging.Message(
        token=token,
        notification=messaging.Notification(title="Streak at risk", body="Log a workout before midnight"),
        data={"kind": "streak_at_risk", "streak": "12"},
        android=messaging.AndroidConfig(
            priority="high",
            ttl=datetime.timedelta(seconds=3.5),
            collapse_key="streak",
            notification=messaging.AndroidNotification(tag="streak"),
        ),
        apns=messaging.APNSConfig(
            headers={"apns-collapse-id": "streak", "apns-priority": "10"},
            payload=messaging.APNSPayload(aps=messaging.Aps(badge=1, sound="default")),
        ),
        fcm_options=messaging.FCMOptions(analytics_label="streak_at_risk"),
    )


def test_full_message_is_accepted_and_recorded(fcm: FcmEmulator, app: firebase_admin.App) -> None:
    name = messaging.send(_full_message("tok-a"), app=app)

    assert name.startswith(f"projects/{PROJECT}/messages/")
    [record] = fcm.received_by("tok-a")
    assert record["name"] == name and record["project"] == PROJECT
    assert record["http_version"] == "HTTP/1.1"
    message = record["message"]
    assert message["data"] == {"kind": "streak_at_risk", "streak": "12"}
    assert message["android"]["ttl"] == "3.500000000s"
    assert message["android"]["notification"]["tag"] == "streak"
    assert message["apns"]["headers"]["apns-collapse-id"] == "streak"
    assert message["apns"]["payload"]["aps"]["badge"] == 1
    assert message["fcm_options"]["analytics_label"] == "streak_at_risk"
    assert abs(record["time"] - time.time()) < 5
    assert fcm.sent == [record]


def test_validate_only_validates_without_recording(fcm: FcmEmulator, app: firebase_admin.App) -> None:
    name = messaging.send(_full_message("tok-a"), dry_run=True, app=app)
    assert name.startswith(f"projects/{PROJECT}/messages/")
    assert fcm.sent == []
    fcm.unregister("tok-gone")
    with pytest.raises(messaging.UnregisteredError):  # FCM checks the token on dry runs too
        messaging.send(messaging.Message(token="tok-gone"), dry_run=True, app=app)


def test_fid_is_a_target_like_a_token(fcm: FcmEmulator, app: firebase_admin.App) -> None:
    messaging.send(messaging.Message(fid="fid-1", data={"a": "b"}), app=app)
    assert [r["message"]["fid"] for r in fcm.received_by("fid-1")] == ["fid-1"]


def test_send_each_reports_unregistered_per_message(fcm: FcmEmulator, app: firebase_admin.App) -> None:
    fcm.unregister("tok-uninstalled")
    batch = messaging.send_each(
        [_full_message("tok-a"), messaging.Message(token="tok-uninstalled", data={"x": "1"}), _full_message("tok-b")],
        app=app,
    )

    assert (batch.success_count, batch.failure_count) == (2, 1)
    ok_a, gone, ok_b = batch.responses
    assert ok_a.success and ok_b.success
    assert isinstance(gone.exception, messaging.UnregisteredError)
    assert gone.exception.http_response.status_code == 404
    assert gone.exception.http_response.json()["error"]["status"] == "NOT_FOUND"
    assert fcm.received_by("tok-uninstalled") == []
    assert {r["message"]["token"] for r in fcm.sent} == {"tok-a", "tok-b"}


def test_malformed_token_is_invalid_argument(app: firebase_admin.App) -> None:
    with pytest.raises(exceptions.InvalidArgumentError, match="not a valid FCM registration token"):
        messaging.send(messaging.Message(token="invalid-token-1"), app=app)


def test_non_string_data_value_is_rejected_with_field_violation(fcm: FcmEmulator) -> None:
    status, body, _ = _post(fcm.send_url(PROJECT), {"message": {"token": "t", "data": {"a": "1", "b": 2}}})

    _assert_invalid_argument(status, body)
    [violation] = _violations(body)
    assert violation["field"] == "message.data[1].value"
    assert "TYPE_STRING" in violation["description"]
    assert fcm.sent == []


def test_unknown_field_is_rejected(fcm: FcmEmulator) -> None:
    status, body, _ = _post(fcm.send_url(PROJECT), {"message": {"token": "t", "android": {"priorty": "HIGH"}}})

    _assert_invalid_argument(status, body)
    [violation] = _violations(body)
    assert violation["field"] == "message.android"
    assert 'Unknown name "priorty"' in violation["description"]


def test_payload_over_4096_bytes_is_rejected(fcm: FcmEmulator, app: firebase_admin.App) -> None:
    messaging.send(messaging.Message(token="t", data={"blob": "x" * 4000}), app=app)  # under the limit
    with pytest.raises(exceptions.InvalidArgumentError, match="too big"):
        messaging.send(messaging.Message(token="t", data={"blob": "x" * 4100}), app=app)
    assert len(fcm.sent) == 1


def test_bad_analytics_label_is_rejected(fcm: FcmEmulator) -> None:
    # The SDK checks labels itself, so send raw to prove the emulator does too.
    for label in ("has space", "x" * 51, ""):
        status, body, _ = _post(
            fcm.send_url(PROJECT), {"message": {"token": "t", "fcm_options": {"analytics_label": label}}}
        )
        _assert_invalid_argument(status, body)
        assert _violations(body)[0]["field"] == "message.fcm_options.analytics_label"


def test_ttl_over_28_days_is_rejected(app: firebase_admin.App) -> None:
    messaging.send(messaging.Message(token="t", android=messaging.AndroidConfig(ttl=2419200)), app=app)
    with pytest.raises(exceptions.InvalidArgumentError, match="TTL"):
        messaging.send(messaging.Message(token="t", android=messaging.AndroidConfig(ttl=2419201)), app=app)


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"token": "t", "android": {"priority": "URGENT"}}, "message.android.priority"),
        ({"token": "t", "android": {"direct_boot_ok": "yes"}}, "message.android.direct_boot_ok"),
        ({"token": "t", "android": {"ttl": "3 days"}}, "message.android.ttl"),
        ({"token": "t", "android": {"notification": {"notification_count": "many"}}}, None),
        ({"token": "t", "apns": {"headers": {"apns-priority": 10}}}, "message.apns.headers[0].value"),
        ({"token": "t", "notification": ["title"]}, "message.notification"),
        ({"token": "t", "topic": "news"}, "message"),
        ({"data": {"a": "b"}}, "message"),
        ({"token": "t", "data": {"from": "x"}}, "message.data[0].key"),
        ({"topic": "news/sport"}, "message.topic"),
        ({"token": "t", "android": {}, "android_v2": {}}, "message"),
    ],
)
def test_schema_and_limit_violations(fcm: FcmEmulator, message: dict[str, Any], field: str | None) -> None:
    status, body, _ = _post(fcm.send_url(PROJECT), {"message": message})
    _assert_invalid_argument(status, body)
    if field is not None:
        assert [v["field"] for v in _violations(body)] == [field]


@pytest.mark.parametrize(
    "message",
    [
        {"token": "t", "android": {"collapseKey": "c", "priority": "NORMAL", "ttl": "0s"}},  # lowerCamel names
        {"token": "t", "android": {"notification": {"notification_count": "3", "event_time": "2026-01-01T00:00:00Z"}}},
        {"token": "t", "notification": None, "android": {"priority": 1}},  # null = unset; enum by number
        {"condition": "'a' in topics && 'b' in topics", "webpush": {"notification": {"actions": [{"a": 1}]}}},
    ],
)
def test_proto3_json_forms_are_accepted(fcm: FcmEmulator, message: dict[str, Any]) -> None:
    status, body, _ = _post(fcm.send_url(PROJECT), {"message": message, "validateOnly": True})
    assert status == 200, body
    assert body["name"].startswith(f"projects/{PROJECT}/messages/")


def test_request_level_errors(fcm: FcmEmulator) -> None:
    status, body, _ = _post(fcm.send_url(PROJECT), {"message": {"token": "t"}, "validate_only": "yes"})
    _assert_invalid_argument(status, body)
    status, body, _ = _post(fcm.send_url(PROJECT), {})
    _assert_invalid_argument(status, body)
    status, body, _ = _post(f"{fcm.base_url}/v1/projects/{PROJECT}/messages:batchSend", {"message": {}})
    assert status == 404 and body["error"]["status"] == "NOT_FOUND"


def test_fail_share_over_200_sends(fcm: FcmEmulator, app: firebase_admin.App) -> None:
    _without_sdk_retries(app)
    fcm.fail_share(0.3, seed=7)
    errors: list[exceptions.FirebaseError] = []
    for start in range(0, 200, 50):  # send_each starts one thread per message: 50 at a time is plenty
        batch = messaging.send_each([messaging.Message(token=f"tok-{i}") for i in range(start, start + 50)], app=app)
        errors += [r.exception for r in batch.responses if r.exception is not None]

    assert fcm.attempts == 200
    assert 0.15 * 200 <= len(errors) <= 0.45 * 200
    assert len(errors) == len(fcm.injected)
    kinds = Counter(type(e) for e in errors)
    assert set(kinds) == {exceptions.UnavailableError, messaging.QuotaExceededError}
    for error in errors:
        payload = error.http_response.json()["error"]
        if isinstance(error, messaging.QuotaExceededError):
            assert error.http_response.status_code == 429 and payload["status"] == "RESOURCE_EXHAUSTED"
            assert error.http_response.headers["Retry-After"] == "1"
        else:
            assert error.http_response.status_code == 503 and payload["status"] == "UNAVAILABLE"
    assert len(fcm.sent) == 200 - len(errors)


def test_sdk_retries_503_by_itself(fcm: FcmEmulator, app: firebase_admin.App) -> None:
    # With its default retry config the SDK absorbs a 503 (first retry has no backoff; no Retry-After here).
    fcm.fail_next(1, 503, retry_after=None)
    messaging.send(messaging.Message(token="t"), app=app)
    assert (fcm.attempts, fcm.injected, len(fcm.sent)) == (2, [503], 1)


def test_send_each_async(fcm: FcmEmulator, app: firebase_admin.App) -> None:
    fcm.unregister("tok-gone")

    async def run() -> tuple[messaging.BatchResponse, messaging.BatchResponse]:
        first = await messaging.send_each_async(
            [_full_message("tok-a"), messaging.Message(token="tok-gone")], dry_run=False, app=app
        )
        fcm.fail_next(1, 429)  # the async path does not retry 429: the caller sees it, with Retry-After
        second = await messaging.send_each_async([_full_message("tok-b")], dry_run=False, app=app)
        return first, second

    first, second = asyncio.run(run())

    ok, gone = first.responses
    assert ok.success and isinstance(gone.exception, messaging.UnregisteredError)
    [throttled] = second.responses
    assert isinstance(throttled.exception, messaging.QuotaExceededError)
    assert throttled.exception.http_response.headers["Retry-After"] == "1"
    # httpx is created with http2=True, but HTTP/2 is only negotiated over TLS: plain http:// is HTTP/1.1.
    assert [(r["message"]["token"], r["http_version"]) for r in fcm.sent] == [("tok-a", "HTTP/1.1")]


def test_send_each_async_client_is_bound_to_its_first_event_loop(app: firebase_admin.App) -> None:
    # firebase-admin keeps one httpx client per app; a second asyncio.run() cannot reuse its pooled
    # connections. A warm Lambda must keep one event loop (or one app per loop) — pinned here as a reminder.
    messages = [messaging.Message(token="t")]
    assert asyncio.run(messaging.send_each_async(messages, app=app)).success_count == 1
    with pytest.raises(exceptions.UnknownError, match="loop"):
        asyncio.run(messaging.send_each_async(messages, app=app))


def test_emulator_listens_on_loopback_only_and_stops() -> None:
    emulator = FcmEmulator()
    url = emulator.start()
    assert url.startswith("http://127.0.0.1:")
    assert emulator.start() == url  # idempotent
    emulator.stop()
    emulator.stop()
    with pytest.raises(RuntimeError):
        _ = emulator.base_url


def test_a_connection_left_mid_request_does_not_hold_stop() -> None:
    import socket

    # Given a client that sent half a request and went quiet
    others = _emulator_threads()  # e.g. a local stack's
    emulator = FcmEmulator()
    port = int(emulator.start().rsplit(":", 1)[1])
    half = socket.create_connection(("127.0.0.1", port))
    half.sendall(b"POST /v1/projects/p/messages:send HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    time.sleep(0.2)
    try:
        # When the emulator stops, it stops: no error, and its thread is gone
        emulator.stop()
        assert _emulator_threads() == others
    finally:
        half.close()


def test_a_port_in_use_is_refused_without_leaving_a_thread_behind() -> None:
    with FcmEmulator() as first:
        port = int(first.base_url.rsplit(":", 1)[1])
        running = _emulator_threads()
        with pytest.raises(OSError):
            FcmEmulator().start(port)
        assert _emulator_threads() == running


def _emulator_threads() -> set[int]:
    import threading

    return {id(thread) for thread in threading.enumerate() if thread.name == "fcm-emulator"}

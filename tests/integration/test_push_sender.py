"""The FCM sender against the FCM emulator, through firebase-admin: schema-valid messages, and what each
FCM answer means (sent, retry with Retry-After, drop the device, dead-letter)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import aiohttp
import firebase_admin
import pytest
from firebase_admin import messaging

from engage.local.fcm_emulator import FcmEmulator, emulator_credential, fcm_app, point_app_at
from engage.push.firebase import close_connections, run, send_over_aiohttp
from engage.push.sender import Push, build_message, send_batch

pytestmark = pytest.mark.filterwarnings("ignore:Message.token is deprecated:DeprecationWarning")
NOW = datetime.now(UTC)
TOKEN = "dGVzdC10b2tlbi0x:APA91b" + "x" * 140


@pytest.fixture
def _stack() -> None:
    """No DynamoDB Local needed here (overrides the integration conftest's autouse fixture)."""


@pytest.fixture
def fcm() -> Iterator[FcmEmulator]:
    emulator = FcmEmulator()
    emulator.start()
    yield emulator
    emulator.stop()


@contextlib.contextmanager
def deliver_app(base_url: str, timeout: float | None = None) -> Iterator[firebase_admin.App]:
    """An App sending as the deliver function's does (over aiohttp, on the process's one event loop)."""
    created = fcm_app(base_url)
    if timeout is not None:
        created = firebase_admin.initialize_app(emulator_credential(), {"projectId": "engage-local",
                                                "httpTimeout": timeout}, name=f"{created.name}-t")  # fmt: skip
        point_app_at(created, base_url)
    send_over_aiohttp(created)
    try:
        yield created
    finally:
        run(close_connections(created))
        firebase_admin.delete_app(created)


@pytest.fixture
def app(fcm: FcmEmulator) -> Iterator[firebase_admin.App]:
    with deliver_app(fcm.base_url) as created:
        yield created


def push(n: int, token: str = TOKEN, valid_for: timedelta = timedelta(hours=2)) -> Push:
    return Push(
        message_id=f"01JDA9X1Z5K3W8N4P6Q7R2S3T{n}", token=token, title="New badge: First Step",
        body="Nice work, Ada!", trigger_id="badge-earned", valid_until=NOW + valid_for,
        deep_link="fitquest://badges/first-workout",
        actions=[{"id": "open", "title": "See it", "deep_link": "fitquest://badges"}], collapse_key="badges",
    )  # fmt: skip


def test_a_push_goes_out_schema_valid_with_its_id_as_tag_and_collapse_id(fcm, app):
    results = run(send_batch(app, [push(1)], NOW))

    assert [r.outcome for r in results] == ["sent"] and results[0].fcm_name
    sent = fcm.received_by(TOKEN)[0]["message"]
    assert sent["android"]["notification"]["tag"] == push(1).message_id
    assert sent["apns"]["headers"]["apns-collapse-id"] == push(1).message_id
    assert sent["data"]["deep_link"] == "fitquest://badges/first-workout"
    assert sent["fcm_options"]["analytics_label"] == "badge-earned"


def test_the_ttl_is_what_remains_of_the_messages_validity():
    message = build_message(push(1, valid_for=timedelta(minutes=30)), NOW)
    assert message.android.ttl == timedelta(minutes=30)
    assert message.apns.headers["apns-expiration"] == str(int((NOW + timedelta(minutes=30)).timestamp()))


def test_each_fcm_answer_maps_to_what_to_do_with_the_message(fcm, app):
    fcm.unregister("gone-token")
    batch = [push(1), push(2, token="gone-token"), push(3, token="invalid-token"),
             push(4, valid_for=timedelta(seconds=-1))]  # fmt: skip

    outcomes = [r.outcome for r in run(send_batch(app, batch, NOW))]

    assert outcomes == ["sent", "drop_device", "drop_device", "expired"]
    assert len(fcm.sent) == 1


def test_quota_exceeded_is_retried_later_after_the_time_fcm_asks(fcm, app):
    fcm.fail_next(1, status=429, retry_after=7)

    result = run(send_batch(app, [push(1)], NOW))[0]

    assert (result.outcome, result.retry_after) == ("retry", 7.0)
    assert fcm.sent == []


def test_a_message_fcm_refuses_is_dead_lettered(fcm, app):
    too_long = Push(**{**push(1).__dict__, "body": "x" * 5000})  # over FCM's 4096-byte payload

    result = run(send_batch(app, [too_long], NOW))[0]

    assert result.outcome == "dead_letter" and fcm.sent == []


def test_fcm_unavailable_beyond_the_sdks_own_retries_is_retried_later(fcm, app):
    fcm.fail_next(5, status=503)  # the first try and the SDK's 4 retries

    result = run(send_batch(app, [push(2)], NOW))[0]

    assert result.outcome == "retry" and fcm.sent == []


def test_pushes_go_over_aiohttp_under_firebase_admins_auth_and_retries(fcm, app):
    results = run(send_batch(app, [push(n) for n in range(1, 6)], NOW))

    assert [r.outcome for r in results] == ["sent"] * 5
    transports = {m._wrapped_transport for m in messaging._get_messaging_service(app)._async_client._mounts.values()}
    (transport,) = transports  # one pool for http:// and https://, under firebase-admin's retrying transport
    assert isinstance(transport.client, aiohttp.ClientSession)  # created by the first send: aiohttp carried it


def test_an_unreachable_fcm_is_retried_later():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens here once the socket closes
    with deliver_app(f"http://127.0.0.1:{port}") as app:
        result = run(send_batch(app, [push(1)], NOW))[0]
    assert result.outcome == "retry"


def test_an_fcm_that_never_answers_times_out_and_is_retried_later():
    silent = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    accepting = threading.Thread(target=lambda: held.append(silent.accept()[0]), daemon=True)
    accepting.start()
    try:
        with deliver_app(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.5) as app:
            started = time.monotonic()
            result = run(send_batch(app, [push(1)], NOW))[0]
        assert result.outcome == "retry" and time.monotonic() - started < 5
    finally:
        for connection in held:
            connection.close()
        silent.close()


def test_a_firebase_admin_without_the_transport_seam_is_refused_loudly():
    from engage.push.firebase import _retry_transports

    with pytest.raises(RuntimeError, match=r"re-check engage\.push\.firebase\.send_over_aiohttp"):
        _retry_transports(object())

"""The FCM sender against the FCM emulator, through firebase-admin: schema-valid messages, and what each
FCM answer means (sent, retry with Retry-After, drop the device, dead-letter)."""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import aiohttp
import firebase_admin
import pytest
from firebase_admin import messaging

from engage.local.fcm_emulator import FcmEmulator, emulator_credential, fcm_app, point_app_at
from engage.push.firebase import close_connections, run, tune_for_throughput
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
    tune_for_throughput(created)
    try:
        yield created
    finally:
        run(close_connections(created))
        firebase_admin.delete_app(created)


@pytest.fixture
def app(fcm: FcmEmulator) -> Iterator[firebase_admin.App]:
    with deliver_app(fcm.base_url) as created:
        yield created


def _mounts(app: firebase_admin.App) -> list:
    """firebase-admin's retrying transports under the app's async client."""
    return list(messaging._get_messaging_service(app)._async_client._mounts.values())


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
    assert "webpush" not in sent  # a phone's push carries no Web Push options
    assert sent["data"]["deep_link"] == "fitquest://badges/first-workout"
    assert sent["fcm_options"]["analytics_label"] == "badge-earned"


def test_the_ttl_is_what_remains_of_the_messages_validity():
    message = build_message(push(1, valid_for=timedelta(minutes=30)), NOW)
    assert message.android.ttl == timedelta(minutes=30)
    assert message.apns.headers["apns-expiration"] == str(int((NOW + timedelta(minutes=30)).timestamp()))
    to_browser = build_message(replace(push(1, valid_for=timedelta(minutes=30)), web=True), NOW)
    assert to_browser.webpush.headers["TTL"] == "1800"  # a browser offline past the validity never shows it
    assert to_browser.webpush.notification.tag == push(1).message_id  # and shows a resend once


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


def test_a_sender_mismatch_is_dead_lettered_and_keeps_the_device(fcm, app):
    # SENDER_ID_MISMATCH: the stage's credentials are another Firebase project's. Before, every push deleted its
    # device, so one wrong secret wiped users' devices without an alarm
    fcm.fail_next(1, status=403)

    result = run(send_batch(app, [push(1)], NOW))[0]

    assert result.outcome == "dead_letter" and "SenderId mismatch" in result.detail
    assert fcm.sent == []


def test_fcm_unavailable_beyond_the_sdks_own_retries_is_retried_later(fcm, app):
    fcm.fail_next(5, status=503)  # the first try and the SDK's 4 retries

    result = run(send_batch(app, [push(2)], NOW))[0]

    assert result.outcome == "retry" and fcm.sent == []


def test_pushes_go_over_aiohttp_under_firebase_admins_auth_and_retries(fcm, app):
    results = run(send_batch(app, [push(n) for n in range(1, 6)], NOW))

    assert [r.outcome for r in results] == ["sent"] * 5
    transports = {m._wrapped_transport for m in _mounts(app)}
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

    with pytest.raises(RuntimeError, match=r"re-check engage\.push\.firebase\.tune_for_throughput"):
        _retry_transports(object())


def test_a_firebase_admin_whose_auth_flow_moved_is_refused_loudly(fcm, monkeypatch):
    from firebase_admin import _http_client

    monkeypatch.setattr(_http_client, "google_auth_requests", object())
    with (
        pytest.raises(RuntimeError, match=r"no google-auth requests transport in its auth flow"),
        deliver_app(fcm.base_url),
    ):
        pass


def test_one_google_auth_request_serves_every_call_and_a_401_still_refreshes_the_token(fcm):
    from firebase_admin import credentials
    from google.auth.credentials import AnonymousCredentials

    used: list[object] = []
    refreshed: list[object] = []

    class Recording(AnonymousCredentials):
        def before_request(self, request, method, url, headers):
            used.append(request)

        def refresh(self, request):
            refreshed.append(request)

    class Credential(credentials.Base):
        def get_credential(self):
            return Recording()

    app = firebase_admin.initialize_app(Credential(), {"projectId": "engage-local"}, name="recording-auth")
    point_app_at(app, fcm.base_url)
    tune_for_throughput(app)
    try:
        run(send_batch(app, [push(1), push(2)], NOW))
        fcm.fail_next(1, status=401)
        results = run(send_batch(app, [push(3)], NOW))
    finally:
        run(close_connections(app))
        firebase_admin.delete_app(app)

    assert [r.outcome for r in results] == ["sent"] and len(fcm.sent) == 3
    assert len(used) == 4 and len({id(request) for request in used}) == 1  # not a new requests.Session per call
    assert refreshed == [used[0]]


def test_the_token_refresh_gets_a_new_google_auth_request_each_time():
    """A refresh comes about hourly: a pooled connection would often have died meanwhile (google-auth does not
    retry), so the shared stand-in builds the real request, and its session, only when it is called."""
    from engage.push.firebase import _OneAuthRequest

    built: list[object] = []

    class Module:
        class Request:
            def __init__(self):
                built.append(self)

            def __call__(self, **kwargs):
                return kwargs["url"]

    stand_in = _OneAuthRequest(Module)
    per_call = [stand_in.Request() for _ in range(3)]

    assert built == [] and len({id(request) for request in per_call}) == 1
    assert [per_call[0](url="https://oauth2.googleapis.com/token") for _ in range(2)] == [
        "https://oauth2.googleapis.com/token"
    ] * 2
    assert len(built) == 2 and built[0] is not built[1]


def test_each_call_retries_with_fresh_settings_and_leaves_the_apps_own_untouched(fcm, app):
    mounts = _mounts(app)
    fcm.fail_next(2, status=503)

    result = run(send_batch(app, [push(1)], NOW))[0]

    assert result.outcome == "sent" and fcm.attempts == 3  # two retries, then sent
    assert all(m._retry.history == [] and m._retry.retries_left == 4 for m in mounts)
    assert all(m._retry.copy() is not m._retry and m._retry.copy().history is not m._retry.history for m in mounts)


def test_cookies_an_answer_sets_are_neither_kept_nor_sent_back():
    """FCM sets none; the clients keep no jar, so they do not parse every answer for them."""
    requests_seen: list[dict[str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # http.server's name for it
            requests_seen.append(dict(self.headers))
            self.rfile.read(int(self.headers["Content-Length"]))
            body = b'{"name": "projects/engage-local/messages/1"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Set-Cookie", "session=abc; Path=/")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with deliver_app(f"http://localhost:{server.server_address[1]}") as app:
            first = run(send_batch(app, [push(1)], NOW))
            second = run(send_batch(app, [push(2)], NOW))
            jars = [messaging._get_messaging_service(app)._async_client._async_client.cookies.jar,
                    next(iter(_mounts(app)))._wrapped_transport.client.cookie_jar]  # fmt: skip
            kept = [len(jar) for jar in jars]
    finally:
        server.shutdown()
        server.server_close()

    assert [r.outcome for r in first + second] == ["sent", "sent"]
    assert [("Cookie" in headers) for headers in requests_seen] == [False, False]
    assert kept == [0, 0]  # neither httpx's jar nor aiohttp's


def test_the_app_deliver_builds_is_frozen_out_of_garbage_collection_with_the_libraries_under_it(fcm, monkeypatch):
    import gc

    from engage.push import firebase

    # Given deliver pointed at the emulator, in a process whose heap was never frozen
    settings = type("Settings", (), {"fcm_endpoint": fcm.base_url})()
    monkeypatch.setattr(firebase, "get_settings", lambda: settings)
    firebase.close_emulator_app()  # one an earlier test built (the next user builds its own again)
    gc.unfreeze()
    try:
        # When deliver builds its App
        built = firebase.firebase_app()
        # Then it and firebase-admin's objects are out of every collection: a full one no longer walks them
        # while each chunk of 500 pushes triggers collections (an eighth of the send rate, `make bench`)
        service = messaging._get_messaging_service(built)
        collectable = {id(o) for o in gc.get_objects()}
        assert gc.get_freeze_count() > 0
        assert id(service) not in collectable and id(messaging.send_each_async) not in collectable
        [result] = run(send_batch(built, [Push("m-frozen", TOKEN, "t", "b", "badge", NOW + timedelta(hours=1))], NOW))
        assert result.outcome == "sent"  # and it still sends
    finally:
        firebase.close_emulator_app()

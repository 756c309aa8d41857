"""The firebase_admin App the deliver function sends with: FCM with the service account from Secrets Manager,
or the FCM emulator when FCM_ENDPOINT is set (the local stack, tests). Imported only by `deliver`."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from collections.abc import Coroutine
from functools import lru_cache
from typing import Any, TypeVar

from ..settings import get_settings

T = TypeVar("T")
log = logging.getLogger(__name__)

# Seconds firebase-admin waits for FCM per call (its `httpTimeout` option): a stuck call fails and is retried.
HTTP_TIMEOUT = 10
# Connections to FCM per process. HTTP/1.1 carries one request per connection at a time, so this bounds the
# requests in flight: at 20-50 ms to FCM, 100 connections carry 2,000-5,000 requests/s, more than one
# process's CPU prepares (0.4–0.5 ms per push here).
FCM_CONNECTIONS = 100


# The App sending to FCM and the service-account JSON it was built from.
_built: tuple[str, Any] | None = None


def firebase_app() -> Any:
    """The App to send with. For FCM, one per service-account key: when the secret holds a new key (read
    through the hour-long cache below), the App is built again, so a rotated key is in use within the hour
    and a revoked one is not used forever. For the emulator, one per process."""
    global _built
    settings = get_settings()
    if settings.fcm_endpoint:
        return _emulator_app(settings.fcm_endpoint)
    import firebase_admin
    from firebase_admin import credentials

    text = service_account_json(settings.required("fcm_credentials_secret"))
    if _built is None or _built[0] != text:
        try:
            account = json.loads(text)
            if not isinstance(account, dict):  # Certificate would read a string as a file path
                raise ValueError("the FCM secret is not a service-account JSON object")
            certificate = credentials.Certificate(account)
        except (ValueError, TypeError) as exc:
            if _built is None:  # the batch fails, and SQS hands its jobs out again: a fixed secret sends them
                raise ValueError(
                    f"the FCM secret {settings.required('fcm_credentials_secret')} holds no usable service account "
                    f"({exc}). Fix: store the Firebase project's service-account key JSON in it (Firebase console, "
                    "Project settings, Service accounts); jobs wait in DeliveryQueue meanwhile, up to 5 receives"
                ) from exc
            log.error("the FCM secret holds no usable service account; still sending with the previous key")
            return _built[1]
        if _built is not None:
            run(close_connections(_built[1]))  # on the loop they belong to, before firebase-admin's own close
            firebase_admin.delete_app(_built[1])  # frees its name and its HTTP clients
            _built = None
        options = {"httpTimeout": HTTP_TIMEOUT, "projectId": account.get("project_id")}
        _built = (text, ready_to_send(firebase_admin.initialize_app(certificate, options, name="engage-fcm")))
    return _built[1]


# The App sending to the FCM emulator, one per process.
_emulator: Any = None


def _emulator_app(endpoint: str) -> Any:
    global _emulator
    if _emulator is None:
        from ..local.fcm_emulator import fcm_app

        _emulator = ready_to_send(fcm_app(endpoint, name="engage"))
    return _emulator


def ready_to_send(app: Any) -> Any:
    """The app, tuned for throughput (if that fails it is let go, its name freed, so the next call fails the
    same way rather than sending the slow way), with the objects built so far frozen out of garbage collection.

    Why the freeze: firebase-admin and the libraries under it (google-auth, httpx, aiohttp, …) are imported with
    the first App and live as long as the process, like the handler's own imports, which it freezes at cold
    start. Left in the heap, every full collection walked them again, while each chunk of 500 pushes allocates
    enough to trigger collections: that cost about an eighth of the send rate here (`make bench`). An App
    built again for a rotated key freezes what is new since; one App's worth of objects, rarely.
    """
    import firebase_admin

    try:
        tune_for_throughput(app)
    except Exception:
        firebase_admin.delete_app(app)
        raise
    gc.freeze()
    return app


def tune_for_throughput(app: Any) -> None:
    """Cut the CPU each FCM call of this app costs: from about 2 ms of CPU per push here to about 0.4-0.5 ms.
    firebase-admin still builds the messages, authenticates, times out, retries 500/503 and maps the errors.

    - Its calls go over aiohttp (HTTP/1.1, up to FCM_CONNECTIONS connections) instead of firebase-admin's
      httpx transport: httpx's pool spends about 1.4 ms per call on bookkeeping for HTTP/1.1, and its HTTP/2
      framing is pure Python. FCM serves both protocols; firebase-admin's synchronous `send_each` speaks
      HTTP/1.1 as well.
    - Its auth flow no longer builds a google-auth `Request`, with a new `requests.Session`, for every call:
      it serves only the token refresh (about hourly), so one is built only then. This holds for every App
      in the process: firebase-admin looks the `Request` class up in its module.
    - Its retry settings are copied per call without `copy.deepcopy` (they hold numbers and a history list).
    - Neither httpx nor aiohttp keeps a cookie jar: FCM sets no cookies, and the jars parsed every answer.

    The seams are private (firebase-admin is pinned in pyproject.toml): if one moves, this fails loudly
    rather than sending the slow way.
    """
    import httpx
    from firebase_admin import messaging
    from httpx_aiohttp import AiohttpTransport

    service = messaging._get_messaging_service(app)
    mounts = _retry_transports(service)
    client = getattr(service._async_client, "_async_client", None)
    if not isinstance(client, httpx.AsyncClient) or not isinstance(getattr(client, "_cookies", None), httpx.Cookies):
        raise _seam_moved("an httpx client with a cookie jar")
    _share_auth_request()
    tls = httpx.create_ssl_context()  # httpx's TLS settings (certifi's CAs); built once, it takes ~20 ms
    transport = AiohttpTransport(verify=tls, client=lambda: _fcm_session(tls))
    for mount in mounts:
        mount._wrapped_transport = transport  # one connection pool for http:// and https://
        mount._retry = _cheaply_copied(mount._retry)
    client._cookies = _lean_classes()[1]()


def _fcm_session(tls: Any) -> Any:
    """aiohttp's session for FCM calls, built on the event loop at the first call: up to FCM_CONNECTIONS
    connections, kept 5 s when idle, no cookie jar."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=FCM_CONNECTIONS, keepalive_timeout=5, ssl=tls)
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())


def _retry_transports(service: Any) -> list[Any]:
    """firebase-admin's retrying transports under the messaging service's async HTTP client."""
    from firebase_admin._retry import HttpxRetry

    mounts = getattr(getattr(service, "_async_client", None), "_mounts", None)
    if not isinstance(mounts, dict) or not mounts:
        raise _seam_moved("retry transports to put aiohttp under")
    for mount in mounts.values():
        if not hasattr(mount, "_wrapped_transport") or not isinstance(getattr(mount, "_retry", None), HttpxRetry):
            raise _seam_moved("retry transports to put aiohttp under")
    return list(mounts.values())


def _seam_moved(what: str) -> RuntimeError:
    return RuntimeError(
        f"firebase-admin's messaging client has no {what}: re-check "
        "engage.push.firebase.tune_for_throughput for this firebase-admin version"
    )


def _cheaply_copied(retry: Any) -> Any:
    """The same retry settings, copied per call without a deep copy."""
    cheaply_copied, _ = _lean_classes()
    tuned: Any = object.__new__(cheaply_copied)
    tuned.__dict__.update(retry.__dict__)
    return tuned


@lru_cache(maxsize=1)
def _lean_classes() -> tuple[type, type]:
    """firebase-admin's retry settings and httpx's cookie jar without their per-call costs (built on first use:
    only deliver imports firebase-admin and httpx)."""
    import httpx
    from firebase_admin._retry import HttpxRetry

    class CheaplyCopiedRetry(HttpxRetry):
        def copy(self) -> HttpxRetry:
            twin = object.__new__(type(self))
            twin.__dict__.update(self.__dict__)
            twin.history = list(self.history)  # the one field a call changes in place (with retries_left, a number)
            return twin

    class NoCookies(httpx.Cookies):
        def extract_cookies(self, response: httpx.Response) -> None:
            return None

    return CheaplyCopiedRetry, NoCookies


def _share_auth_request() -> None:
    """Stop firebase-admin's async auth flow from building a google-auth Request for every call: it builds one
    (a new requests.Session, about a tenth of a push's CPU) per call, in case the token must be refreshed."""
    from firebase_admin import _http_client
    from google.auth.transport import requests as google_requests

    module = getattr(_http_client, "google_auth_requests", None)
    if isinstance(module, _OneAuthRequest):
        return
    if module is not google_requests or not hasattr(_http_client, "GoogleAuthCredentialFlow"):
        raise _seam_moved("google-auth requests transport in its auth flow")
    _http_client.google_auth_requests = _OneAuthRequest(google_requests)


class _OneAuthRequest:
    """Stands in for the module google.auth.transport.requests where firebase-admin's HTTP client uses it:
    `Request()` returns one shared _RequestWhenCalled; all else is the module's."""

    def __init__(self, module: Any) -> None:
        self._module = module
        self._request = _RequestWhenCalled(module)

    def Request(self) -> Any:  # the module's own name
        return self._request

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


class _RequestWhenCalled:
    """A google-auth transport request that builds the real one (and its session) only when it is called, to
    refresh the token: the refresh, about hourly, then goes over a new connection, not over a pooled one that
    may have died meanwhile (a frozen Lambda, an idle hour), which google-auth would not retry."""

    def __init__(self, module: Any) -> None:
        self._module = module

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._module.Request()(*args, **kwargs)


def close_emulator_app() -> None:
    """Close the emulator App's connections and let it go, if it was built (the local stack stops: aiohttp
    warns of sessions left open at exit; a stack started next builds its own). Lambda needs no such step."""
    global _emulator
    if _emulator is not None:
        import firebase_admin

        run(close_connections(_emulator))
        firebase_admin.delete_app(_emulator)
        _emulator = None


async def close_connections(app: Any) -> None:
    """Close the app's connections to FCM; await it on the event loop that sent with the app."""
    from firebase_admin import messaging

    for mount in _retry_transports(messaging._get_messaging_service(app)):
        await mount._wrapped_transport.aclose()


def service_account_json(secret_id: str) -> str:
    """The Firebase service-account JSON kept in Secrets Manager (never logged), read through Powertools'
    parameters utility (cached for an hour per Lambda environment: a rotated key is picked up within that)."""
    from aws_lambda_powertools.utilities import parameters

    text = parameters.get_secret(secret_id, max_age=3600)
    if not isinstance(text, str) or not text:
        raise RuntimeError(f"secret {secret_id} has no SecretString. Fix: store the service-account JSON as text")
    return text


@lru_cache(maxsize=1)
def _loop() -> asyncio.AbstractEventLoop:
    return asyncio.new_event_loop()


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run on the process's one event loop: firebase-admin's async HTTP client is bound to the first loop
    that used it, so a new loop per invocation would break the second one."""
    return _loop().run_until_complete(coroutine)

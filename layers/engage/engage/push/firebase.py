"""The firebase_admin App the deliver function sends with: FCM with the service account from Secrets Manager,
or the FCM emulator when FCM_ENDPOINT is set (the local stack, tests). Imported only by `deliver`."""

from __future__ import annotations

import asyncio
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
# process's CPU prepares (0.5–0.7 ms per push).
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
        except (ValueError, TypeError):
            if _built is None:
                raise
            log.error("the FCM secret holds no usable service account; still sending with the previous key")
            return _built[1]
        if _built is not None:
            run(close_connections(_built[1]))  # on the loop they belong to, before firebase-admin's own close
            firebase_admin.delete_app(_built[1])  # frees its name and its HTTP clients
            _built = None
        options = {"httpTimeout": HTTP_TIMEOUT, "projectId": account.get("project_id")}
        _built = (text, _over_aiohttp(firebase_admin.initialize_app(certificate, options, name="engage-fcm")))
    return _built[1]


# The App sending to the FCM emulator, one per process.
_emulator: Any = None


def _emulator_app(endpoint: str) -> Any:
    global _emulator
    if _emulator is None:
        from ..local.fcm_emulator import fcm_app

        _emulator = _over_aiohttp(fcm_app(endpoint, name="engage"))
    return _emulator


def _over_aiohttp(app: Any) -> Any:
    """The app, sending over aiohttp; if that fails it is let go (its name freed), so the next call fails the
    same way rather than sending the old way."""
    import firebase_admin

    try:
        send_over_aiohttp(app)
    except Exception:
        firebase_admin.delete_app(app)
        raise
    return app


def send_over_aiohttp(app: Any) -> None:
    """Carry this app's FCM calls over aiohttp (HTTP/1.1, up to FCM_CONNECTIONS connections) instead of
    firebase-admin's httpx transport; its authentication, timeout, retries of 500/503 and error mapping stay.

    Why: with httpx each push cost about 2 ms of CPU here (0.5–0.7 ms with aiohttp). httpx's pool spends it
    on bookkeeping for HTTP/1.1 and its HTTP/2 framing is pure Python; FCM serves both protocols, and
    firebase-admin's synchronous `send_each` speaks HTTP/1.1 as well. The seam is private (firebase-admin
    is pinned in pyproject.toml): if it moves, this fails loudly rather than sending the old way.
    """
    import httpx
    from firebase_admin import messaging
    from httpx_aiohttp import AiohttpTransport

    mounts = _retry_transports(messaging._get_messaging_service(app))
    transport = AiohttpTransport(limits=httpx.Limits(max_connections=FCM_CONNECTIONS, keepalive_expiry=5))
    for mount in mounts:
        mount._wrapped_transport = transport  # one connection pool for http:// and https://


def _retry_transports(service: Any) -> list[Any]:
    """firebase-admin's retrying transports under the messaging service's async HTTP client."""
    mounts = getattr(getattr(service, "_async_client", None), "_mounts", None)
    if not isinstance(mounts, dict) or not mounts or not all(hasattr(m, "_wrapped_transport") for m in mounts.values()):
        raise RuntimeError(
            "firebase-admin's messaging client has no retry transports to put aiohttp under: re-check "
            "engage.push.firebase.send_over_aiohttp for this firebase-admin version"
        )
    return list(mounts.values())


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

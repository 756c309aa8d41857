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
            firebase_admin.delete_app(_built[1])  # frees its name and its HTTP clients
            _built = None
        options = {"httpTimeout": HTTP_TIMEOUT, "projectId": account.get("project_id")}
        _built = (text, firebase_admin.initialize_app(certificate, options, name="engage-fcm"))
    return _built[1]


@lru_cache(maxsize=1)
def _emulator_app(endpoint: str) -> Any:
    from ..local.fcm_emulator import fcm_app

    return fcm_app(endpoint, name="engage")


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

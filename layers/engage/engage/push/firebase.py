"""The firebase_admin App the deliver function sends with: FCM with the service account from Secrets Manager,
or the FCM emulator when FCM_ENDPOINT is set (the local stack, tests). Imported only by `deliver`."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Coroutine
from functools import lru_cache
from typing import Any, TypeVar

T = TypeVar("T")

# Seconds firebase-admin waits for FCM per call (its `httpTimeout` option): a stuck call fails and is retried.
HTTP_TIMEOUT = 10


@lru_cache(maxsize=1)
def firebase_app() -> Any:
    """One App per process (a Lambda environment), created on first use."""
    endpoint = os.environ.get("FCM_ENDPOINT")
    if endpoint:
        from ..local.fcm_emulator import fcm_app

        return fcm_app(endpoint, name="engage")
    import firebase_admin
    from firebase_admin import credentials

    secret = os.environ.get("FCM_CREDENTIALS_SECRET")
    if not secret:
        raise RuntimeError("FCM_CREDENTIALS_SECRET is not set. Fix: deploy with the FcmCredentialsSecretArn parameter")
    account = json.loads(service_account_json(secret))
    options = {"httpTimeout": HTTP_TIMEOUT, "projectId": account.get("project_id")}
    return firebase_admin.initialize_app(credentials.Certificate(account), options, name="engage")


def service_account_json(secret_id: str) -> str:
    """The Firebase service-account JSON kept in Secrets Manager (never logged)."""
    import boto3

    value = boto3.client("secretsmanager").get_secret_value(SecretId=secret_id)
    text = value.get("SecretString")
    if not text:
        raise RuntimeError(f"secret {secret_id} has no SecretString. Fix: store the service-account JSON as text")
    return str(text)


@lru_cache(maxsize=1)
def _loop() -> asyncio.AbstractEventLoop:
    return asyncio.new_event_loop()


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run on the process's one event loop: firebase-admin's async HTTP client is bound to the first loop
    that used it, so a new loop per invocation would break the second one."""
    return _loop().run_until_complete(coroutine)

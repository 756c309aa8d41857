"""FCM messages from Engage's pushes, sent in batches, and what each answer means for the message.

firebase-admin is imported inside the functions, never at module import: only the function that sends pays
for it (the others never import this package). The caller passes the firebase_admin App, so tests and the
local stack point it at the FCM emulator (engage.local.fcm_emulator.fcm_app) and production at FCM.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

# FCM: at most 500 messages per batch call, TTL at most 28 days, analytics labels [a-zA-Z0-9-_.~%]{1,50}.
MAX_BATCH = 500
MAX_TTL = timedelta(days=28)
_LABEL_NOT_ALLOWED = re.compile(r"[^a-zA-Z0-9\-_.~%]")

Outcome = Literal["sent", "retry", "drop_device", "dead_letter", "expired"]


@dataclass(frozen=True)
class Push:
    """One push to one device. `message_id` is also the inbox row's id, the Android tag and the APNs collapse
    id: if a retry resends a message FCM had already accepted, the device shows it once."""

    message_id: str
    token: str  # an FCM registration token, or a Firebase installation id when `fid` is set
    title: str
    body: str
    trigger_id: str
    valid_until: datetime
    deep_link: str | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)
    collapse_key: str | None = None
    high_priority: bool = True
    fid: bool = False
    silent: bool = False  # a data-only "clear" message: the app removes message_id from the tray
    web: bool = False  # to a browser: Web Push options too (about a tenth more CPU per push, so only there)


@dataclass(frozen=True)
class PushResult:
    message_id: str
    outcome: Outcome
    detail: str = ""
    retry_after: float | None = None  # seconds, when FCM said (QUOTA_EXCEEDED)
    fcm_name: str | None = None  # FCM's id for a sent message


def build_message(push: Push, now: datetime) -> Any:
    """The firebase_admin Message: notification, data for the app (deep link, actions), Android and APNs (and,
    to a browser, Web Push) options with a TTL of what remains of the message's validity, and the message id
    as the tag that lets a device show a resent message once. (A clear never goes to a browser: deliver.)"""
    from firebase_admin import messaging

    ttl = min(max(push.valid_until - now, timedelta(0)), MAX_TTL)
    target = {"fid": push.token} if push.fid else {"token": push.token}
    if push.silent:
        return messaging.Message(
            **target,
            data={"engage": "clear", "message_id": push.message_id},
            android=messaging.AndroidConfig(priority="normal", ttl=ttl),
            apns=messaging.APNSConfig(
                headers={"apns-push-type": "background", "apns-priority": "5"},
                payload=messaging.APNSPayload(aps=messaging.Aps(content_available=True)),
            ),
        )
    data = {"message_id": push.message_id, "trigger": push.trigger_id}
    if push.deep_link:
        data["deep_link"] = push.deep_link
    if push.actions:
        data["actions"] = json.dumps(push.actions, separators=(",", ":"))
    return messaging.Message(
        **target,
        notification=messaging.Notification(title=push.title, body=push.body),
        data=data,
        android=messaging.AndroidConfig(
            priority="high" if push.high_priority else "normal",
            ttl=ttl,
            collapse_key=push.collapse_key,
            notification=messaging.AndroidNotification(tag=push.message_id),
        ),
        apns=messaging.APNSConfig(
            headers={
                "apns-collapse-id": push.message_id[:64],
                "apns-expiration": str(int(push.valid_until.timestamp())),
                "apns-priority": "10" if push.high_priority else "5",
            },
            payload=messaging.APNSPayload(aps=messaging.Aps(thread_id=push.collapse_key)),
        ),
        webpush=messaging.WebpushConfig(
            headers=_webpush_headers(ttl, push.high_priority),
            notification=messaging.WebpushNotification(tag=push.message_id),
        )
        if push.web
        else None,
        fcm_options=messaging.FCMOptions(analytics_label=_LABEL_NOT_ALLOWED.sub("-", push.trigger_id)[:50]),
    )


def _webpush_headers(ttl: timedelta, high_priority: bool) -> dict[str, str]:
    """Web Push's TTL (whole seconds: a browser offline past it never gets the message) and urgency."""
    return {"TTL": str(int(ttl.total_seconds())), "Urgency": "high" if high_priority else "normal"}


async def send_batch(app: Any, pushes: Sequence[Push], now: datetime) -> list[PushResult]:
    """Send in chunks of at most 500 with send_each_async; one result per push, in order.

    A push whose validity has run out is not sent (`expired`). Reuse one event loop for an app: its HTTP
    client is bound to the first loop that used it.
    """
    from firebase_admin import messaging

    results: list[PushResult | None] = [
        None if push.valid_until > now else PushResult(push.message_id, "expired", "validity ran out before sending")
        for push in pushes
    ]
    live = [index for index, result in enumerate(results) if result is None]
    for start in range(0, len(live), MAX_BATCH):
        chunk = live[start : start + MAX_BATCH]
        answer = await messaging.send_each_async([build_message(pushes[i], now) for i in chunk], app=app)
        for index, response in zip(chunk, answer.responses, strict=True):
            message_id = pushes[index].message_id
            results[index] = (
                PushResult(message_id, "sent", fcm_name=response.message_id)
                if response.success
                else classify(message_id, response.exception)
            )
    return [result for result in results if result is not None]


def classify(message_id: str, error: Exception) -> PushResult:
    """What an FCM error means: drop the device, retry later (honouring Retry-After), or dead-letter (our bug)."""
    from firebase_admin import exceptions, messaging

    text = str(error)
    if isinstance(error, messaging.UnregisteredError):
        return PushResult(message_id, "drop_device", text)
    if isinstance(error, messaging.SenderIdMismatchError):  # most likely another Firebase project's credentials:
        return PushResult(message_id, "dead_letter", text)  # a deploy to fix, not a dead token to delete
    if isinstance(error, exceptions.InvalidArgumentError):
        if "registration token" in text.lower():
            return PushResult(message_id, "drop_device", text)
        return PushResult(message_id, "dead_letter", text)  # a message FCM refuses is ours to fix
    if isinstance(error, messaging.QuotaExceededError):
        return PushResult(message_id, "retry", text, retry_after=_retry_after(error))
    if isinstance(error, messaging.ThirdPartyAuthError | exceptions.PermissionDeniedError):
        return PushResult(message_id, "dead_letter", text)  # credentials: retrying will not help
    return PushResult(message_id, "retry", text)  # UNAVAILABLE, INTERNAL, timeouts


def _retry_after(error: Exception) -> float | None:
    response = getattr(error, "http_response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None

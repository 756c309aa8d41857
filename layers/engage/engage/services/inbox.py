"""GET /v1/me/inbox and POST /v1/me/inbox/{id}/read|unread|archive: the pull half of notifications."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from ..api.models import InboxMessageOut, InboxResponse
from ..store import inbox as store
from ..store import queues
from .errors import InvalidInput, NotFound, signed_in_user

ACTIONS = ("read", "unread", "archive")
# A "clear" that cannot reach a phone within a day is pointless: the tray entry is long gone or seen.
CLEAR_VALID_FOR = timedelta(days=1)


def my_inbox(claims: Mapping[str, Any], limit: int, cursor: str | None, now: datetime | None = None) -> InboxResponse:
    user_id, now = signed_in_user(claims), now or datetime.now(UTC)
    try:
        messages, next_cursor = store.page(user_id, limit, cursor, now)
    except store.BadCursor as exc:
        raise InvalidInput(str(exc)) from None
    return InboxResponse(
        messages=[_out(message) for message in messages],
        unread=store.unread_count(user_id, now) if not cursor else None,  # counted once, on the first page
        next_cursor=next_cursor,
    )


def mark_message(claims: Mapping[str, Any], message_id: str, action: str, now: datetime | None = None) -> None:
    if action not in ACTIONS:
        raise InvalidInput(f"unknown action {action!r}. Fix: use one of {', '.join(ACTIONS)}")
    if not store.is_message_id(message_id):
        raise NotFound(f"no message {message_id[:40]!r} in this inbox")
    user_id, now = signed_in_user(claims), now or datetime.now(UTC)
    try:
        message, first_seen = store.mark(user_id, message_id, action, now)
    except store.MessageNotFound:
        raise NotFound(f"no message {message_id!r} in this inbox (it may have expired)") from None
    if first_seen and message.push.get("decision") == "push":  # read, then archived: one clear is enough
        _clear_from_tray(user_id, message_id, now)


def _clear_from_tray(user_id: str, message_id: str, now: datetime) -> None:
    """A pushed message read in the app: a silent data message lets the app remove it from the tray."""
    from ..notify.jobs import DeliveryJob  # here: the notify package is not worth its import on every cold start

    job = DeliveryJob(kind="clear", message_id=message_id, user_id=user_id, valid_until=now + CLEAR_VALID_FOR)
    queues.send(queues.delivery_queue(), [queues.Outgoing(job.model_dump_json())])


def _out(message: store.Message) -> InboxMessageOut:
    decision = message.push.get("decision")
    return InboxMessageOut(
        message_id=message.message_id,
        trigger=message.trigger,
        category=message.category,
        title=message.title,
        body=message.body,
        deep_link=message.deep_link,
        actions=message.actions,
        pushed=decision == "push",
        push_reason=None if decision == "push" else message.push.get("reason"),
        held_until=message.push.get("deliver_at") if decision == "defer" else None,
        created_at=message.created_at,
        read=message.read_at is not None,
        opened_at=message.opened_at,
    )

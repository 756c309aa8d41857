"""GET /v1/me/inbox and POST /v1/me/inbox/{id}/read|unread|archive: the pull half of notifications."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..api.models import InboxMessageOut, InboxResponse
from ..store import inbox as store
from .errors import InvalidInput, NotFound, signed_in_user

ACTIONS = ("read", "unread", "archive")
_ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


def my_inbox(claims: Mapping[str, Any], limit: int, cursor: str | None) -> InboxResponse:
    user_id = signed_in_user(claims)
    try:
        messages, next_cursor = store.page(user_id, limit, cursor)
    except store.BadCursor as exc:
        raise InvalidInput(str(exc)) from None
    return InboxResponse(
        messages=[_out(message) for message in messages],
        unread=store.unread_count(user_id) if cursor is None else None,  # counted once, on the first page
        next_cursor=next_cursor,
    )


def mark_message(claims: Mapping[str, Any], message_id: str, action: str, now: datetime | None = None) -> None:
    if action not in ACTIONS:
        raise InvalidInput(f"unknown action {action!r}. Fix: use one of {', '.join(ACTIONS)}")
    if not _ULID.match(message_id):
        raise NotFound(f"no message {message_id[:40]!r} in this inbox")
    try:
        store.mark(signed_in_user(claims), message_id, action, now or datetime.now(UTC))
    except store.MessageNotFound:
        raise NotFound(f"no message {message_id!r} in this inbox (it may have expired)") from None


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
        created_at=message.created_at,
        read=message.read_at is not None,
        opened_at=message.opened_at,
    )

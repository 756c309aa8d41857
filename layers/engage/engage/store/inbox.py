"""The inbox: every message a user was sent, pushed or not, newest first; marked read, unread or archived."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pynamodb.exceptions import PutError, UpdateError
from pynamodb.expressions.update import Action

from .history import BadCursor, decode_cursor, encode_cursor
from .models import InboxItem

# How long a message stays in the inbox (its TTL).
RETENTION = timedelta(days=30)


class MessageNotFound(LookupError):
    """No such message in this user's inbox (never sent, expired, or someone else's)."""


@dataclass(frozen=True)
class Message:
    message_id: str
    trigger: str
    category: str
    title: str
    body: str
    deep_link: str | None
    actions: list[dict[str, Any]]
    push: dict[str, Any]
    created_at: datetime
    read_at: datetime | None
    archived_at: datetime | None
    opened_at: datetime | None


def add(user_id: str, message: Message) -> bool:
    """Store a new message (the notifier calls this); False if it was already there (a retry stores nothing)."""
    item = InboxItem(
        user_id,
        message.message_id,
        trigger=message.trigger,
        category=message.category,
        title=message.title,
        body=message.body,
        deep_link=message.deep_link,
        actions=message.actions,
        push=message.push,
        created_at=message.created_at,
        expires_at=message.created_at + RETENTION,
    )
    try:
        item.save(condition=InboxItem.message_id.does_not_exist())
    except PutError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise
    return True


def page(user_id: str, limit: int, cursor: str | None) -> tuple[list[Message], str | None]:
    """Up to `limit` messages not archived, newest first, and the cursor of the next page."""
    start = decode_cursor(cursor, user_id) if cursor else None
    items = InboxItem.query(
        user_id,
        filter_condition=InboxItem.archived_at.does_not_exist(),
        scan_index_forward=False,
        limit=limit,
        last_evaluated_key=start,
    )
    messages = [_message(item) for item in items]
    last = items.last_evaluated_key
    return messages, encode_cursor(last) if last else None


def unread_count(user_id: str) -> int:
    """Messages neither read nor archived (a count query over the user's inbox, bounded by its retention)."""
    return InboxItem.count(
        user_id, filter_condition=InboxItem.read_at.does_not_exist() & InboxItem.archived_at.does_not_exist()
    )


def mark(user_id: str, message_id: str, action: str, now: datetime) -> None:
    """read | unread | archive; MessageNotFound if the user has no such message."""
    changes: dict[str, Action] = {
        "read": InboxItem.read_at.set(now),
        "unread": InboxItem.read_at.remove(),
        "archive": InboxItem.archived_at.set(now),
    }
    actions = [changes[action]]
    try:
        InboxItem(user_id, message_id).update(actions=actions, condition=InboxItem.message_id.exists())
    except UpdateError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            raise MessageNotFound(message_id) from None
        raise


def _message(item: InboxItem) -> Message:
    return Message(
        message_id=item.message_id,
        trigger=item.trigger,
        category=item.category,
        title=item.title,
        body=item.body,
        deep_link=item.deep_link,
        actions=[a.as_dict() if hasattr(a, "as_dict") else a for a in item.actions],
        push=item.push.as_dict() if hasattr(item.push, "as_dict") else dict(item.push),
        created_at=item.created_at,
        read_at=item.read_at,
        archived_at=item.archived_at,
        opened_at=item.opened_at,
    )


__all__ = ["BadCursor", "Message", "MessageNotFound", "add", "mark", "page", "unread_count"]

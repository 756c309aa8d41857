"""The inbox: every message a user was sent, pushed or not, newest first; marked read, unread or archived.

Next to the messages, in the same partition, each user has a push log: the pushes of the last days, which the
caps count, under a version. A push is logged in the same transaction that stores (or settles) its message,
conditioned on the log's version, so two decisions racing for one user (a stream batch, a quiet-hours
release, a schedule run) cannot both spend the same cap: the one whose transaction fails reads again and
decides again. A logged push always has its inbox row.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite
from ulid import ULID

from .history import BadCursor, decode_cursor, encode_cursor
from .models import InboxItem, connection
from .writes import written

# Every message id is a ULID (new, or derived from the fact that caused it).
_MESSAGE_ID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
# How long a message stays in the inbox (its TTL).
RETENTION = timedelta(days=30)
READ_PAGE = 100  # rows DynamoDB reads per query page of an inbox listing
# The push log's key: no message id takes it, and it sorts after every ULID (so message queries stop before it).
PUSH_LOG = "~push-log"
# The most pushes the log keeps (the newest): more than any sensible weekly cap, and a bounded row without caps.
PUSH_LOG_SIZE = 100
# Cancellation reasons of a transaction that a fresh read and another try resolve.
_RETRYABLE = {"ConditionalCheckFailed", "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
_IS_NEW = InboxItem.message_id.does_not_exist()
_IS_DEFERRED = InboxItem.push["decision"] == "defer"


class MessageNotFound(LookupError):
    """No such message in this user's inbox (never sent, expired, or someone else's)."""


def is_message_id(text: str) -> bool:
    """Whether `text` could name a message (anything else names none: not a key to send to DynamoDB)."""
    return bool(_MESSAGE_ID.match(text))


@dataclass(frozen=True)
class PushLog:
    """A user's recent pushes (message id → when it was pushed) as read, and the version a write of it checks."""

    version: int
    pushed: dict[str, datetime]

    def since(self, floor: datetime) -> list[datetime]:
        return [at for at in self.pushed.values() if at >= floor]


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
    item = _item(user_id, message)
    return written(lambda: item.save(condition=_IS_NEW))


def page(user_id: str, limit: int, cursor: str | None, now: datetime) -> tuple[list[Message], str | None]:
    """Up to `limit` messages not archived nor expired, newest first, and the cursor of the next page."""
    start = decode_cursor(cursor, user_id, ("user_id", "message_id")) if cursor else None
    if start is not None and not is_message_id(start["message_id"]["S"]):  # e.g. the push log's key
        raise BadCursor("the cursor is not valid. Fix: pass the next_cursor of the previous page, or none")
    items = InboxItem.query(
        user_id,
        InboxItem.message_id < PUSH_LOG,
        filter_condition=InboxItem.archived_at.does_not_exist() & _live(now),
        scan_index_forward=False,
        limit=limit + 1,  # one more than asked: whether another page exists
        # DynamoDB applies a page's Limit before the filter: pages of `limit` would take a query per few
        # archived messages. PynamoDB stops at `limit` + 1 messages.
        page_size=READ_PAGE,
        last_evaluated_key=start,
    )
    messages = [_message(item) for item in items]
    more, messages = len(messages) > limit, messages[:limit]
    last = {"user_id": {"S": user_id}, "message_id": {"S": messages[-1].message_id}} if more else None
    return messages, encode_cursor(last) if last else None


def unread_count(user_id: str, now: datetime) -> int:
    """Messages neither read nor archived nor expired (a count query over the user's inbox, bounded by its
    retention)."""
    return InboxItem.count(
        user_id,
        InboxItem.message_id < PUSH_LOG,
        filter_condition=InboxItem.read_at.does_not_exist() & InboxItem.archived_at.does_not_exist() & _live(now),
    )


def _live(now: datetime) -> Condition:
    # DynamoDB's TTL deletes expired rows within days, not at once: until then they are not shown.
    return InboxItem.expires_at > now


def mark(user_id: str, message_id: str, action: str, now: datetime) -> tuple[Message, bool]:
    """read | unread | archive, in one conditional write: the message as it is now, and whether this made an
    unseen message seen (read or archived when it was neither). MessageNotFound if the user has no such
    message, or it expired. Reading or archiving again keeps the first date."""
    if not is_message_id(message_id):
        raise MessageNotFound(message_id)
    changes: dict[str, Action] = {
        "read": InboxItem.read_at.set(InboxItem.read_at | now),  # | : DynamoDB's if_not_exists
        "unread": InboxItem.read_at.remove(),
        "archive": InboxItem.archived_at.set(InboxItem.archived_at | now),
    }
    item, exists = InboxItem(user_id, message_id), InboxItem.message_id.exists() & _live(now)
    if not written(lambda: item.update(actions=[changes[action]], condition=exists)):
        raise MessageNotFound(message_id)
    # The update returns the item as written: a date of `now` was set by this call, an older one was kept.
    seen_dates = [item.read_at, item.archived_at]
    first_seen = action != "unread" and now in seen_dates and all(d is None or d == now for d in seen_dates)
    return _message(item), first_seen


def get(user_id: str, message_id: str) -> Message | None:
    try:
        return _message(InboxItem.get(user_id, message_id, consistent_read=True))
    except DoesNotExist:
        return None


def seen(keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of these (user, message) the user has read or archived: strongly consistent, one BatchGetItem per
    100 keys, only the two dates read."""
    if not keys:
        return set()
    items = InboxItem.batch_get(
        keys, consistent_read=True, attributes_to_get=["user_id", "message_id", "read_at", "archived_at"]
    )
    return {(item.user_id, item.message_id) for item in items if item.read_at or item.archived_at}


def lookup(user_id: str, message_ids: list[str]) -> tuple[dict[str, Message], PushLog]:
    """The messages of these ids already in the inbox, and the user's push log: strongly consistent, in one
    BatchGetItem (per 100 keys)."""
    keys = [(user_id, message_id) for message_id in [*message_ids, PUSH_LOG]]
    messages, log = {}, PushLog(0, {})
    for item in InboxItem.batch_get(keys, consistent_read=True):
        if item.message_id == PUSH_LOG:
            pushed = _plain(item.pushed) if item.pushed is not None else {}
            log = PushLog(int(item.log_version or 0), {m: datetime.fromisoformat(at) for m, at in pushed.items()})
        else:
            messages[item.message_id] = _message(item)
    return messages, log


def add_pushed(user_id: str, log: PushLog, message: Message, keep: timedelta) -> bool:
    """Store a new message decided as a push and log the push, in one transaction; False if the log changed
    since `log` was read or the message is already stored (read again and decide again)."""
    item, at = _item(user_id, message), datetime.fromisoformat(message.push["at"])
    return _logged(user_id, log, message.message_id, at, keep, lambda t: t.save(item, condition=_IS_NEW))


def settle_pushed(user_id: str, log: PushLog, message_id: str, push: dict[str, Any], keep: timedelta) -> bool:
    """Settle a deferred message as pushed and log the push, in one transaction; False if the log changed or
    the message is no longer deferred (read again and decide again)."""
    item, at = InboxItem(user_id, message_id), datetime.fromisoformat(push["at"])
    actions: list[Action] = [InboxItem.push.set(push)]
    return _logged(user_id, log, message_id, at, keep, lambda t: t.update(item, actions, condition=_IS_DEFERRED))


def settle(user_id: str, message_id: str, push: dict[str, Any], archive_at: datetime | None = None) -> bool:
    """Record what became of a deferred message (held again, kept in the inbox, dropped; a push is settled
    with settle_pushed); False if an earlier release already settled it (the condition: it is still deferred)."""
    actions: list[Action] = [InboxItem.push.set(push)]
    if archive_at is not None:
        actions.append(InboxItem.archived_at.set(archive_at))
    item = InboxItem(user_id, message_id)
    return written(lambda: item.update(actions=actions, condition=_IS_DEFERRED))


def mark_opened(user_id: str, message_id: str, at: datetime) -> bool:
    """Attribute a notification_opened event to its message (the first open counts); False if there is no
    such message or it was already opened."""
    if not is_message_id(message_id):  # an app's typo or a crafted id: names no message
        return False
    item = InboxItem(user_id, message_id)
    first_open = InboxItem.message_id.exists() & InboxItem.opened_at.does_not_exist()
    return written(lambda: item.update(actions=[InboxItem.opened_at.set(at)], condition=first_open))


def _logged(
    user_id: str, log: PushLog, message_id: str, at: datetime, keep: timedelta, write: Callable[[TransactWrite], None]
) -> bool:
    """`write`, and the push at `at` in the log (the pushes of the last `keep` kept), in one transaction
    conditioned on the log's version as `log` read it."""
    kept = sorted((when, m) for m, when in log.pushed.items() if when >= at - keep)[-(PUSH_LOG_SIZE - 1) :]
    pushed = {m: when.isoformat() for when, m in kept} | {message_id: at.isoformat()}
    unchanged = InboxItem.log_version == log.version if log.version else InboxItem.log_version.does_not_exist()
    changes: list[Action] = [
        InboxItem.pushed.set(pushed),
        InboxItem.log_version.set(log.version + 1),
        InboxItem.expires_at.set(at + RETENTION),
    ]
    try:
        with TransactWrite(connection=connection(), client_request_token=str(ULID())) as transaction:
            transaction.update(InboxItem(user_id, PUSH_LOG), changes, condition=unchanged)
            write(transaction)
    except TransactWriteError as exc:
        codes = {reason.code for reason in exc.cancellation_reasons or [] if reason is not None}
        if codes & _RETRYABLE:
            return False
        raise
    return True


def _item(user_id: str, message: Message) -> InboxItem:
    return InboxItem(
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


def _plain(value: Any) -> dict[str, Any]:
    # Untyped map attributes come back as MapAttribute objects or plain dicts, depending on how they were read.
    return value.as_dict() if hasattr(value, "as_dict") else dict(value)


def _message(item: InboxItem) -> Message:
    return Message(
        message_id=item.message_id,
        trigger=item.trigger,
        category=item.category,
        title=item.title,
        body=item.body,
        deep_link=item.deep_link,
        actions=[_plain(action) for action in item.actions],
        push=_plain(item.push),
        created_at=item.created_at,
        read_at=item.read_at,
        archived_at=item.archived_at,
        opened_at=item.opened_at,
    )


__all__ = [
    "PUSH_LOG", "BadCursor", "Message", "MessageNotFound", "PushLog", "add", "add_pushed", "get", "lookup", "mark",
    "mark_opened", "page", "settle", "settle_pushed", "unread_count",
]  # fmt: skip

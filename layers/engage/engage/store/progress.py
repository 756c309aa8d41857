"""Read a user's progress and commit an outcome: one GetItem, one TransactWriteItems."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.transactions import TransactWrite
from ulid import ULID

from ..engine.leaderboards import BoardScore, rank_key, shard_of
from ..engine.model import Applied, Outcome, Profile, Source, UserState
from .models import LeaderboardItem, LedgerItem, UserItem, connection

_PROGRESS_PARTS = ("badges", "streaks", "quests", "boards", "preferences")
# Rows of past board periods stay readable (previous period, rewards) this long, then expire.
BOARD_RETENTION = timedelta(days=400)
# Dedupe markers must outlive the longest late window (30d) with room to spare.
DEDUPE_RETENTION = timedelta(days=35)
# DynamoDB takes 100 items per transaction: the user item, one row per leaderboard, the rest for events.
TRANSACTION_ITEMS = 100


def events_per_transaction(board_count: int) -> int:
    """How many events one transaction holds next to the user item and a row per board (at most 20 boards)."""
    return TRANSACTION_ITEMS - 1 - board_count


class CommitConflict(Exception):
    """The transaction was cancelled: another write changed the user, or some events were already applied.

    `user_changed` means: read the user again and retry (a version mismatch, a concurrent transaction on the
    same items, or throttling). `duplicate_ids` are events whose ledger row already exists.
    """

    def __init__(self, user_changed: bool, duplicate_ids: set[str]) -> None:
        super().__init__(f"user_changed={user_changed} duplicates={sorted(duplicate_ids)}")
        self.user_changed = user_changed
        self.duplicate_ids = duplicate_ids


def load_user(user_id: str) -> UserState:
    """The user's current state (strongly consistent), or a fresh state for a new user."""
    try:
        item = UserItem.get(user_id, consistent_read=True)
    except DoesNotExist:
        return UserState(user_id=user_id)
    progress = json.loads(item.progress) if item.progress else {}
    return UserState(
        user_id=user_id,
        version=int(item.version or 0),
        balances=_ints(item.balances),
        earned=_ints(item.earned),
        level=int(item.level),
        counters=_ints(item.counters),
        profile=Profile(
            item.timezone,
            item.locale,
            item.app_version,
            item.display_name,
            item.reported_timezone,
            item.reported_locale,
        ),
        created_at=item.created_at,
        **{part: progress.get(part, {}) for part in _PROGRESS_PARTS},
    )


def applied_before(user_id: str, source: Source, event_ids: Sequence[str]) -> set[str]:
    """Which of these events an earlier request applied (their ledger row, the dedupe marker, exists): one
    strongly consistent BatchGetItem per 100, reading the keys only."""
    prefix = ledger_key(source, "")
    keys = [(user_id, ledger_key(source, event_id)) for event_id in event_ids]
    rows = LedgerItem.batch_get(keys, consistent_read=True, attributes_to_get=["user_id", "sk"])
    return {row.sk.removeprefix(prefix) for row in rows}


def commit(outcome: Outcome, source: Source, now: datetime) -> None:
    """Write the new user state and one ledger row per applied event, all or nothing.

    The user item is conditioned on the version that was read, each ledger row on not existing yet:
    a concurrent writer or a replayed event cancels the whole transaction (CommitConflict says which).
    """
    if 1 + len(outcome.applied) + len(outcome.boards) > TRANSACTION_ITEMS:
        raise ValueError(f"{len(outcome.applied)} events and {len(outcome.boards)} boards overflow one transaction")
    rows = [_ledger_row(outcome.after.user_id, applied, source, now) for applied in outcome.applied]
    boards = [_board_row(outcome.after, score, now) for score in outcome.boards]
    try:
        with TransactWrite(connection=connection(), client_request_token=str(ULID())) as transaction:
            transaction.save(_user_item(outcome.before, outcome.after, now))
            for row in rows:
                transaction.save(row, condition=LedgerItem.sk.does_not_exist())
            for board in boards:  # unconditional: the user item's version already orders this user's writes
                transaction.save(board)
    except TransactWriteError as exc:
        raise _conflict(exc, outcome.applied) from exc


# Cancellation reasons that a fresh read and a retry resolve (DynamoDB's names for them).
_RETRYABLE = {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}
# Errors of the request as a whole that a retry resolves: DynamoDB throttled it or is busy with the items.
_RETRYABLE_REQUEST = {
    "ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded",
    "TransactionInProgressException", "InternalServerError",
}  # fmt: skip


class UserItemFull(Exception):
    """The user item would outgrow DynamoDB's 400 KB: a config published before `engage config validate` checked
    what it keeps per user. No retry can apply these events."""


def _too_big(exc: TransactWriteError) -> bool:
    """DynamoDB Local refuses the request; AWS cancels the transaction with a ValidationError on the item."""
    messages = [exc.cause_response_message or ""] if exc.cause_response_code == "ValidationException" else []
    messages += [
        reason.message or "" for reason in exc.cancellation_reasons or [] if reason and reason.code == "ValidationError"
    ]
    return any("size" in message.lower() for message in messages)


def _conflict(exc: TransactWriteError, applied: Sequence[Applied]) -> Exception:
    if _too_big(exc):
        return UserItemFull(str(exc))
    codes = [reason.code if reason is not None else None for reason in exc.cancellation_reasons or []]
    failed = [code == "ConditionalCheckFailed" for code in codes]
    retryable = any(code in _RETRYABLE for code in codes) or exc.cause_response_code in _RETRYABLE_REQUEST
    if not (any(failed) or retryable):
        return exc  # a validation error or worse: not resolved by retrying
    duplicates = {applied[i - 1].event.id for i, hit in enumerate(failed) if hit and i > 0}
    return CommitConflict(user_changed=retryable or failed[0], duplicate_ids=duplicates)


def _user_item(before: UserState, after: UserState, now: datetime) -> UserItem:
    item = UserItem(
        after.user_id,
        balances=after.balances,
        earned=after.earned,
        level=after.level,
        counters=after.counters,
        timezone=after.profile.timezone,
        locale=after.profile.locale,
        app_version=after.profile.app_version,
        display_name=after.profile.display_name,
        reported_timezone=after.profile.reported_timezone,
        reported_locale=after.profile.reported_locale,
        progress=json.dumps({part: getattr(after, part) for part in _PROGRESS_PARTS}, separators=(",", ":")),
        created_at=after.created_at or now,
        updated_at=now,
    )
    if before.version:
        # PynamoDB conditions the write on this version and stores version + 1; a new user's item
        # (no version) is conditioned on not existing yet.
        item.version = before.version
    return item


def _ledger_row(user_id: str, applied: Applied, source: Source, now: datetime) -> LedgerItem:
    event = applied.event
    return LedgerItem(
        user_id,
        ledger_key(source, event.id),
        ts=str(ULID.from_datetime(now)),
        event_type=event.type,
        source=source,
        occurred_at=event.occurred_at,
        received_at=now,
        properties=event.properties,
        facts=[fact.as_dict() for fact in applied.facts],
        expires_at=None if applied.facts else now + DEDUPE_RETENTION,
    )


def _board_row(state: UserState, score: BoardScore, now: datetime) -> LeaderboardItem:
    board = f"{score.board}#{score.period}"
    return LeaderboardItem(
        board,
        state.user_id,
        shard=f"{board}#{shard_of(state.user_id, score.shards)}",
        rank_key=rank_key(score.score, score.reached_ms, state.user_id),
        score=score.score,
        reached_ms=score.reached_ms,
        name=state.profile.display_name,
        expires_at=None if score.period == "all" else now + BOARD_RETENTION,
    )


def ledger_key(source: Source, event_id: str) -> str:
    """The ledger row (and dedupe marker) of an event. App and backend ids live apart, so an app cannot
    claim the id of a backend event (say, a purchase) before the backend sends it."""
    return f"evt#{source}#{event_id}"


def _ints(attribute: Any) -> dict[str, int]:
    values = attribute.as_dict() if hasattr(attribute, "as_dict") else dict(attribute or {})
    return {key: int(value) for key, value in values.items()}

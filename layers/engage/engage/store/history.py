"""A user's ledger, newest first, a page at a time (the ByTime index)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .models import LedgerItem


class BadCursor(ValueError):
    """The cursor is not one this API handed out."""


@dataclass(frozen=True)
class HistoryEntry:
    event_id: str
    event_type: str
    source: str
    occurred_at: datetime
    received_at: datetime
    properties: dict[str, Any]
    facts: list[dict[str, Any]]


def history_page(user_id: str, limit: int, cursor: str | None) -> tuple[list[HistoryEntry], str | None]:
    """Up to `limit` entries after `cursor` (None: the newest); the cursor of the next page, or None at the end."""
    start = decode_cursor(cursor, user_id, ("user_id", "sk", "ts")) if cursor else None
    # One row more than asked: whether another page exists (DynamoDB's own cursor may lead to an empty one).
    rows = list(LedgerItem.by_time.query(user_id, scan_index_forward=False, limit=limit + 1, last_evaluated_key=start))
    more, rows = len(rows) > limit, rows[:limit]
    entries = [
        HistoryEntry(
            event_id=_event_id(row.sk),
            event_type=row.event_type,
            source=row.source,
            occurred_at=row.occurred_at,
            received_at=row.received_at,
            properties=_plain(row.properties),
            facts=[_plain(fact) for fact in row.facts],
        )
        for row in rows
    ]
    last = {"user_id": {"S": user_id}, "sk": {"S": rows[-1].sk}, "ts": {"S": rows[-1].ts}} if more else None
    return entries, encode_cursor(last) if last else None


def _event_id(sk: str) -> str:
    """The id a ledger row is known by: an event's own id ('evt#<source>#<id>'), or a system fact's
    ('fact#<id>', such as a rank_lost fact's)."""
    return sk.removeprefix("fact#") if sk.startswith("fact#") else sk.split("#", 2)[2]


def _plain(value: Any) -> Any:
    return value.as_dict() if hasattr(value, "as_dict") else value


def encode_cursor(key: dict[str, Any]) -> str:
    """An opaque page cursor for a DynamoDB LastEvaluatedKey."""
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, user_id: str, attributes: tuple[str, ...]) -> dict[str, Any]:
    """The key a cursor stands for; BadCursor unless it is well formed (exactly these string attributes, as
    DynamoDB would take them back) and belongs to `user_id`. A crafted cursor is a 400, never a 500."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: '[[[[…'
        raise BadCursor("the cursor is not valid. Fix: pass the next_cursor of the previous page, or none") from None
    well_formed = (
        isinstance(key, dict)
        and sorted(key) == sorted(attributes)
        and all(isinstance(v, dict) and list(v) == ["S"] and _key_string(v["S"]) for v in key.values())
    )
    if not well_formed:
        raise BadCursor("the cursor is not valid. Fix: pass the next_cursor of the previous page, or none")
    if key["user_id"]["S"] != user_id:
        raise BadCursor("the cursor belongs to another listing. Fix: start again without a cursor")
    return key


def _key_string(value: Any) -> bool:
    try:
        return isinstance(value, str) and 0 < len(value.encode()) <= 1024  # DynamoDB's limit for a sort key
    except UnicodeEncodeError:  # a lone surrogate ("\ud800") is no text DynamoDB takes
        return False

"""GET /v1/me/history: the ledger behind the user's progress — "why did I get this?"."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..api.models import HistoryEntryOut, HistoryResponse
from ..store.history import BadCursor, history_page
from .errors import InvalidInput, signed_in_user


def my_history(claims: Mapping[str, Any], limit: int, cursor: str | None) -> HistoryResponse:
    user_id = signed_in_user(claims)
    try:
        entries, next_cursor = history_page(user_id, limit, cursor)
    except BadCursor as exc:
        raise InvalidInput(str(exc)) from None
    return HistoryResponse(
        entries=[HistoryEntryOut(**entry.__dict__) for entry in entries],
        next_cursor=next_cursor,
    )

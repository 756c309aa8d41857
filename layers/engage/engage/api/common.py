"""API bodies every function shares: the strict request base, errors, and a level as the app sees it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..config.loader import fix_for


class Body(BaseModel):
    """A request body: unknown fields are an error (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid")


class LevelOut(BaseModel):
    number: int
    name: str
    total: int = Field(description="lifetime total of the level currency")
    threshold: int
    next_threshold: int | None
    to_next: int | None
    progress: float = Field(description="0..1 through the current level")


class ErrorDetail(BaseModel):
    field: str
    message: str
    value: Any = None


class ErrorResponse(BaseModel):
    error: str
    message: str
    details: list[ErrorDetail] = []


# What a field's value should have been, for pydantic's errors whose own words give no fix.
_EXPLAINED = {
    "extra_forbidden": "unknown field. Fix: remove it or check its spelling",
    "missing": "required field is missing. Fix: add it",
    "model_type": "is not an object. Fix: send an object with its fields",
    "model_attributes_type": "is not an object. Fix: send an object with its fields",
    "dict_type": 'is not an object. Fix: send an object ({"name": value, …})',
    "list_type": "is not a list. Fix: send a JSON array",
    "json_invalid": "is not valid JSON. Fix: check its quotes, brackets and commas",
    "timezone_aware": "has no UTC offset. Fix: add one, e.g. 2026-11-23T18:30:00+01:00 or …Z",
    "datetime_from_date_parsing": "is not a date-time. Fix: send ISO 8601 with an offset, e.g. 2026-11-23T18:30:00Z",
    "datetime_parsing": "is not a date-time. Fix: send ISO 8601 with an offset, e.g. 2026-11-23T18:30:00Z",
    "datetime_type": "is not a date-time. Fix: send ISO 8601 with an offset, e.g. 2026-11-23T18:30:00Z",
}


def explain(error: Mapping[str, Any]) -> str:
    """A request field's problem in words that say what to send (pydantic's own where they already do)."""
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind in _EXPLAINED:
        return _EXPLAINED[kind]
    if kind == "too_long":
        return f"has {ctx.get('actual_length')} items, more than {ctx.get('max_length')}. Fix: send at most {ctx.get('max_length')}"
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')}. Fix: send at least {ctx.get('min_length')}"
    if kind == "string_pattern_mismatch" and (fix := fix_for(error)):
        return f"is not in the expected form. Fix: {fix}"
    return str(error.get("msg", "")).removeprefix("Value error, ")

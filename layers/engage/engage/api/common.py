"""API bodies every function shares: the strict request base, errors, and a level as the app sees it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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

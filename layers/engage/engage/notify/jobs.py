"""What travels on the notification queues: delivery jobs (notify → deliver) and deferred releases.

Plain pydantic models, validated on both ends: a malformed body is rejected with its field named and
dead-lettered with that reason, never retried forever.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class _Job(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeliveryJob(_Job):
    """One message to all of a user's targetable devices (or, on a retry, to the devices still owed it).

    kind "push" shows a notification; kind "clear" is the silent data message that tells the app to remove
    a message the user read elsewhere from the tray.
    """

    kind: Literal["push", "clear"] = "push"
    message_id: str = Field(min_length=1)
    user_id: str = Field(min_length=1)
    trigger: str = ""
    title: str = ""
    body: str = ""
    deep_link: str | None = None
    actions: list[dict[str, Any]] = []
    collapse_key: str | None = None
    valid_until: AwareDatetime
    attempt: int = Field(default=0, ge=0)
    devices: list[str] | None = None  # None: every targetable device; a retry names the ones left
    not_before: AwareDatetime | None = None  # a retry FCM asked to wait longer than one SQS delay (15 min) for

    @property
    def idempotency_key(self) -> str:
        """One send per (message, kind, attempt): an SQS redelivery of the same job sends nothing more."""
        return f"{self.message_id}#{self.kind}#{self.attempt}"


class DeferredRelease(_Job):
    """A message held by quiet hours: at `deliver_at` it is re-checked (validity, `when`, choices, caps)."""

    message_id: str = Field(min_length=1)
    user_id: str = Field(min_length=1)
    trigger: str = Field(min_length=1)
    fact_key: str
    fact: dict[str, Any]
    created_at: AwareDatetime
    valid_until: AwareDatetime
    deliver_at: AwareDatetime

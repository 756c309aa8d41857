"""Request and response bodies of the HTTP API (shared by the handlers, the local stack and the SDK).

The ingest function's bodies live in engage.api.events and the shared ones in engage.api.common: ingest, the
function on every app event, imports only those two and builds only its own models at a cold start.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    Discriminator,
    Field,
    PlainValidator,
    StringConstraints,
    Tag,
    field_validator,
    model_validator,
)

from ..config.types import CLIENT_ID, FID, Locale, LocalTime, TimeZoneName
from .common import Body, LevelOut


class CurrencyOut(BaseModel):
    name: str
    balance: int
    earned: int


class BadgeOut(BaseModel):
    id: str
    name: str
    description: str | None
    earned: bool
    tier: str | None = Field(None, description="the highest tier earned, for tiered badges")
    tiers_earned: int
    tiers_total: int
    value: int | float = Field(description="progress so far: count, sum or distinct values")
    next_goal: int | None = Field(None, description="value at which the next tier (or the badge) is earned")
    next_tier: str | None = None
    secret: bool


class StreakOut(BaseModel):
    id: str
    name: str
    period: str
    length: int
    longest: int
    freezes: int
    done_this_period: bool
    at_risk: bool


class QuestStepOut(BaseModel):
    id: str
    value: int | float
    goal: int
    done: bool


class QuestOut(BaseModel):
    id: str
    name: str
    instance: str = Field(description="'once', or the local day/ISO week of a recurring quest")
    state: Literal["active", "completed", "expired"]
    steps: list[QuestStepOut]
    ends_at: AwareDatetime | None = Field(None, description="when a started `within` quest expires")


class RankOut(BaseModel):
    rank: int = Field(description="1 is the top")
    exact: bool = Field(description="false: estimated from the board's score histogram (far from the top)")
    percentile: float | None = Field(description="% of the board ranked below the user")
    as_of: AwareDatetime
    score: int


class MeResponse(BaseModel):
    user_id: str
    display_name: str | None
    timezone: str
    locale: str
    currencies: dict[str, CurrencyOut]
    level: LevelOut | None
    badges: list[BadgeOut] = Field(description="earned badges, and locked ones with progress (secret ones once earned)")
    streaks: list[StreakOut]
    quests: list[QuestOut] = Field(description="the current run of every quest")
    ranks: dict[str, RankOut] = Field(
        description="board id → the user's rank in its current period (boards where the user has no score yet are left out)"
    )


class HistoryEntryOut(BaseModel):
    event_id: str
    event_type: str
    source: Literal["client", "server", "system"] = Field(description="system: Engage itself (rewards, rank_lost)")
    occurred_at: AwareDatetime
    received_at: AwareDatetime
    properties: dict[str, Any]
    facts: list[dict[str, Any]] = Field(description="what this event caused: points (naming the rule), badges, …")


class HistoryResponse(BaseModel):
    entries: list[HistoryEntryOut] = Field(description="newest first")
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last page")


class BoardEntryOut(BaseModel):
    rank: int
    name: str | None = Field(description="display name; other users are never identified by id")
    score: int
    is_me: bool


class LeaderboardResponse(BaseModel):
    board: str
    name: str
    period: str = Field(description="e.g. 2026-W47, 2026-11-22, 2026-11 or all")
    entries: list[BoardEntryOut] = Field(description="the top of the board; ties rank the earlier to reach it higher")
    me: RankOut | None = Field(description="null if the user has no score in this period")
    around: list[BoardEntryOut] = Field([], description="with ?around=me: up to 5 above and 5 below the user")


DeviceId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=CLIENT_ID)]


class DeviceIn(Body):
    """A device to push to: its FCM registration token, or its Firebase installation id (FID)."""

    device_id: DeviceId = Field(description="the app's stable id for this installation")
    fcm_token: (
        Annotated[str, StringConstraints(min_length=20, max_length=4096, pattern=r"^[A-Za-z0-9_:\-]+$")] | None
    ) = None
    fid: Annotated[str, StringConstraints(pattern=FID)] | None = None
    platform: Literal["ios", "android", "web"]
    app_version: Annotated[str, StringConstraints(max_length=64)] | None = None  # semver with build metadata fits
    locale: Locale | None = None
    timezone: TimeZoneName | None = None

    @model_validator(mode="after")
    def _one_address(self) -> DeviceIn:
        if (self.fcm_token is None) == (self.fid is None):
            raise ValueError("give exactly one of fcm_token or fid. Fix: send the FCM registration token or the FID")
        return self


class DeviceOut(BaseModel):
    device_id: str
    token_kind: Literal["fcm_token", "fid"]
    platform: str
    refreshed_at: AwareDatetime
    targetable_until: AwareDatetime = Field(description="pushes stop going here after this unless it is refreshed")


MAX_PAUSE = timedelta(days=366)


class QuietHoursOut(BaseModel):
    start: str = Field(description="HH:MM in the user's zone, e.g. 21:30")
    end: str = Field(description="HH:MM; before start means the window crosses midnight")


class QuietHoursIn(Body):
    start: LocalTime = Field(description="HH:MM in the user's zone, e.g. 21:30")
    end: LocalTime = Field(description="HH:MM; before start means the window crosses midnight")

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHoursIn:
        if self.start == self.end:
            raise ValueError(
                f"start and end are both {self.start}: that window holds no time. "
                "Fix: give an end other than the start, e.g. 22:00 to 07:00, false for none, or null for the "
                "app's default"
            )
        return self


def _window_or_none(value: Any) -> str:
    return "[window]" if isinstance(value, dict | QuietHoursIn) else "[none]"  # a request's JSON, or a model to dump


def _false_only(value: Any) -> Literal[False]:
    if value is not False:
        raise ValueError(
            'is neither a window nor false. Fix: send {"start": "22:00", "end": "07:00"}, false for no quiet '
            "hours, or null for the app's default"
        )
    return False


# A window, or false for none: told apart by the value's type, so that a wrong window reports its own fields
# only (not also "should be false"); the tags are pydantic's labels, which error paths leave out.
QuietHoursChoice = Annotated[
    Annotated[QuietHoursIn, Tag("[window]")] | Annotated[Literal[False], PlainValidator(_false_only), Tag("[none]")],
    Discriminator(_window_or_none),
]


class PreferencesIn(Body):
    """PUT /v1/me/preferences: only the fields sent change; null resets a field (the zone and locale to the
    app's latest report, the others to the app's default)."""

    categories: dict[str, bool] | None = Field(None, description="category id → on/off")
    quiet_hours: QuietHoursChoice | None = Field(
        None, description="the user's window; false: none (pushes at any hour); null: the app's default"
    )
    timezone: TimeZoneName | None = None
    locale: Locale | None = None
    paused_until: AwareDatetime | None = Field(
        None, description="no pushes until then (messages still reach the inbox)"
    )
    weekly_budget: Annotated[int, Field(ge=0)] | None = Field(None, description="pushes a week, at most the app's cap")

    @field_validator("paused_until")
    @classmethod
    def _within_a_year(cls, until: datetime | None) -> datetime | None:
        """A pause is a snooze: a year at most (stopping for good is what turning categories off is for)."""
        if until is None:
            return None
        try:
            until = until.astimezone(UTC)
        except OverflowError:
            raise ValueError("is before year 1 or after 9999 in UTC. Fix: send when the pause ends") from None
        if until > datetime.now(UTC) + MAX_PAUSE:
            raise ValueError("is more than a year ahead. Fix: pause for a year at most, or turn the categories off")
        return until


class PreferencesOut(BaseModel):
    categories: dict[str, bool]
    quiet_hours: QuietHoursOut | Literal[False] | None = Field(description="false: the user turned them off")
    timezone: str
    locale: str
    paused_until: AwareDatetime | None
    weekly_budget: int | None = Field(description="the user's own budget, else the app's weekly cap (null: none)")


class InboxMessageOut(BaseModel):
    message_id: str = Field(description="the same id as the push that carried it, if one did")
    trigger: str
    category: str
    title: str
    body: str
    deep_link: str | None
    actions: list[dict[str, Any]]
    pushed: bool = Field(description="whether it also went out as a push (else: why not, in push_reason)")
    push_reason: str | None
    held_until: AwareDatetime | None = Field(
        None, description="a push held by quiet hours: when it will be decided again (then pushed, or not)"
    )
    created_at: AwareDatetime
    read: bool
    opened_at: AwareDatetime | None


class InboxResponse(BaseModel):
    messages: list[InboxMessageOut] = Field(description="newest first; archived ones are left out")
    unread: int | None = Field(description="messages neither read nor archived; on the first page only")
    next_cursor: str | None

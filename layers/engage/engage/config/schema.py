"""The schema of engagement.yaml: what a product owner may write, checked field by field.

Every section has behaviour except notifications, which is validated for shape and references now and
delivered in a later release (docs/config.md, docs/gamification.md).
"""

from __future__ import annotations

import itertools
import math
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PlainSerializer,
    PlainValidator,
    PositiveInt,
    PrivateAttr,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from .expressions import CelExpr, Expr, compile_expression
from .types import Duration, Identifier, Locale, LocalTime, PropertyKey, TimeZoneName, format_duration


class Strict(BaseModel):
    """Unknown keys are errors: a typo in the YAML must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# ---------------------------------------------------------------- events, currencies, rules, levels


def _enum_value(value: Any, info: ValidationInfo) -> str | int | float:
    # Checked by hand: pydantic's union would read `true` as 1 and report a mapping three times over. A config
    # published before this check keeps loading as it did (see loader.validate_config_data).
    if isinstance(value, bool) and (info.context or {}).get("published"):
        return int(value)
    if isinstance(value, bool):
        raise ValueError(
            f"enum value {yaml_number(value)} is true/false, which no string or number property can be. "
            f"Fix: quote it ('{yaml_number(value)}') for text, or drop the enum from a boolean property"
        )
    if not isinstance(value, str | int | float):
        raise ValueError(f"enum value {value!r:.60} is not text or a number. Fix: list plain values, e.g. [run, ride]")
    return value


EnumValue = Annotated[
    str | int | float,
    PlainValidator(_enum_value),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "number"}]}),
]


class PropertySpec(Strict):
    type: Literal["string", "integer", "number", "boolean"]
    min: float | None = None
    max: float | None = None
    enum: list[EnumValue] | None = None
    required: bool = False

    @model_validator(mode="after")
    def _range(self) -> PropertySpec:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {yaml_number(self.min)} is greater than max {yaml_number(self.max)}. Fix: swap them")
        return self


def yaml_number(value: float) -> str:
    """A number (or true/false) as the file wrote it: 1500000 (not 1500000.0 or 1.5e+06), 2.5, .nan, .inf."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)  # 1e+30 stays 1e+30


def fits_type(value: Any, kind: str) -> bool:
    """Whether a value is of a property type: 12.0 is an integer, True is a boolean but not a number."""
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    return numeric and (kind == "number" or isinstance(value, int) or value.is_integer())


class EventSpec(Strict):
    source: Literal["client", "server"] = Field(
        "client", description="client: sent by the app with the user's JWT; server: only from your backend"
    )
    properties: dict[PropertyKey, PropertySpec] = {}  # names CEL can read: checked when published
    description: str | None = None


class CurrencySpec(Strict):
    name: str
    description: str | None = None


# The most one award may pay: far above any sane reward, far below what a balance, a board's sort key
# (15 digits) or DynamoDB's 38-digit numbers could not hold after years of awards.
MAX_AWARD = 10**9


def _award_amount(value: Any) -> int | Expr:
    if isinstance(value, bool):
        raise ValueError(
            f"award amount {yaml_number(value)} is true/false. Fix: write a whole number or a CEL expression"
        )
    if isinstance(value, float):
        raise ValueError(f"award amount {value} is not a whole number. Fix: write a whole number or a CEL expression")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"award amount {value} is negative. Fix: awards are zero or more")
        return value
    return compile_expression(value)


AwardAmount = Annotated[
    int | Expr,
    PlainValidator(_award_amount),
    PlainSerializer(lambda amount: amount if isinstance(amount, int) else amount.source),
    WithJsonSchema(
        {"anyOf": [{"type": "integer", "minimum": 0, "maximum": MAX_AWARD}, {"type": "string", "description": "CEL"}]}
    ),
]
# Currency → constant amount or CEL expression over the event, e.g. {xp: "event.minutes * 2", coins: 5}.
Award = Annotated[dict[Identifier, AwardAmount], Field(min_length=1)]


class Limit(Strict):
    per: Literal["day", "week"] = Field(description="counted in the user's local calendar")
    max: PositiveInt


class Rule(Strict):
    id: Identifier
    on: Identifier = Field(description="event type this rule reacts to")
    when: CelExpr | None = None
    award: Award
    limit: Limit | None = None


class Levels(Strict):
    currency: Identifier = Field(description="levels follow the lifetime total earned of this currency")
    thresholds: list[NonNegativeInt] = Field(min_length=1)
    names: list[str] | None = None

    @field_validator("thresholds")
    @classmethod
    def _increasing(cls, thresholds: list[int]) -> list[int]:
        if thresholds[0] != 0:
            raise ValueError(
                f"the first threshold is {thresholds[0]}. Fix: the first level starts at 0, e.g. [0, 100, 300]"
            )
        for before, after in itertools.pairwise(thresholds):
            if after <= before:
                raise ValueError(
                    f"thresholds must strictly increase, but {after} follows {before}. Fix: sort them, no repeats"
                )
        return thresholds

    @model_validator(mode="after")
    def _one_name_per_level(self) -> Levels:
        if self.names is not None and len(self.names) != len(self.thresholds):
            raise ValueError(
                f"{len(self.names)} names for {len(self.thresholds)} thresholds. Fix: give one name per threshold"
            )
        return self

    def name_of(self, index: int) -> str:
        return self.names[index] if self.names else f"Level {index + 1}"


# ---------------------------------------------------------------- badges, streaks, quests, boards


class EventFilter(Strict):
    event: Identifier
    when: CelExpr | None = None


class PropertyFilter(EventFilter):
    property: Identifier


class Criteria(Strict):
    count: EventFilter | None = None
    sum: PropertyFilter | None = None
    distinct: PropertyFilter | None = None
    gte: PositiveInt | None = None
    within: Duration | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Criteria:
        kinds = [k for k in ("count", "sum", "distinct") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"found {kinds or 'no'} criteria kinds. Fix: give exactly one of count, sum, distinct")
        return self

    @property
    def filter(self) -> EventFilter:
        return self.count or self.sum or self.distinct  # type: ignore[return-value]


class Tier(Strict):
    name: str
    gte: PositiveInt


# The most different values a `distinct` badge counts to: each is kept (a 12-character digest) in the user
# item (also once earned: a tier added later counts on from them), which DynamoDB caps at 400 KB in all.
MAX_DISTINCT = 1000
# A window keeps at most this many recent events: enough for any sensible "N events within T", and it
# keeps the user item (rewritten by every ingest) small.
MAX_WINDOW_ENTRIES = 100


class Badge(Strict):
    id: Identifier
    name: str
    description: str | None = None
    criteria: Criteria
    tiers: list[Tier] | None = Field(None, min_length=1)
    secret: bool = False
    reward: Award | None = None

    @model_validator(mode="after")
    def _threshold(self) -> Badge:
        if self.tiers and self.criteria.gte is not None:
            raise ValueError("both criteria.gte and tiers are set. Fix: use tiers' gte values, or one criteria.gte")
        if not self.tiers and self.criteria.gte is None:
            raise ValueError("no threshold. Fix: add criteria.gte (e.g. gte: 1) or a list of tiers")
        if self.tiers:
            values = [tier.gte for tier in self.tiers]
            if values != sorted(set(values)):
                raise ValueError(f"tier thresholds {values} must strictly increase. Fix: order Bronze → Gold")
        return self


class Freezes(Strict):
    earn_every: PositiveInt
    max: PositiveInt


class Streak(Strict):
    id: Identifier
    name: str
    on: Identifier
    when: CelExpr | None = None
    period: Literal["day", "week"] = "day"
    freezes: Freezes | None = None
    milestones: list[PositiveInt] = []


class QuestStep(Strict):
    id: Identifier
    count: EventFilter | None = None
    sum: PropertyFilter | None = None
    gte: PositiveInt

    @model_validator(mode="after")
    def _one_kind(self) -> QuestStep:
        if (self.count is None) == (self.sum is None):
            raise ValueError("a step needs exactly one of count or sum. Fix: e.g. count: {event: app_opened}")
        return self

    @property
    def filter(self) -> EventFilter:
        return self.count or self.sum  # type: ignore[return-value]


class Quest(Strict):
    id: Identifier
    name: str
    within: Duration | None = None
    recurrence: Literal["daily", "weekly"] | None = None
    steps: list[QuestStep] = Field(min_length=1)
    reward: Award | None = None


class Metric(Strict):
    currency: Identifier


class BoardReward(Strict):
    rank_lte: PositiveInt
    award: Award


class Leaderboard(Strict):
    id: Identifier
    name: str
    metric: Metric
    period: Literal["day", "week", "month", "all"]
    timezone: TimeZoneName = "UTC"
    rewards: list[BoardReward] = []
    shards: int = Field(
        10, ge=1, le=100, description="write shards: more spread a hot board's writes; top-N reads one query each"
    )


class QuietHours(Strict):
    start: LocalTime
    end: LocalTime


class Caps(Strict):
    # At most 100: the push log the caps count keeps a user's newest 100 pushes (store.inbox.PUSH_LOG_SIZE).
    per_day: Annotated[int, Field(gt=0, le=100)] | None = None
    per_week: Annotated[int, Field(gt=0, le=100)] | None = None
    min_gap: Duration | None = None

    @field_validator("min_gap")
    @classmethod
    def _within_a_week(cls, value: timedelta | None) -> timedelta | None:
        # The push log looks back 8 days; a longer gap could not be kept (and would mean almost no pushes).
        if value is not None and not timedelta(0) < value <= timedelta(days=7):
            raise ValueError(f"min_gap {format_duration(value)} is out of range. Fix: use more than 0 and at most 7d")
        return value


class NotificationDefaults(Strict):
    quiet_hours: QuietHours | None = None
    caps: Caps = Caps()


class Category(Strict):
    name: str
    description: str | None = None


class Template(Strict):
    title: str
    body: str
    deep_link: str | None = None


class LocalizedTemplate(Strict):
    title: str | None = None
    body: str | None = None
    deep_link: str | None = None


class Action(Strict):
    id: Identifier
    title: str
    deep_link: str | None = None


class Trigger(Strict):
    id: Identifier
    on: Identifier = Field(description="a fact type such as badge_awarded, or 'schedule'")
    category: Identifier
    priority: int = Field(5, ge=0, le=10)
    valid_for: Duration
    when: CelExpr | None = None
    at_local: LocalTime | None = None
    streak: Identifier | None = None
    leaderboard: Identifier | None = None
    collapse_key: str | None = None
    template: Template
    locales: dict[Locale, LocalizedTemplate] = {}
    actions: list[Action] = []

    @model_validator(mode="after")
    def _schedule(self) -> Trigger:
        if self.on == "schedule" and self.at_local is None:
            raise ValueError('a schedule trigger needs at_local. Fix: add e.g. at_local: "19:00"')
        return self


class Notifications(Strict):
    defaults: NotificationDefaults = NotificationDefaults()
    categories: dict[Identifier, Category] = Field(min_length=1)
    triggers: list[Trigger] = []


# ---------------------------------------------------------------- the whole file


# The longest late window a config may set (dedupe markers live 35 days: a replay never outlives its marker).
MAX_LATE_WINDOW = timedelta(days=30)


class EngagementConfig(Strict):
    """One product's engagement.yaml, validated and with every expression compiled."""

    app: Identifier
    default_timezone: TimeZoneName = "UTC"
    default_locale: Locale = "en"
    late_window: Duration = Field(
        timedelta(days=7),
        le=MAX_LATE_WINDOW,
        description="how old an event may be and still count; at most 30d (dedupe markers live 35d)",
    )
    events: dict[Identifier, EventSpec] = Field(min_length=1)
    currencies: dict[Identifier, CurrencySpec] = Field(min_length=1)
    rules: list[Rule] = []
    levels: Levels | None = None
    badges: list[Badge] = []
    streaks: list[Streak] = []
    quests: list[Quest] = []
    leaderboards: list[Leaderboard] = Field(
        [], max_length=20, description="at most 20: each board a user scores on takes a row in the ingest transaction"
    )
    notifications: Notifications | None = None

    _by_event: dict[str, dict[str, list[Any]]] = PrivateAttr(default_factory=dict)

    def model_post_init(self, _context: Any) -> None:
        def index(kind: str, items: list[Any], event_of: Any) -> None:
            for item in items:
                for event in event_of(item):
                    bucket = self._by_event.setdefault(event, {}).setdefault(kind, [])
                    if not bucket or bucket[-1] is not item:  # a quest with two steps on one event is listed once
                        bucket.append(item)

        index("rules", self.rules, lambda rule: [rule.on])
        index("badges", self.badges, lambda badge: [badge.criteria.filter.event])
        index("streaks", self.streaks, lambda streak: [streak.on])
        index("quests", self.quests, lambda quest: [step.filter.event for step in quest.steps])

    def rules_for(self, event_type: str) -> list[Rule]:
        """The rules reacting to one event type, in config order (an O(1) lookup per event)."""
        return self._by_event.get(event_type, {}).get("rules", [])

    def badges_for(self, event_type: str) -> list[Badge]:
        return self._by_event.get(event_type, {}).get("badges", [])

    def streaks_for(self, event_type: str) -> list[Streak]:
        return self._by_event.get(event_type, {}).get("streaks", [])

    def quests_for(self, event_type: str) -> list[Quest]:
        return self._by_event.get(event_type, {}).get("quests", [])

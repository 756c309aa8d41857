"""Checks across sections: every name a config uses must be declared, every expression must fit its scope."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Literal

from .expressions import Expr, ExpressionError
from .issues import Issue
from .schema import (
    MAX_AWARD,
    MAX_DISTINCT,
    MAX_LATE_WINDOW,
    MAX_WINDOW_ENTRIES,
    Badge,
    EngagementConfig,
    EventFilter,
    PropertyFilter,
    PropertySpec,
    Trigger,
    fits_type,
    yaml_number,
)
from .types import PROPERTY_NAME, format_duration, format_in_days

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # what CEL's integers and the API's integer properties hold

# What each kind of expression can read (see docs/config.md).
EVENT_SCOPE = {"event", "local", "user"}  # rules, and the event filters of badges, streaks and quests
TRIGGER_SCOPE = {"fact", "user", "streak", "leaderboard", "badge", "level", "quest"}
FACT_TYPES = {
    "points_awarded", "level_up", "badge_awarded", "streak_extended", "streak_frozen", "streak_broken",
    "streak_milestone", "quest_step_completed", "quest_completed", "quest_expired", "rank_lost",
    "leaderboard_reward", "schedule",
}  # fmt: skip


def _choices(names: Iterable[str]) -> str:
    return ", ".join(sorted(names)) or "(none declared)"


def check_references(config: EngagementConfig) -> list[Issue]:
    """All cross-section problems of a schema-valid config: duplicate ids first, then section by section."""
    return list(_issues(config))


def _issues(cfg: EngagementConfig) -> Iterator[Issue]:
    yield from _duplicates(("rules",), [r.id for r in cfg.rules])
    yield from _duplicates(("badges",), [b.id for b in cfg.badges])
    yield from _duplicates(("streaks",), [s.id for s in cfg.streaks])
    yield from _duplicates(("quests",), [q.id for q in cfg.quests])
    yield from _duplicates(("leaderboards",), [b.id for b in cfg.leaderboards])

    yield from _settings(cfg)
    for event_type, spec in cfg.events.items():
        for name, prop in spec.properties.items():
            yield from _property(("events", event_type, "properties", name), name, prop)

    for i, rule in enumerate(cfg.rules):
        at = ("rules", i)
        yield from _event(cfg, (*at, "on"), rule.on)
        if rule.when is not None:
            yield from _expression(cfg, (*at, "when"), rule.when, EVENT_SCOPE, rule.on, "condition")
        yield from _award(cfg, (*at, "award"), rule.award, EVENT_SCOPE, rule.on)

    if cfg.levels is not None:
        yield from _currency(cfg, ("levels", "currency"), cfg.levels.currency)

    yield from _user_item_size(cfg)
    for i, badge in enumerate(cfg.badges):
        yield from _distinct_bound(cfg, ("badges", i), badge)
        yield from _filter(cfg, ("badges", i, "criteria"), badge.criteria.filter, badge.criteria)
        yield from _award(cfg, ("badges", i, "reward"), badge.reward or {}, EVENT_SCOPE, badge.criteria.filter.event)

    for i, streak in enumerate(cfg.streaks):
        yield from _event(cfg, ("streaks", i, "on"), streak.on)
        if streak.when is not None:
            yield from _expression(cfg, ("streaks", i, "when"), streak.when, EVENT_SCOPE, streak.on, "condition")

    for i, quest in enumerate(cfg.quests):
        yield from _duplicates(("quests", i, "steps"), [step.id for step in quest.steps])
        for j, step in enumerate(quest.steps):
            yield from _filter(cfg, ("quests", i, "steps", j), step.filter, step)
        events = {step.filter.event for step in quest.steps}
        event = events.pop() if len(events) == 1 else None  # a reward over several event types reads no event
        scope = EVENT_SCOPE if event else {"user", "local"}
        yield from _award(cfg, ("quests", i, "reward"), quest.reward or {}, scope, event)

    for i, board in enumerate(cfg.leaderboards):
        yield from _currency(cfg, ("leaderboards", i, "metric", "currency"), board.metric.currency)
        if board.period == "all" and board.rewards:  # rewards are paid when a period closes; this one never does
            yield Issue(
                ("leaderboards", i, "rewards"),
                "an all-time board never closes, so its rewards would never be paid. "
                "Fix: give the board a period (day, week, month), or remove its rewards",
            )
        ranks = [reward.rank_lte for reward in board.rewards]
        for j, rank in enumerate(ranks):
            if rank in ranks[:j]:
                yield Issue(
                    ("leaderboards", i, "rewards", j, "rank_lte"),
                    f"rank_lte {rank} is given twice; only one of them would ever pay. Fix: merge their awards",
                )
        for j, reward in enumerate(board.rewards):
            yield from _award(cfg, ("leaderboards", i, "rewards", j, "award"), reward.award, {"user", "local"}, None)

    if cfg.notifications is not None:
        yield from _notifications(cfg)


def _notifications(cfg: EngagementConfig) -> Iterator[Issue]:
    # Imported here: engage.notify reads the config schema, so importing it at the top would be circular.
    from ..notify.templates import template_problems

    assert cfg.notifications is not None
    streaks = {s.id for s in cfg.streaks}
    boards = {b.id for b in cfg.leaderboards}
    caps = cfg.notifications.defaults.caps
    if caps.per_day is not None and caps.per_week is not None and caps.per_day > caps.per_week:
        yield Issue(
            ("notifications", "defaults", "caps", "per_day"),
            f"per_day {caps.per_day} is more than per_week {caps.per_week}, so it can never be reached. "
            "Fix: lower per_day or raise per_week",
        )
    yield from _duplicates(("notifications", "triggers"), [t.id for t in cfg.notifications.triggers])
    for i, trigger in enumerate(cfg.notifications.triggers):
        at = ("notifications", "triggers", i)
        known_fact = trigger.on in FACT_TYPES
        if not known_fact:
            yield Issue((*at, "on"), f"unknown fact type {trigger.on!r}. Fix: use one of {_choices(FACT_TYPES)}")
        if trigger.category not in cfg.notifications.categories:
            yield Issue(
                (*at, "category"),
                f"unknown category {trigger.category!r}. Fix: declare it under notifications.categories "
                f"or use one of {_choices(cfg.notifications.categories)}",
            )
        if trigger.streak is not None and trigger.streak not in streaks:
            yield Issue((*at, "streak"), f"unknown streak {trigger.streak!r}. Fix: use one of {_choices(streaks)}")
        if trigger.leaderboard is not None and trigger.leaderboard not in boards:
            yield Issue(
                (*at, "leaderboard"),
                f"unknown leaderboard {trigger.leaderboard!r}. Fix: use one of {_choices(boards)}",
            )
        if trigger.on != "schedule" and trigger.at_local is not None:
            yield Issue(
                (*at, "at_local"),
                f"at_local is read only by schedule triggers, and this one fires on {trigger.on}. "
                "Fix: remove at_local, or use on: schedule",
            )
        if trigger.leaderboard is not None and trigger.on not in BOARD_TRIGGERS:
            yield Issue(
                (*at, "leaderboard"),
                f"leaderboard limits a trigger to one board's facts, and {trigger.on} facts name no board, so it "
                f"would never fire. Fix: remove leaderboard, or use on: {_choices(BOARD_TRIGGERS)}",
            )
        yield from _duplicates((*at, "actions"), [action.id for action in trigger.actions])
        yield from _locale_collisions((*at, "locales"), trigger)
        if not known_fact:  # what `when` and the texts may read follows from the fact: checking them would only echo
            continue
        if trigger.when is not None:
            yield from _trigger_condition(cfg, (*at, "when"), trigger)
        for where, problem in template_problems(trigger):  # a missing placeholder fails here, not at send time
            yield Issue((*at, *where), problem)


def _locale_collisions(path: tuple, trigger: Trigger) -> Iterator[Issue]:
    """Locale keys are matched without case, and `_` as `-`: two that differ only so would hide one another."""
    from ..notify.templates import normalise_locale

    seen: dict[str, str] = {}
    for locale in trigger.locales:
        first = seen.setdefault(normalise_locale(locale), locale)
        if first != locale:
            yield Issue(
                (*path, locale),
                f"{locale!r} is the same language tag as {first!r} (tags ignore case, and _ is read as -), so one "
                "would hide the other. Fix: merge them under one key",
            )


# `leaderboard:` filters the facts that name a board, and puts the board in scope of a schedule trigger.
BOARD_TRIGGERS = {"rank_lost", "leaderboard_reward", "schedule"}
LONGEST = timedelta(days=3653)  # a duration longer than 10 years is a typo


def _settings(cfg: EngagementConfig) -> Iterator[Issue]:
    """Settings that would never take effect, or a duration nobody means."""
    if cfg.late_window < timedelta(hours=1):
        yield Issue(
            ("late_window",),
            f"a late_window of {format_duration(cfg.late_window)} refuses the events of an app that was offline "
            "for minutes. Fix: at least 1h (m is minutes; the default is 7d)",
        )
    quiet = cfg.notifications.defaults.quiet_hours if cfg.notifications else None
    if quiet is not None and quiet.start == quiet.end:
        yield Issue(
            ("notifications", "defaults", "quiet_hours"),
            f"quiet hours from {quiet.start} to {quiet.end} are no window at all. "
            "Fix: give an end other than the start, e.g. 21:30 to 08:00, or leave quiet_hours out",
        )
    durations = [
        *((("badges", i, "criteria", "within"), b.criteria.within) for i, b in enumerate(cfg.badges)),
        *((("quests", i, "within"), q.within) for i, q in enumerate(cfg.quests)),
        *(
            (("notifications", "triggers", i, "valid_for"), t.valid_for)
            for i, t in enumerate(cfg.notifications.triggers if cfg.notifications else [])
        ),
    ]
    for path, duration in durations:
        if duration is not None and duration > LONGEST:
            yield Issue(path, f"{format_duration(duration)} is longer than 10 years. Fix: write a shorter duration")


def _award(cfg: EngagementConfig, path: tuple, award: dict, scope: set[str], event: str | None) -> Iterator[Issue]:
    for currency, amount in award.items():
        yield from _currency(cfg, (*path, currency), currency)
        if isinstance(amount, Expr):
            yield from _expression(cfg, (*path, currency), amount, scope, event, "amount")
            yield from _constant_amount((*path, currency), amount)
        elif amount > MAX_AWARD:
            yield Issue(
                (*path, currency), f"award amount {amount} is more than one award may pay. Fix: at most {MAX_AWARD:,}"
            )
        elif amount == 0:  # as for a constant expression: an award that pays nothing is a mistake
            yield Issue((*path, currency), "award amount 0 pays nothing. Fix: write 1 or more, or remove this currency")


def _constant_amount(path: tuple, amount: Expr) -> Iterator[Issue]:
    """An expression that reads nothing is a constant: one that would always pay nothing is refused now."""
    if amount.program.variables():
        return
    try:
        value = amount.evaluate({})
    except ExpressionError:
        return  # a failure is the expression checks' to report
    if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value <= MAX_AWARD:
        yield Issue(
            path,
            f"{amount.source!r} is always {value!r}, which pays nothing: an award is a whole number from 1 to "
            f"{MAX_AWARD:,} (points are never taken away). Fix: write an amount in that range",
        )


def _property(path: tuple, name: str, prop: PropertySpec) -> Iterator[Issue]:
    if not re.match(PROPERTY_NAME, name):
        yield Issue(path, f"{name!r} is not a name CEL can read as event.{name}. Fix: letters, digits and _ only")
    if prop.type in ("string", "boolean"):
        for bound in ("min", "max"):
            if getattr(prop, bound) is not None:  # the engine bounds numbers only: this would check nothing
                yield Issue(
                    (*path, bound),
                    f"{bound} bounds numbers; a {prop.type} property is not checked against it. Fix: remove it"
                    + (" (a string's allowed values go in enum)" if prop.type == "string" else ""),
                )
    if prop.type in ("integer", "number"):
        yield from _numeric_bounds(path, prop)
    if prop.enum is None:
        return
    if prop.type == "boolean" or not prop.enum:  # an enum no value can match rejects every event that has it
        yield Issue(
            (*path, "enum"), f"an enum of {prop.enum} fits no {prop.type} property. Fix: list its allowed values"
        )
        return
    wrong = [value for value in prop.enum if not fits_type(value, prop.type)]
    if wrong:
        yield Issue(
            (*path, "enum"), f"enum values {wrong} are not of type {prop.type}. Fix: write them as {prop.type}s"
        )


def _numeric_bounds(path: tuple, prop: PropertySpec) -> Iterator[Issue]:
    """Bounds an event's value can be checked against: finite, and for an integer within the 64 bits events carry."""
    for bound in ("min", "max"):
        value = getattr(prop, bound)
        if value is not None and not math.isfinite(value):  # .nan would check nothing, .inf bounds nothing
            yield Issue(
                (*path, bound), f"{yaml_number(value)} is not a finite number. Fix: write a number, or leave it out"
            )
        elif value is not None and prop.type == "integer" and not INT64_MIN <= value <= INT64_MAX:
            yield Issue(
                (*path, bound),
                f"{yaml_number(value)} is outside the 64-bit range an integer property's values have. "
                f"Fix: leave it out, or use a value from {INT64_MIN} to {INT64_MAX}",
            )
    if prop.type == "integer":
        outside = [v for v in prop.enum or [] if isinstance(v, int | float) and not INT64_MIN <= v <= INT64_MAX]
        if outside:
            yield Issue(
                (*path, "enum"),
                f"enum values {', '.join(yaml_number(v) for v in outside)} are outside the 64-bit range an integer "
                "property's values have. Fix: remove them",
            )


# What a user's item may grow to with what the config keeps per user (DynamoDB holds at most 400 KB per item;
# the rest is room for balances, streaks, quests, boards and the profile).
USER_ITEM_BUDGET = 300_000
_DIGEST_BYTES = 15  # "0123456789ab", in the progress JSON: one distinct value met
_WINDOW_ENTRY_BYTES = 36  # [1763912345.123456,"0123456789ab"], one event in a badge's window
# Limit counters are kept for the longest late window and 2 days more (engine.ingest._prune_counters), and one
# period ahead (the 5 minutes an event may be in the future can cross midnight).
_COUNTER_PERIODS = {"day": MAX_LATE_WINDOW.days + 4, "week": MAX_LATE_WINDOW.days // 7 + 3}


def _user_item_size(cfg: EngagementConfig) -> Iterator[Issue]:
    """Refuse a config whose per-user progress could outgrow a DynamoDB item: the user's events would then fail."""
    parts: dict[tuple, int] = {}
    for i, badge in enumerate(cfg.badges):
        if badge.criteria.within is not None:
            parts[("badges", i)] = MAX_WINDOW_ENTRIES * _WINDOW_ENTRY_BYTES
        elif badge.criteria.distinct is not None:
            parts[("badges", i)] = min(_highest(badge), MAX_DISTINCT) * _DIGEST_BYTES
    for i, rule in enumerate(cfg.rules):
        if rule.limit is not None:  # a counter per period: "<rule id>|2026-11-23" and its number
            parts[("rules", i)] = _COUNTER_PERIODS[rule.limit.per] * (len(rule.id) + 16)
    total = sum(parts.values())
    if total <= USER_ITEM_BUDGET:
        return
    largest = sorted(parts, key=parts.__getitem__, reverse=True)
    named = ", ".join(f"{_named(cfg, path)} {parts[path] / 1000:.1f} KB" for path in largest[:3])
    yield Issue(
        largest[0],
        f"what this config keeps per user could grow to {total / 1000:.0f} KB, and a user's progress is one DynamoDB "
        f"item of at most 400 KB (this leaves {USER_ITEM_BUDGET // 1000} KB for it). The largest: {named}. Fix: "
        "lower the highest tier of distinct badges (each value met is kept), use fewer within windows or limited rules",
    )


def _named(cfg: EngagementConfig, path: tuple) -> str:
    section, index = path
    return f"badge {cfg.badges[index].id}" if section == "badges" else f"rule {cfg.rules[index].id}"


def _highest(badge: Badge) -> int:
    """The value of the badge's last tier (or of the badge): a distinct badge stops keeping values there."""
    return badge.tiers[-1].gte if badge.tiers else badge.criteria.gte or 1


def _distinct_bound(cfg: EngagementConfig, path: tuple, badge: Badge) -> Iterator[Issue]:
    highest = _highest(badge)
    distinct = badge.criteria.distinct
    if distinct is not None and distinct.event in cfg.events:
        spec = cfg.events[distinct.event].properties.get(distinct.property)
        enum = spec.enum if spec is not None and all(fits_type(v, spec.type) for v in spec.enum or []) else None
        if enum and highest > len(enum):  # an enum of the wrong type is reported apart
            yield Issue(
                path,
                f"{highest} different values of {distinct.property} can never be seen: its enum has "
                f"{len(enum)}. Fix: at most {len(enum)}, or add values to the enum",
            )
    if badge.criteria.distinct is not None and highest > MAX_DISTINCT:
        yield Issue(
            path,
            f"a distinct badge up to {highest} values would keep them all in the user's item (400 KB at most). "
            f"Fix: at most {MAX_DISTINCT}",
        )
    counted = badge.criteria.count is not None or badge.criteria.distinct is not None
    if counted and badge.criteria.within is not None and highest > MAX_WINDOW_ENTRIES:
        yield Issue(
            path,
            f"a window keeps a user's latest {MAX_WINDOW_ENTRIES} events, so {highest} within "
            f"{format_duration(badge.criteria.within)} can never be reached. Fix: at most {MAX_WINDOW_ENTRIES}, "
            "or leave out within",
        )
    summed = badge.criteria.sum
    spec = cfg.events[summed.event].properties.get(summed.property) if summed and summed.event in cfg.events else None
    if badge.criteria.within is not None and spec is not None and spec.max and highest > MAX_WINDOW_ENTRIES * spec.max:
        yield Issue(
            path,
            f"a window keeps a user's latest {MAX_WINDOW_ENTRIES} events, each with {summed.property} at most "  # type: ignore[union-attr]
            f"{yaml_number(spec.max)}, so a sum of {highest} within {format_in_days(badge.criteria.within)} can never "
            f"be reached. Fix: at most {yaml_number(MAX_WINDOW_ENTRIES * spec.max)}, or leave out within",
        )


def _duplicates(section: tuple[str | int, ...], ids: list[str]) -> Iterator[Issue]:
    seen: set[str] = set()
    for index, item_id in enumerate(ids):
        if item_id in seen:
            yield Issue((*section, index, "id"), f"id {item_id!r} is used twice. Fix: give each entry its own id")
        seen.add(item_id)


def _event(cfg: EngagementConfig, path: tuple, name: str) -> Iterator[Issue]:
    if name not in cfg.events:
        yield Issue(path, f"unknown event {name!r}. Fix: declare it under events or use one of {_choices(cfg.events)}")


def _currency(cfg: EngagementConfig, path: tuple, name: str) -> Iterator[Issue]:
    if name not in cfg.currencies:
        yield Issue(
            path,
            f"unknown currency {name!r}. Fix: declare it under currencies or use one of {_choices(cfg.currencies)}",
        )


def _filter(cfg: EngagementConfig, path: tuple, flt: EventFilter, owner: object) -> Iterator[Issue]:
    kind = next(k for k in ("count", "sum", "distinct") if getattr(owner, k, None) is flt)
    yield from _event(cfg, (*path, kind, "event"), flt.event)
    if flt.event not in cfg.events:
        return
    properties = cfg.events[flt.event].properties
    if isinstance(flt, PropertyFilter) and flt.property not in properties:
        yield Issue(
            (*path, kind, "property"),
            f"event {flt.event!r} has no property {flt.property!r}. Fix: declare it under "
            f"events.{flt.event}.properties or use one of {_choices(properties)}",
        )
    elif kind == "sum" and properties[flt.property].type not in ("integer", "number"):  # type: ignore[attr-defined]
        yield Issue(
            (*path, kind, "property"),
            f"{flt.property!r} is a {properties[flt.property].type}, which cannot be summed. "  # type: ignore[attr-defined]
            "Fix: sum an integer or number property, or count the events instead",
        )
    if flt.when is not None:
        yield from _expression(cfg, (*path, kind, "when"), flt.when, EVENT_SCOPE, flt.event, "condition")


Yields = Literal["condition", "amount"]


def _expression(
    cfg: EngagementConfig, path: tuple, expr: Expr, scope: set[str], event: str | None, yields: Yields
) -> Iterator[Issue]:
    unknown = expr.unknown_variables(scope)
    if unknown:
        yield Issue(
            path, f"{expr.source!r} reads {', '.join(unknown)}, which is not available here. Fix: use {_choices(scope)}"
        )
    declared: dict[str, PropertySpec] = {}
    undeclared: list[str] = []
    if event is not None and event in cfg.events:
        declared = cfg.events[event].properties
        undeclared = sorted(expr.event_properties() - set(declared))
        for name in undeclared:
            yield Issue(
                path,
                f"{expr.source!r} reads event.{name}, but event {event!r} declares no property {name!r}. "
                f"Fix: declare it under events.{event}.properties or use one of {_choices(declared)}",
            )
    if unknown or undeclared or (event is not None and event not in cfg.events):
        return
    sample = {
        "event": {name: _sample_values(spec)[0] for name, spec in declared.items()},
        "local": {"date": "2026-01-05", "weekday": 1, "hour": 12, "minute": 0},
        "user": {"level": 1, "balances": _currencies(cfg), "earned": _currencies(cfg)},
    }
    fields = _unknown_fields(cfg, expr, {root: sample[root] for root in ("local", "user")}, "here")
    fields += _literal_problems(expr, sample, {name: spec.enum for name, spec in declared.items() if spec.enum})
    yield from (Issue(path, problem) for problem in fields)
    if fields:
        return
    # One value per property at a time in turn (its min, max, each enum value): a branch that only some events
    # take (`event.minutes >= 60 ? event.minutes * 1.5 : …`) is evaluated too.
    variants = [sample] + [
        {**sample, "event": {**sample["event"], name: value}}
        for name, spec in declared.items()
        for value in _sample_values(spec)[1:]
    ]
    for variant in variants:
        problems = list(_type_check(path, expr, variant, yields))
        if problems:
            yield problems[0]
            return


def _trigger_condition(cfg: EngagementConfig, path: tuple, trigger: Trigger) -> Iterator[Issue]:
    """A trigger's `when`: the names it reads, then one evaluation on sample values of the fact it listens to
    (a typo or a comparison of a number with text would otherwise never fire, logged only at send time)."""
    assert trigger.when is not None
    expr = trigger.when
    unknown = expr.unknown_variables(TRIGGER_SCOPE)
    if unknown:
        yield Issue(
            path,
            f"{expr.source!r} reads {', '.join(unknown)}, which is not available here. "
            f"Fix: use {_choices(TRIGGER_SCOPE)}",
        )
        return
    sample = trigger_sample(cfg, trigger)
    fields = _unknown_fields(cfg, expr, sample, f"for a {trigger.on} trigger") + _literal_problems(expr, sample, {})
    yield from (Issue(path, problem) for problem in fields)
    if not fields:
        yield from _type_check(path, expr, sample, "condition")


# Fields of facts and of what they are about that hold numbers or true/false (the others hold text).
_NUMBERS = {
    "level", "total", "value", "tier_index", "length", "current_length", "longest", "freezes", "freezes_left", "previous_length",
    "new_rank", "score", "rank", "amount", "balance", "number",
}  # fmt: skip
_BOOLEANS = {"secret", "done_today", "at_risk"}
_STREAK_FACTS = {"streak_extended", "streak_frozen", "streak_broken", "streak_milestone"}


def trigger_sample(cfg: EngagementConfig, trigger: Trigger) -> dict[str, dict[str, object]]:
    """What a trigger's `when` reads, with a sample value of the right type in each field."""
    # Imported here: engage.notify reads the config schema, so importing it at the top would be circular.
    from ..notify.templates import available_for

    def value(field: str) -> object:
        if field in _BOOLEANS:
            return False
        if field in _NUMBERS or (field == "period" and trigger.on in _STREAK_FACTS):
            return 1
        return "text"

    sample: dict[str, dict[str, object]] = {root: {} for root in TRIGGER_SCOPE}
    for root, names in available_for(trigger).items():
        sample[root] = {name: value(name) for name in names}
    sample["user"] |= {"id": "text", "timezone": "UTC", "level": 1}
    sample["user"] |= {"balances": _currencies(cfg), "earned": _currencies(cfg)}
    return sample


def _currencies(cfg: EngagementConfig) -> dict[str, object]:
    return {currency: 0 for currency in cfg.currencies}


# `root.field` as written in an expression (outside the macro variables' own names).
# Each name may be a method instead (`user.balances.size()`, `user.earned.exists(c, …)`): then it is no field.
_FIELD = re.compile(r"(?<![\w.])([A-Za-z_]\w*)\.([A-Za-z_]\w*)(\s*\()?(?:\.([A-Za-z_]\w*)(\s*\()?)?")


def _unknown_fields(cfg: EngagementConfig, expr: Expr, sample: dict[str, dict[str, object]], where: str) -> list[str]:
    """Problems with the fields an expression reads of the sample's roots (`fact.new_rnk`, `user.balances.gems`)."""
    problems = []
    for root, field, field_call, sub, sub_call in _FIELD.findall(_masked(expr.source)[0]):
        if root not in sample or field_call:
            continue
        fields = sample[root]
        if not fields:
            problems.append(f"{expr.source!r} reads {root}.{field}, but {root} is empty {where}. Fix: read fact, "
                            f"user or what this trigger's fact is about")  # fmt: skip
        elif field not in fields:
            problems.append(f"{expr.source!r} reads {root}.{field}, which {root} does not have {where}. "
                            f"Fix: use one of {_choices(fields)}")  # fmt: skip
        elif sub and not sub_call and field in ("balances", "earned") and sub not in cfg.currencies:
            problems.append(f"{expr.source!r} reads {root}.{field}.{sub}, but {sub!r} is no currency. "
                            f"Fix: use one of {_choices(cfg.currencies)}")  # fmt: skip
    return sorted(set(problems))


# `root.field == 'text'` (or != , or the other way round): CEL answers false for a number compared with text,
# and for a value an enum does not have, without an error the sample evaluation could catch. Matched on the
# source with its texts masked (`'0'`, `'1'`, … index the texts), so a comparison is never read across them.
_COMPARED = re.compile(
    r"(?<![\w.])([A-Za-z_]\w*)\.([A-Za-z_]\w*)\s*([!=]=)\s*'(\d+)'"
    r"|'(\d+)'\s*([!=]=)\s*(?<![\w.])([A-Za-z_]\w*)\.([A-Za-z_]\w*)(?!\s*[.(\[])"
)


def _literal_problems(
    expr: Expr, sample: dict[str, dict[str, object]], enums: dict[str, list[str | int | float]]
) -> list[str]:
    """Comparisons with a quoted text whose answer is always the same: with a number or true/false field, or
    with an event property whose enum does not have that text (`event.kind == 'Yoga'`, the enum says `yoga`)."""
    masked, texts = _masked(expr.source)
    problems = []
    for match in _COMPARED.finditer(masked):
        if match[1] is not None:
            root, field, op, text = match[1], match[2], match[3], texts[int(match[4])]
        else:
            root, field, op, text = match[7], match[8], match[6], texts[int(match[5])]
        answer = "is always false" if op == "==" else "is always true"
        value = sample.get(root, {}).get(field)
        if isinstance(value, bool | int | float):
            kind = "true or false" if isinstance(value, bool) else "a number"
            hint = " (1 Monday … 7 Sunday)" if (root, field) == ("local", "weekday") else ""
            problems.append(f"{expr.source!r} compares {root}.{field}, which holds {kind}, with the text {text!r}: "
                            f"it {answer}. Fix: compare it with a value without quotes{hint}")  # fmt: skip
        elif root == "event" and all(isinstance(v, str) for v in enums.get(field, [1])) and text not in enums[field]:
            problems.append(f"{expr.source!r} compares event.{field} with {text!r}, which its enum does not have: "
                            f"it {answer}. Fix: use one of {_choices(str(v) for v in enums[field])}")  # fmt: skip
    for match in _LISTED.finditer(masked):  # `event.kind in ['run', 'Yoga']`: a text the enum lacks never matches
        field, listed = match[1], [texts[int(index)] for index in re.findall(r"'(\d+)'", match[2])]
        if all(isinstance(v, str) for v in enums.get(field, [1])):
            for text in (text for text in listed if text not in enums[field]):
                problems.append(f"{expr.source!r} lists {text!r} for event.{field}, which its enum does not have: "
                                f"it never matches. Fix: use values from {_choices(str(v) for v in enums[field])}")  # fmt: skip
    return problems


# `event.field in ['a', 'b']`, on the masked source (texts are '0', '1', …).
_LISTED = re.compile(r"(?<![\w.])event\.([A-Za-z_]\w*)\s+in\s*\[((?:\s*'\d+'\s*,?)+)\]")


# A CEL string literal in single or double quotes, with backslash escapes.
_STRING = re.compile(r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"")


def _masked(source: str) -> tuple[str, list[str]]:
    """The expression with each text replaced by its index in quotes (`'0'`), and the texts: 'user.name' in
    quotes is text, not a field."""
    texts: list[str] = []

    def keep(match: re.Match[str]) -> str:
        texts.append(re.sub(r"\\(.)", r"\1", match.group(0)[1:-1]))
        return f"'{len(texts) - 1}'"

    return _STRING.sub(keep, source), texts


# CEL never converts between int and double: `event.amount * 2` fails when amount is a number (a double).
_TYPE_ERRORS = ("Unsupported operation", "No such overload")
_UNKNOWN_FUNCTION = "Undefined variable or function"  # every variable it reads is known (checked before)


def _type_check(path: tuple, expr: Expr, sample: dict[str, dict[str, object]], yields: Yields) -> Iterator[Issue]:
    """Evaluate once on sample values of the declared types: what fails or gives the wrong kind of value here
    fails on every real event too (a rule that never awards, a condition that never holds)."""
    try:
        value = expr.evaluate(sample)
    except ExpressionError as exc:
        detail = str(exc).split(" failed: ", 1)[-1].split(".", 1)[0]
        if any(marker in str(exc) for marker in _TYPE_ERRORS):
            yield Issue(
                path,
                f"{expr.source!r} mixes types ({detail}); CEL compares and computes only values of one type: "
                "numbers with numbers (integer properties are ints, number properties doubles), text with text. "
                "Fix: write numbers without quotes, or convert, e.g. int(event.amount), double(event.minutes) or 2.0",
            )
        elif _UNKNOWN_FUNCTION in str(exc):
            yield Issue(
                path,
                f"{expr.source!r} calls a function CEL does not have ({detail}). Fix: check its spelling; "
                "CEL has e.g. int(), double(), string(), size(), matches(), startsWith()",
            )
        return  # anything else (a key a sample lacks) is left to the events themselves
    if yields == "condition" and not isinstance(value, bool):
        yield Issue(
            path, f"{expr.source!r} gives {value!r}, not true or false. Fix: compare it, e.g. {expr.source} > 0"
        )
    if yields == "amount" and (isinstance(value, bool) or not isinstance(value, int | float)):
        yield Issue(
            path, f"{expr.source!r} gives {value!r}, not a number of points. Fix: e.g. event.minutes * 2 or int(...)"
        )


def _sample_values(spec: PropertySpec) -> list[object]:
    """Values of the property's declared type as CEL will see them (a number is always a double): each enum
    value, else the lowest and highest allowed."""
    if spec.type == "boolean":
        return [True, False]
    fitting = [value for value in spec.enum or [] if fits_type(value, spec.type)]  # a misfit is reported apart
    if spec.type == "string":
        return [value for value in fitting if isinstance(value, str)] or ["text"]
    bounds = [spec.min if spec.min is not None else 1, *([spec.max] if spec.max is not None else [])]
    bounds = [bound for bound in bounds if math.isfinite(bound)] or [1]  # a non-finite bound is reported apart
    if spec.type == "number":
        return list(dict.fromkeys(float(value) for value in fitting or bounds))
    # Out-of-range bounds are reported apart; an event's integer never leaves the 64 bits.
    return list(dict.fromkeys(min(max(int(value), INT64_MIN), INT64_MAX) for value in fitting or bounds))

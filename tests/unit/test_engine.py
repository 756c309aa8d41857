"""The pure engine: one user's state + a batch of events in, new state + facts out (fitquest rules)."""

from __future__ import annotations

import copy
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pytest

from engage.engine import FUTURE_TOLERANCE, Event, Fact, Outcome, Profile, UserState, apply_batch


@pytest.fixture(scope="session")
def fitquest(fitquest_rules_only):
    """These tests are about rules, limits and levels; badges, streaks and quests add awards of their own
    (tests/unit/test_progression.py, test_streaks.py), so they are left out here."""
    return fitquest_rules_only


NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)  # a Tuesday; Auckland is on NZDT (UTC+13)
_ids = count(1)


def ev(type_: str, at: datetime = NOW - timedelta(hours=1), event_id: str | None = None, **properties: Any) -> Event:
    return Event(event_id or f"ev-{next(_ids)}", type_, at, properties)


def workout(at: datetime = NOW - timedelta(hours=1), minutes: Any = 30, event_id: str | None = None, **more) -> Event:
    return ev("workout_completed", at, event_id, minutes=minutes, kind="run", **more)


def apply(
    config, events, *, state=None, source="client", now=NOW, already_applied=frozenset(), profile=None
) -> Outcome:
    return apply_batch(
        config,
        state if state is not None else UserState("u1"),
        list(enumerate(events)),
        source=source,
        now=now,
        already_applied=set(already_applied),
        profile=profile,
    )


def facts(outcome: Outcome, type_: str | None = None) -> list[Fact]:
    return [fact for applied in outcome.applied for fact in applied.facts if type_ in (None, fact.type)]


def statuses(outcome: Outcome) -> list[tuple[str, str | None]]:
    return [(result.status, result.code) for result in outcome.results]


# ---------------------------------------------------------------- awards


def test_constant_award_is_added_to_balance_and_lifetime_total(fitquest):
    outcome = apply(fitquest, [ev("app_opened")])
    assert statuses(outcome) == [("accepted", None)]
    assert outcome.results[0].awards == {"xp": 5}
    assert outcome.after.balances == {"xp": 5}
    assert outcome.after.earned == {"xp": 5}


def test_cel_award_is_computed_from_event_properties(fitquest):
    outcome = apply(fitquest, [workout(minutes=30)])
    assert outcome.results[0].awards == {"xp": 60, "coins": 5}
    assert outcome.after.balances == {"xp": 60, "coins": 5}


def test_awards_add_to_existing_balances_and_totals(fitquest):
    state = UserState("u1", version=3, balances={"xp": 10, "coins": 2}, earned={"xp": 50, "coins": 40})
    outcome = apply(fitquest, [workout(minutes=20)], state=state)
    assert outcome.after.balances == {"xp": 50, "coins": 7}
    assert outcome.after.earned == {"xp": 90, "coins": 45}


def test_when_false_gives_no_award_but_event_is_accepted(fitquest):
    # Given fitquest's rule: workouts count from 10 minutes
    outcome = apply(fitquest, [workout(minutes=9)])
    assert statuses(outcome) == [("accepted", None)]
    assert outcome.results[0].awards == {}
    assert facts(outcome) == []
    assert outcome.after.balances == {}
    assert outcome.after.counters == {}  # a rule that did not fire uses none of the daily limit


def test_event_without_rules_is_accepted_without_awards(fitquest):
    outcome = apply(fitquest, [ev("notification_opened", message_id="m1")])
    assert statuses(outcome) == [("accepted", None)]
    assert outcome.after.balances == {}
    assert len(outcome.applied) == 1


def test_points_awarded_facts_name_rule_currency_amount_balance_and_event(fitquest):
    state = UserState("u1", balances={"xp": 7}, earned={"xp": 7})
    outcome = apply(fitquest, [workout(minutes=15, event_id="w-1")], state=state)
    assert facts(outcome, "points_awarded") == [
        Fact("points_awarded", "w-1", {"rule": "workout-xp", "currency": "xp", "amount": 30, "balance": 37}),
        Fact("points_awarded", "w-1", {"rule": "workout-xp", "currency": "coins", "amount": 5, "balance": 5}),
    ]
    assert outcome.results[0].facts == list(outcome.applied[0].facts)
    assert facts(outcome)[0].as_dict() == {
        "type": "points_awarded", "event_id": "w-1", "rule": "workout-xp", "currency": "xp", "amount": 30, "balance": 37,
    }  # fmt: skip


def test_fact_balance_is_the_running_balance_within_a_batch(fitquest):
    outcome = apply(fitquest, [workout(minutes=10), workout(minutes=20)])
    assert [f.data["balance"] for f in facts(outcome, "points_awarded") if f.data["currency"] == "xp"] == [20, 60]


def test_fractional_award_is_cut_to_a_whole_number(fitquest):
    outcome = apply(fitquest, [ev("purchase_completed", sku="pack", amount=4.99)], source="server")
    assert outcome.results[0].awards == {"coins": 4}
    assert isinstance(outcome.after.balances["coins"], int)


def test_zero_award_gives_no_fact(fitquest):
    outcome = apply(fitquest, [ev("purchase_completed", sku="free", amount=0)], source="server")
    assert statuses(outcome) == [("accepted", None)]
    assert facts(outcome) == []
    assert outcome.after.balances == {}


# ---------------------------------------------------------------- limits in the user's local calendar


def test_rule_limit_allows_five_workouts_per_day(fitquest):
    events = [workout(NOW - timedelta(hours=3, minutes=i), minutes=10) for i in range(7)]
    outcome = apply(fitquest, events)
    assert [bool(result.awards) for result in outcome.results] == [True] * 5 + [False] * 2
    assert all(result.status == "accepted" for result in outcome.results)
    assert outcome.after.balances == {"xp": 100, "coins": 25}
    assert outcome.after.counters == {"workout-xp|2026-03-10": 5}


def test_rule_limit_counts_what_earlier_batches_used(fitquest):
    state = UserState("u1", counters={"workout-xp|2026-03-10": 4})
    outcome = apply(fitquest, [workout(), workout()], state=state)
    assert [bool(result.awards) for result in outcome.results] == [True, False]
    assert outcome.after.counters == {"workout-xp|2026-03-10": 5}


# 4 workouts an hour before Auckland's midnight (NZDT, UTC+13) and 4 just after: all on 2026-03-09 in UTC.
_BEFORE_AUCKLAND_MIDNIGHT = [datetime(2026, 3, 9, 10, 10 * i, tzinfo=UTC) for i in range(4)]
_AFTER_AUCKLAND_MIDNIGHT = [datetime(2026, 3, 9, 11, 10 * i, tzinfo=UTC) for i in range(4)]


def test_rule_limit_counts_in_users_local_day(fitquest):
    # Given a user in Auckland and eight workouts straddling their local midnight
    state = UserState("u1", profile=Profile(timezone="Pacific/Auckland"))
    events = [workout(at, minutes=10) for at in _BEFORE_AUCKLAND_MIDNIGHT + _AFTER_AUCKLAND_MIDNIGHT]
    # When they are applied
    outcome = apply(fitquest, events, state=state)
    # Then they fall on two local days, so all eight count
    assert outcome.after.counters == {"workout-xp|2026-03-09": 4, "workout-xp|2026-03-10": 4}
    assert outcome.after.balances["xp"] == 8 * 20


def test_same_instants_for_a_utc_user_fall_on_one_day(fitquest):
    events = [workout(at, minutes=10) for at in _BEFORE_AUCKLAND_MIDNIGHT + _AFTER_AUCKLAND_MIDNIGHT]
    outcome = apply(fitquest, events, state=UserState("u1"))
    assert outcome.after.counters == {"workout-xp|2026-03-09": 5}
    assert outcome.after.balances["xp"] == 5 * 20


def test_config_default_timezone_is_used_when_profile_has_none(make_config):
    config = make_config(lambda data: data.update(default_timezone="Pacific/Auckland"))
    events = [workout(at, minutes=10) for at in _BEFORE_AUCKLAND_MIDNIGHT + _AFTER_AUCKLAND_MIDNIGHT]
    outcome = apply(config, events, state=UserState("u1", profile=Profile(timezone=None)))
    assert outcome.after.counters == {"workout-xp|2026-03-09": 4, "workout-xp|2026-03-10": 4}


def test_profile_timezone_wins_over_config_default(make_config):
    config = make_config(lambda data: data.update(default_timezone="Pacific/Auckland"))
    events = [workout(at, minutes=10) for at in _BEFORE_AUCKLAND_MIDNIGHT + _AFTER_AUCKLAND_MIDNIGHT]
    outcome = apply(config, events, state=UserState("u1", profile=Profile(timezone="UTC")))
    assert outcome.after.counters == {"workout-xp|2026-03-09": 5}


def test_time_zone_sent_with_the_batch_applies_to_its_events(fitquest):
    events = [workout(at, minutes=10) for at in _BEFORE_AUCKLAND_MIDNIGHT + _AFTER_AUCKLAND_MIDNIGHT]
    outcome = apply(fitquest, events, state=UserState("u1"), profile=Profile(timezone="Pacific/Auckland"))
    assert outcome.after.counters == {"workout-xp|2026-03-09": 4, "workout-xp|2026-03-10": 4}


def test_weekly_limit_counts_in_users_local_iso_week(make_config):
    # Given app opens limited to 2 per week, and a third open late on Sunday in New York (Monday in UTC)
    def weekly(data):
        data["rules"][1]["limit"] = {"per": "week", "max": 2}

    config = make_config(weekly)
    times = [
        datetime(2026, 3, 6, 12, tzinfo=UTC),
        datetime(2026, 3, 7, 12, tzinfo=UTC),
        datetime(2026, 3, 9, 3, 30, tzinfo=UTC),
    ]

    def opens():
        return [ev("app_opened", at) for at in times]

    new_york = apply(config, opens(), state=UserState("u1", profile=Profile(timezone="America/New_York")))
    utc = apply(config, opens(), state=UserState("u2", profile=Profile(timezone="UTC")))
    # Then for New York all three are in ISO week 10, for UTC the third starts week 11
    assert [bool(r.awards) for r in new_york.results] == [True, True, False]
    assert new_york.after.counters == {"daily-open|2026-W10": 2}
    assert [bool(r.awards) for r in utc.results] == [True, True, True]
    assert utc.after.counters == {"daily-open|2026-W10": 2, "daily-open|2026-W11": 1}


def test_when_reads_the_users_local_clock(make_config):
    def early_bird(data):
        data["rules"].append(
            {
                "id": "early-bird",
                "on": "app_opened",
                "when": "local.hour < 9 && local.weekday == 2",
                "award": {"coins": 1},
            }
        )

    config = make_config(early_bird)
    at = datetime(2026, 3, 9, 19, 30, tzinfo=UTC)  # Monday 19:30 UTC = Tuesday 08:30 in Auckland
    auckland = apply(
        config, [ev("app_opened", at)], state=UserState("u1", profile=Profile(timezone="Pacific/Auckland"))
    )
    utc = apply(config, [ev("app_opened", at)], state=UserState("u2"))
    assert auckland.results[0].awards == {"xp": 5, "coins": 1}
    assert utc.results[0].awards == {"xp": 5}


# ---------------------------------------------------------------- levels


def test_crossing_one_threshold_gives_one_level_up_fact(fitquest):
    state = UserState("u1", balances={"xp": 90}, earned={"xp": 90})
    outcome = apply(fitquest, [workout(minutes=10, event_id="w-1")], state=state)
    assert facts(outcome, "level_up") == [
        Fact("level_up", "w-1", {"level": 2, "name": "Mover", "currency": "xp", "total": 110})
    ]
    assert outcome.after.level == 1


def test_big_jump_crosses_several_levels_one_fact_each_in_order(fitquest):
    # Given a new user; When one 600-minute workout gives 1200 xp
    outcome = apply(fitquest, [workout(minutes=600, event_id="w-1")])
    # Then levels 2..5 are each reported once, in order, after the points
    assert [f.type for f in facts(outcome)] == ["points_awarded", "points_awarded"] + ["level_up"] * 4
    assert [(f.data["level"], f.data["name"]) for f in facts(outcome, "level_up")] == [
        (2, "Mover"), (3, "Regular"), (4, "Athlete"), (5, "Pro"),
    ]  # fmt: skip
    assert {f.data["total"] for f in facts(outcome, "level_up")} == {1200}
    assert outcome.after.level == 4


def test_level_up_needs_the_threshold_exactly_reached(fitquest):
    just_below = apply(fitquest, [workout(minutes=49)])  # 98 xp
    exactly = apply(fitquest, [workout(minutes=50)])  # 100 xp
    assert facts(just_below, "level_up") == [] and just_below.after.level == 0
    assert [f.data["level"] for f in facts(exactly, "level_up")] == [2] and exactly.after.level == 1


def test_levels_follow_earned_not_balance(fitquest):
    # Given a user who spent most of their xp: balance is low but the lifetime total is 290
    state = UserState("u1", balances={"xp": 5}, earned={"xp": 290}, level=1)
    outcome = apply(fitquest, [workout(minutes=10)], state=state)
    assert [f.data["level"] for f in facts(outcome, "level_up")] == [3]
    assert outcome.after.level == 2


def test_levels_already_reached_are_not_reported_again(fitquest):
    state = UserState("u1", balances={"xp": 650}, earned={"xp": 650}, level=3)
    outcome = apply(fitquest, [workout(minutes=10)], state=state)
    assert facts(outcome, "level_up") == []
    assert outcome.after.level == 3


def test_top_level_is_the_last_and_has_no_level_beyond(fitquest):
    state = UserState("u1", balances={"xp": 2400}, earned={"xp": 2400}, level=5)
    outcome = apply(fitquest, [workout(minutes=600)], state=state)
    assert [(f.data["level"], f.data["name"]) for f in facts(outcome, "level_up")] == [(7, "Legend")]
    assert outcome.after.level == 6


# ---------------------------------------------------------------- rejections


def test_unknown_event_type_is_rejected(fitquest):
    outcome = apply(fitquest, [ev("workout_done")])
    assert statuses(outcome) == [("rejected", "unknown_type")]
    assert "workout_completed" in outcome.results[0].reason  # the reason lists the app's types
    assert outcome.applied == [] and outcome.after.balances == {}


def test_server_event_from_client_is_rejected(fitquest):
    outcome = apply(fitquest, [ev("purchase_completed", sku="x", amount=3)], source="client")
    assert statuses(outcome) == [("rejected", "server_only")]
    assert outcome.after.balances == {}


def test_server_source_may_send_server_and_client_events(fitquest):
    outcome = apply(fitquest, [ev("purchase_completed", sku="x", amount=3), ev("app_opened")], source="server")
    assert statuses(outcome) == [("accepted", None), ("accepted", None)]
    assert outcome.after.balances == {"coins": 3, "xp": 5}


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (FUTURE_TOLERANCE, ("accepted", None)),
        (FUTURE_TOLERANCE + timedelta(microseconds=1), ("rejected", "in_future")),
        (timedelta(hours=2), ("rejected", "in_future")),
    ],
    ids=["exactly-5-min-ahead", "just-over-5-min-ahead", "2h-ahead"],
)
def test_events_more_than_five_minutes_ahead_are_rejected(fitquest, offset, expected):
    assert timedelta(minutes=5) == FUTURE_TOLERANCE
    assert statuses(apply(fitquest, [ev("app_opened", NOW + offset)])) == [expected]


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (timedelta(days=7), ("accepted", None)),
        (timedelta(days=7, microseconds=1), ("rejected", "too_late")),
        (timedelta(days=30), ("rejected", "too_late")),
    ],
    ids=["exactly-late-window", "just-older", "month-old"],
)
def test_events_older_than_the_late_window_are_rejected(fitquest, age, expected):
    assert statuses(apply(fitquest, [ev("app_opened", NOW - age)])) == [expected]


@pytest.mark.parametrize("window", ["2d", "36h", "7d", "14d"])  # 7d, not 1w: as the docs and configs write it
def test_late_window_comes_from_the_config_and_the_reason_names_it_as_written(make_config, window):
    config = make_config(lambda data: data.update(late_window=window))
    outcome = apply(config, [ev("app_opened", NOW - timedelta(days=15))])
    assert statuses(outcome) == [("rejected", "too_late")]
    assert f"({window})" in outcome.results[0].reason


BAD_PROPERTIES = {
    "wrong_type_string_for_integer": ("workout_completed", {"minutes": "30", "kind": "run"}, "is not an integer"),
    "fraction_for_integer": ("workout_completed", {"minutes": 12.5, "kind": "run"}, "is not an integer"),
    "boolean_for_integer": ("workout_completed", {"minutes": True, "kind": "run"}, "is not an integer"),
    "number_for_string": ("workout_completed", {"minutes": 30, "kind": 3}, "is not a string"),
    "below_min": ("workout_completed", {"minutes": 0, "kind": "run"}, "below the minimum 1"),
    "above_max": ("workout_completed", {"minutes": 601, "kind": "run"}, "above the maximum 600"),
    "not_in_enum": ("workout_completed", {"minutes": 30, "kind": "swim"}, "is not one of run, ride, yoga, strength"),
    "negative_number": ("purchase_completed", {"sku": "x", "amount": -0.01}, "below the minimum 0"),
    "string_for_number": ("purchase_completed", {"sku": "x", "amount": "9.99"}, "is not a number"),
}


@pytest.mark.parametrize(("type_", "properties", "says"), BAD_PROPERTIES.values(), ids=BAD_PROPERTIES)
def test_bad_property_is_rejected_with_the_reason(fitquest, type_, properties, says):
    outcome = apply(fitquest, [ev(type_, **properties)], source="server")
    assert statuses(outcome) == [("rejected", "bad_property")]
    assert says in outcome.results[0].reason
    assert outcome.after.balances == {} and outcome.applied == []


def test_required_property_missing_is_rejected(make_config):
    def sku_required(data):
        data["events"]["purchase_completed"]["properties"]["sku"]["required"] = True

    config = make_config(sku_required)
    outcome = apply(
        config, [ev("purchase_completed", amount=3), ev("purchase_completed", sku=None, amount=3)], source="server"
    )
    assert statuses(outcome) == [("rejected", "bad_property")] * 2
    assert "'sku' is required" in outcome.results[0].reason


def test_optional_property_may_be_missing(fitquest):
    outcome = apply(fitquest, [ev("workout_completed", minutes=30)])
    assert statuses(outcome) == [("accepted", None)]


def test_an_optional_property_sent_as_null_is_absent_for_expressions_too(make_config):
    def bonus(data):
        data["events"]["app_opened"]["properties"] = {"streak_days": {"type": "integer"}}
        data["rules"].append(
            {"id": "open-bonus", "on": "app_opened", "award": {"coins": "has(event.streak_days) ? 3 : 1"}}
        )

    outcome = apply(make_config(bonus), [ev("app_opened", streak_days=None), ev("app_opened", streak_days=4)])

    assert [(r.awards.get("coins"), r.warnings) for r in outcome.results] == [(1, []), (3, [])]


def test_boolean_property_accepts_only_booleans(make_config):
    def flag(data):
        data["events"]["app_opened"]["properties"] = {"cold_start": {"type": "boolean"}}

    config = make_config(flag)
    outcome = apply(config, [ev("app_opened", cold_start=True), ev("app_opened", cold_start=1)])
    assert statuses(outcome) == [("accepted", None), ("rejected", "bad_property")]


def test_integer_property_sent_as_whole_float_is_coerced_to_int(fitquest):
    outcome = apply(fitquest, [workout(minutes=12.0)])
    assert statuses(outcome) == [("accepted", None)]
    minutes = outcome.applied[0].event.properties["minutes"]
    assert minutes == 12 and type(minutes) is int
    assert outcome.results[0].awards == {"xp": 24, "coins": 5}
    assert type(outcome.after.balances["xp"]) is int


def test_rejections_keep_their_position_in_the_request(fitquest):
    outcome = apply(fitquest, [ev("app_opened"), ev("bogus"), workout(minutes=0), workout()])
    assert [(r.index, r.status, r.code) for r in outcome.results] == [
        (0, "accepted", None), (1, "rejected", "unknown_type"), (2, "rejected", "bad_property"), (3, "accepted", None),
    ]  # fmt: skip


# ---------------------------------------------------------------- duplicates


def test_event_already_applied_is_a_duplicate_and_awards_nothing(fitquest):
    outcome = apply(fitquest, [workout(event_id="w-1")], already_applied={"w-1"})
    assert statuses(outcome) == [("duplicate", "duplicate")]
    assert outcome.applied == [] and outcome.after.balances == {}


def test_same_id_twice_in_one_batch_counts_once(fitquest):
    outcome = apply(fitquest, [workout(event_id="w-1"), workout(event_id="w-1", minutes=300)])
    assert statuses(outcome) == [("accepted", None), ("duplicate", "duplicate")]
    assert outcome.after.balances == {"xp": 60, "coins": 5}
    assert [applied.event.id for applied in outcome.applied] == ["w-1"]


def test_already_applied_set_passed_in_is_not_modified(fitquest):
    already = {"old"}
    apply_batch(
        fitquest, UserState("u1"), [(0, workout(event_id="new"))], source="client", now=NOW, already_applied=already
    )
    assert already == {"old"}


# ---------------------------------------------------------------- failing expressions


def test_failing_award_expression_warns_and_awards_nothing_but_event_is_accepted(fitquest):
    # Given a purchase without `amount`, so int(event.amount) cannot be evaluated
    outcome = apply(fitquest, [ev("purchase_completed", sku="pack")], source="server")
    result = outcome.results[0]
    assert (result.status, result.code) == ("accepted", None)
    assert result.awards == {} and facts(outcome) == []
    assert result.warnings == [
        "rule purchase-coins: award coins: 'int(event.amount)' reads 'amount', which is absent (an optional value not sent?)"
    ]
    assert len(outcome.applied) == 1  # it is still recorded, so a resend is a duplicate


def test_failing_when_expression_warns_and_skips_the_rule(fitquest):
    outcome = apply(fitquest, [ev("workout_completed", kind="yoga")])
    result = outcome.results[0]
    assert result.status == "accepted" and result.awards == {}
    assert len(result.warnings) == 1 and "workout-xp" in result.warnings[0]
    assert outcome.after.counters == {}


# ---------------------------------------------------------------- profile, immutability, pruning, changed


def test_profile_merge_replaces_given_values_and_keeps_missing_ones(fitquest):
    stored = Profile(timezone="Europe/Berlin", locale="de", app_version="1.0", display_name="Ana")
    outcome = apply(
        fitquest, [], state=UserState("u1", profile=stored), profile=Profile(timezone="Asia/Tokyo", app_version="1.1")
    )
    assert outcome.after.profile == Profile(timezone="Asia/Tokyo", locale="de", app_version="1.1", display_name="Ana")
    assert outcome.changed


def test_no_profile_in_request_keeps_the_stored_one(fitquest):
    stored = Profile(timezone="Europe/Berlin", locale="de")
    outcome = apply(fitquest, [ev("app_opened")], state=UserState("u1", profile=stored))
    assert outcome.after.profile == stored


def test_input_state_is_not_mutated(fitquest):
    state = UserState(
        "u1",
        version=4,
        balances={"xp": 90, "coins": 1},
        earned={"xp": 90, "coins": 1},
        counters={"workout-xp|2026-03-10": 1, "workout-xp|2026-01-01": 5},
        profile=Profile(timezone="UTC", locale="en"),
    )
    snapshot = copy.deepcopy(state)
    outcome = apply(
        fitquest, [workout(minutes=600), ev("app_opened")], state=state, profile=Profile(timezone="Pacific/Auckland")
    )
    assert state == snapshot
    assert outcome.before is state
    assert outcome.after != state
    outcome.after.balances["xp"] = -1
    outcome.after.counters.clear()
    assert state == snapshot  # nothing shared between before and after


def test_counters_are_pruned_past_the_longest_late_window_any_config_may_set(fitquest):
    # now - 30d - 2d = 2026-02-06 (a Friday in ISO week 2026-W06, which ends on Sunday 2026-02-08)
    state = UserState(
        "u1",
        counters={
            "workout-xp|2026-02-05": 5,
            "workout-xp|2026-02-06": 5,
            "workout-xp|2026-03-09": 2,
            "weekly|2026-W05": 1,
            "weekly|2026-W06": 1,
        },
    )
    outcome = apply(fitquest, [ev("notification_opened")], state=state)
    assert outcome.after.counters == {"workout-xp|2026-02-06": 5, "workout-xp|2026-03-09": 2, "weekly|2026-W06": 1}


def test_a_limit_reached_still_holds_after_the_late_window_is_lengthened(make_config):
    # Given a user who reached workout-xp's 5 a day twelve days ago, and a request under a 7-day window since
    day = NOW - timedelta(days=12)
    state = UserState("u1", counters={f"workout-xp|{day.date().isoformat()}": 5}, profile=Profile(timezone="UTC"))
    state = apply(make_config(lambda data: data.update(late_window="7d")), [ev("app_opened")], state=state).after

    # When the product owner lengthens the window to 30 days and a workout of that day arrives late
    longer = make_config(lambda data: data.update(late_window="30d"))
    outcome = apply(longer, [workout(day + timedelta(hours=1))], state=state)

    # Then the day's limit still holds: it is applied, and the limited rule pays nothing
    assert statuses(outcome) == [("accepted", None)]
    assert [f.data for f in facts(outcome, "points_awarded") if f.data.get("rule") == "workout-xp"] == []


def test_changed_is_true_when_an_event_was_applied(fitquest):
    assert apply(fitquest, [ev("notification_opened")]).changed


def test_changed_is_false_when_nothing_was_applied(fitquest):
    state = UserState("u1", balances={"xp": 3}, counters={"workout-xp|2026-01-01": 5}, profile=Profile(timezone="UTC"))
    outcome = apply(
        fitquest,
        [workout(event_id="w-1"), ev("bogus"), ev("app_opened", NOW + timedelta(hours=1))],
        state=state,
        already_applied={"w-1"},
        profile=Profile(timezone="UTC"),
    )
    assert not outcome.changed
    assert outcome.after == state  # and nothing else moved either


def test_changed_is_true_for_a_profile_change_alone(fitquest):
    outcome = apply(fitquest, [], profile=Profile(locale="fr"))
    assert outcome.changed and outcome.applied == []


def test_engine_and_config_load_no_aws_yaml_or_cli_modules():
    # The Lambdas import the engine and validate the stored JSON config (compiling its CEL): they need
    # no PyYAML, no AWS SDK and none of the cel package's CLI dependencies (cold start).
    code = (
        "import sys, json\n"
        "import engage.config, engage.engine\n"
        "engage.config.validate_config_data({'app': 'a', 'events': {'e': {}}, 'currencies': {'c': {'name': 'C'}},\n"
        "    'rules': [{'id': 'r', 'on': 'e', 'when': 'local.hour < 12', 'award': {'c': '1 + 1'}}]})\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & {'yaml', 'boto3', 'botocore', 'pynamodb',\n"
        "    'aws_lambda_powertools', 'typer', 'rich', 'prompt_toolkit'})))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"


# ---------------------------------------------------------------- numbers at the edges (found by review)
# The HTTP layer refuses these before the engine sees them (tests/integration/test_ingest.py); the engine
# still never lets one event sink a batch, whoever calls it.


def test_huge_integer_property_is_rejected_without_sinking_the_batch(fitquest):
    outcome = apply(fitquest, [workout(minutes=10**400), ev("app_opened")])
    assert statuses(outcome) == [("rejected", "bad_property"), ("accepted", None)]


def test_nan_is_not_a_valid_number_property(fitquest):
    outcome = apply(fitquest, [ev("purchase_completed", sku="x", amount=float("nan"))], source="server")
    assert statuses(outcome) == [("rejected", "bad_property")]


def test_award_expression_giving_infinity_warns_instead_of_crashing(make_config):
    def amount_overflows(data):
        data["rules"][2]["award"] = {"coins": "event.amount * 1e308 * 10.0"}

    config = make_config(amount_overflows)
    outcome = apply(config, [ev("purchase_completed", sku="x", amount=5.0), ev("app_opened")], source="server")
    assert statuses(outcome) == [("accepted", None), ("accepted", None)]
    assert outcome.results[0].awards == {} and outcome.results[0].warnings
    assert outcome.after.balances == {"xp": 5}


def test_a_constant_award_above_the_bound_in_an_older_published_config_pays_nothing_and_says_so(fitquest_data):
    from engage.config import validate_config_data

    data = {**fitquest_data, "rules": [{**fitquest_data["rules"][1], "award": {"xp": 10**40}}]}
    config = validate_config_data(data, published=True)  # as the Lambdas load it: publishing now refuses it

    outcome = apply(config, [ev("app_opened")])

    assert outcome.results[0].awards == {} and "more than one award may pay" in outcome.results[0].warnings[0]


def test_a_rule_reading_a_balance_the_user_has_none_of_yet_reads_zero(make_config):
    # Before, the missing key failed the expression on every event of a new user: the rule never paid.
    def starter_bonus(data):
        data["rules"].append({"id": "starter", "on": "app_opened", "when": "user.balances.coins < 10",
                              "award": {"coins": 1}})  # fmt: skip

    outcome = apply(make_config(starter_bonus), [ev("app_opened")])

    assert outcome.results[0].awards.get("coins") == 1 and not outcome.results[0].warnings


def test_expressions_read_the_level_the_app_shows_also_after_the_thresholds_were_raised(make_config):
    # The user was announced level 4 (600 xp) under the old thresholds; under the new ones 1,100 xp is level 2,
    # which /v1/me and the ingest answer show. Rules read `user.level` as 4 before.
    def raised(data):
        data["levels"]["thresholds"] = [0, 1000, 3000, 6000, 10000, 15000, 25000]
        data["rules"].append({"id": "level-two", "on": "app_opened", "when": "user.level == 2", "award": {"coins": 1}})

    announced = UserState("u1", level=3, earned={"xp": 1100}, balances={"xp": 1100})
    outcome = apply(make_config(raised), [ev("app_opened")], state=announced)

    assert outcome.results[0].awards.get("coins") == 1
    assert facts(outcome, "level_up") == []  # level 2 was announced long ago: not again


def test_a_profile_stored_before_reports_were_kept_apart_keeps_its_reported_zone_through_a_choice_and_reset():
    from engage.engine.ingest import merge_profile, with_choices

    legacy = Profile(timezone="Europe/Berlin", locale="de-DE")  # as stored: only what is in force, nothing chosen
    chosen = with_choices(legacy, {"timezone": "Asia/Tokyo"}, {})
    reset = with_choices(chosen, {}, {"timezone": "Asia/Tokyo"})
    travelled = merge_profile(chosen, Profile(timezone="Europe/Paris"), {"timezone": "Asia/Tokyo"})

    assert (chosen.timezone, chosen.reported_timezone) == ("Asia/Tokyo", "Europe/Berlin")
    assert (reset.timezone, reset.locale) == ("Europe/Berlin", "de-DE")
    assert (travelled.timezone, travelled.reported_timezone, travelled.locale) == (
        "Asia/Tokyo",
        "Europe/Paris",
        "de-DE",
    )


def test_a_bound_in_a_rejection_reads_as_the_config_wrote_it(make_config):
    # `:g` showed 1500000 as 1.5e+06: "1500001 is above the maximum 1.5e+06" read like a bug
    config = make_config(lambda d: d["events"]["purchase_completed"]["properties"]["amount"].update(max=1500000))
    outcome = apply(config, [ev("purchase_completed", sku="x", amount=1500001)], source="server")
    assert outcome.results[0].reason == "property 'amount' = 1500001 is above the maximum 1500000"

"""Streaks: periods on the user's calendar, freezes, milestones, late events (engage.engine.streaks)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from itertools import permutations
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engage.config.schema import Freezes, Streak
from engage.engine.streaks import StreakFact, StreakState, period_index, record_activity, streak_view

D = date(2026, 3, 2).toordinal()  # a Monday: day n of a test is D + n
KEEP = 400  # no folding within the tests' ranges
PROPERTY_SETTINGS = settings(max_examples=300, deadline=None)
NEW_YORK, KIRITIMATI, ST_JOHNS = (
    ZoneInfo("America/New_York"),
    ZoneInfo("Pacific/Kiritimati"),
    ZoneInfo("America/St_Johns"),
)


@pytest.fixture
def daily(fitquest) -> Streak:
    """fitquest's daily-workout: a freeze per 7-day run, at most 2 held, milestones 3, 7, 30, 100."""
    spec = fitquest.streaks[0]
    assert (spec.id, spec.period, spec.freezes, spec.milestones) == (
        "daily-workout",
        "day",
        Freezes(earn_every=7, max=2),
        [3, 7, 30, 100],
    )
    return spec


def streak(period: str = "day", freezes: tuple[int, int] | None = None, milestones: list[int] | None = None) -> Streak:
    return Streak(
        id="s",
        name="S",
        on="workout_completed",
        period=period,
        freezes=None if freezes is None else Freezes(earn_every=freezes[0], max=freezes[1]),
        milestones=milestones or [],
    )


def record(
    spec: Streak, periods: list[int], state: StreakState | None = None, keep: int = KEEP
) -> tuple[StreakState | None, list[list[StreakFact]]]:
    """Record `periods` in the order given; the facts of each call."""
    calls = []
    for period in periods:
        state, facts = record_activity(spec, state, period, keep)
        calls.append(facts)
    return state, calls


def brief(facts: list[StreakFact]) -> list[tuple[Any, ...]]:
    """(type, day n, the fact's own number) — enough to read a test at a glance."""
    value = {"streak_frozen": "freezes_left", "streak_broken": "previous_length"}
    return [(f.type, f.data["period"] - D, f.data[value.get(f.type, "length")]) for f in facts]


def days(*ns: int) -> list[int]:
    return [D + n for n in ns]


# ---------------------------------------------------------------- consecutive days, freezes, milestones


def test_given_consecutive_days_when_recorded_then_each_extends_the_streak(daily):
    state, calls = record(daily, days(0, 1))
    assert [brief(facts) for facts in calls] == [[("streak_extended", 0, 1)], [("streak_extended", 1, 2)]]
    view = streak_view(daily, state, D + 1)
    assert (view.length, view.longest, view.done_this_period, view.at_risk, view.last_period) == (
        2,
        2,
        True,
        False,
        D + 1,
    )


@pytest.mark.parametrize(
    ("recorded", "late", "length", "current"),
    [((1, 2), 0, 1, 3), ((0, 1, 3, 4), 2, 3, 5), ((0, 1, 5, 6), 2, 3, 2)],
    ids=["fills-the-start", "joins-two-runs", "lengthens-a-broken-run"],
)
def test_given_a_late_day_when_recorded_then_its_fact_says_what_the_streak_is_now(recorded, late, length, current):
    # An app syncing a workout from before yesterday's: "1-day streak" was the day's length, the streak is 3.
    spec = streak()
    state, _ = record(spec, days(*recorded))
    _, [facts] = record(spec, days(late), state)

    [extended] = [fact.data for fact in facts if fact.type == "streak_extended"]
    assert (extended["period"] - D, extended["length"], extended["current_length"]) == (late, length, current)


def test_given_yesterday_done_when_viewed_today_then_the_streak_is_at_risk_and_tomorrow_it_is_gone(daily):
    state, _ = record(daily, days(0, 1))
    today = streak_view(daily, state, D + 2)
    assert (today.length, today.done_this_period, today.at_risk) == (2, False, True)
    tomorrow = streak_view(daily, state, D + 3)  # a day missed and no freeze held
    assert (tomorrow.length, tomorrow.longest, tomorrow.at_risk) == (0, 2, False)


def test_given_no_activity_when_viewed_then_nothing_to_show(daily):
    view = streak_view(daily, None, D)
    assert (view.length, view.longest, view.freezes, view.done_this_period, view.at_risk, view.last_period) == (
        0,
        0,
        0,
        False,
        False,
        None,
    )


def test_given_an_active_day_when_a_second_activity_lands_on_it_then_nothing_changes(daily):
    state, _ = record(daily, days(0, 1))
    again, facts = record_activity(daily, state, D + 1, KEEP)
    assert (again, facts) == (state, [])


def test_given_ten_consecutive_days_when_recorded_then_milestones_3_and_7_fire_once_each(daily):
    _, calls = record(daily, days(*range(10)))
    milestones = [fact for facts in calls for fact in brief(facts) if fact[0] == "streak_milestone"]
    assert milestones == [("streak_milestone", 2, 3), ("streak_milestone", 6, 7)]


def test_given_seven_consecutive_days_when_recorded_then_a_freeze_is_earned_and_at_most_two_are_held(daily):
    state, _ = record(daily, days(*range(6)))
    assert streak_view(daily, state, D + 5).freezes == 0
    state, _ = record(daily, days(6), state)
    assert streak_view(daily, state, D + 6).freezes == 1
    state, _ = record(daily, days(*range(7, 28)), state)
    assert streak_view(daily, state, D + 27).freezes == 2  # 4 runs of 7, capped at 2


def test_given_a_freeze_when_a_day_is_missed_then_it_is_consumed_and_the_frozen_day_adds_no_length(daily):
    state, _ = record(daily, days(*range(7)))
    assert streak_view(daily, state, D + 8).length == 7  # one day missed so far, covered by the freeze
    state, [facts] = record(daily, days(8), state)
    assert brief(facts) == [("streak_frozen", 7, 0), ("streak_extended", 8, 8)]
    view = streak_view(daily, state, D + 8)
    assert (view.length, view.longest, view.freezes) == (8, 8, 0)


def test_given_one_freeze_when_two_days_are_missed_then_the_streak_breaks_and_the_freeze_is_kept(daily):
    state, _ = record(daily, days(*range(7)))
    assert streak_view(daily, state, D + 9).length == 0  # two missed days, one freeze: broken already
    state, [facts] = record(daily, days(9), state)
    assert brief(facts) == [("streak_broken", 9, 7), ("streak_extended", 9, 1)]
    view = streak_view(daily, state, D + 9)
    assert (view.length, view.longest, view.freezes) == (1, 7, 1)


def test_given_a_break_when_a_new_run_reaches_a_milestone_again_then_it_fires_again(daily):
    _, calls = record(daily, days(0, 1, 2, 5, 6, 7))
    milestones = [fact for facts in calls for fact in brief(facts) if fact[0] == "streak_milestone"]
    assert milestones == [("streak_milestone", 2, 3), ("streak_milestone", 7, 3)]


def test_given_a_freeze_earned_at_the_cap_when_one_is_used_later_then_the_lost_one_was_not_banked():
    spec = streak(freezes=(2, 1))
    state, _ = record(spec, days(0, 1, 2, 3))  # earns at day 1; day 3's is lost at the cap
    state, [facts] = record(spec, days(5), state)
    assert brief(facts) == [("streak_frozen", 4, 0), ("streak_extended", 5, 5)]
    assert streak_view(spec, state, D + 5).freezes == 0  # day 5 is the first of the next pair: nothing yet


# ---------------------------------------------------------------- periods and time zones


def local_day(zone: ZoneInfo, utc: datetime) -> int:
    return period_index("day", utc.astimezone(zone))


def test_given_weekly_periods_when_sunday_turns_to_monday_then_it_is_a_new_iso_week():
    monday, sunday, next_monday = date(2026, 3, 2), date(2026, 3, 8), date(2026, 3, 9)
    assert (
        period_index("week", monday)
        == period_index("week", sunday)
        == period_index("week", datetime(2026, 3, 8, 23, 59))
    )
    assert period_index("week", next_monday) == period_index("week", sunday) + 1
    # ISO weeks straddle years: Monday 2025-12-29 to Sunday 2026-01-04 is 2026-W01.
    assert period_index("week", date(2025, 12, 29)) == period_index("week", date(2026, 1, 4))
    spec = streak("week")
    state, _ = record(spec, [period_index("week", sunday), period_index("week", next_monday)])
    assert streak_view(spec, state, period_index("week", next_monday)).length == 2


@pytest.mark.parametrize(
    ("early", "late", "next_day"),
    [
        # 2026-03-08, spring forward: a 23-hour day (00:30 EST = 05:30Z, 23:30 EDT = 03:30Z next UTC day)
        (
            datetime(2026, 3, 8, 5, 30, tzinfo=UTC),
            datetime(2026, 3, 9, 3, 30, tzinfo=UTC),
            datetime(2026, 3, 9, 16, tzinfo=UTC),
        ),
        # 2026-11-01, fall back: a 25-hour day (00:30 EDT = 04:30Z, 23:30 EST = 04:30Z next UTC day)
        (
            datetime(2026, 11, 1, 4, 30, tzinfo=UTC),
            datetime(2026, 11, 2, 4, 30, tzinfo=UTC),
            datetime(2026, 11, 2, 17, tzinfo=UTC),
        ),
    ],
    ids=["spring-forward", "fall-back"],
)
def test_given_a_dst_change_in_new_york_when_active_early_and_late_that_day_then_it_counts_as_one_day(
    early, late, next_day
):
    assert early.astimezone(NEW_YORK).strftime("%H:%M") == "00:30"
    assert late.astimezone(NEW_YORK).strftime("%H:%M") == "23:30"
    assert local_day(NEW_YORK, early) == local_day(NEW_YORK, late) == early.astimezone(NEW_YORK).date().toordinal()
    assert local_day(NEW_YORK, next_day) == local_day(NEW_YORK, early) + 1
    spec = streak()
    state, calls = record(spec, [local_day(NEW_YORK, moment) for moment in (early, late, next_day)])
    assert [len(facts) for facts in calls] == [1, 0, 1]
    assert streak_view(spec, state, local_day(NEW_YORK, next_day)).length == 2


def test_given_zones_far_apart_when_the_same_instant_is_recorded_then_each_user_gets_the_date_they_see():
    instant = datetime(2026, 1, 15, 2, 0, tzinfo=UTC)
    assert local_day(KIRITIMATI, instant) == date(2026, 1, 15).toordinal()  # 16:00 on the 15th (UTC+14)
    assert local_day(ST_JOHNS, instant) == date(2026, 1, 14).toordinal()  # 22:30 on the 14th (UTC−3:30)


@pytest.mark.parametrize("zone", [KIRITIMATI, ST_JOHNS, NEW_YORK], ids=str)
def test_given_activity_at_23_59_and_00_01_local_when_recorded_then_they_are_consecutive_days(zone):
    before = datetime(2026, 1, 14, 23, 59, tzinfo=zone).astimezone(UTC)
    after = datetime(2026, 1, 15, 0, 1, tzinfo=zone).astimezone(UTC)
    assert local_day(zone, after) == local_day(zone, before) + 1
    spec = streak()
    state, _ = record(spec, [local_day(zone, before), local_day(zone, after)])
    assert streak_view(spec, state, local_day(zone, after)).length == 2


# ---------------------------------------------------------------- late events and the kept window


def test_given_days_1_2_4_when_day_3_arrives_late_then_the_streak_is_4_and_only_day_3_is_reported(daily):
    state, calls = record(daily, days(1, 2, 4))
    assert brief(calls[2]) == [("streak_broken", 4, 2), ("streak_extended", 4, 1)]
    state, [facts] = record(daily, days(3), state)
    assert brief(facts) == [("streak_extended", 3, 3), ("streak_milestone", 3, 3)]  # a 3-day run really happened
    assert streak_view(daily, state, D + 4).length == 4
    state, calls = record(daily, days(4, 3, 5), state)
    assert [brief(facts) for facts in calls] == [[], [], [("streak_extended", 5, 5)]]


def test_given_any_arrival_order_when_all_days_are_in_then_the_state_equals_in_order_arrival(daily):
    active = days(1, 2, 4, 5, 7)
    in_order, _ = record(daily, active)
    for order in permutations(active):
        assert record(daily, list(order))[0] == in_order


def test_given_a_folded_past_when_a_period_older_than_the_window_arrives_then_it_is_ignored(daily):
    state, _ = record(daily, days(0, 1, 2, 3, 4, 5, 7), keep=3)
    assert state is not None and state.anchor.last == D + 4 and state.active == (D + 5, D + 7)
    assert record_activity(daily, state, D + 4, 3) == (state, [])  # folded: not in the window
    assert record_activity(daily, state, D + 3, 10) == (state, [])  # a wider window cannot unfold it
    state, [facts] = record(daily, days(6), state, keep=3)  # still inside the window
    assert brief(facts) == [("streak_extended", 6, 7), ("streak_milestone", 6, 7)]
    assert streak_view(daily, state, D + 7).length == 8


def test_given_a_state_when_round_tripped_through_json_then_it_is_unchanged(daily):
    state, _ = record(daily, days(0, 1, 2, 3, 4, 5, 6, 8, 9), keep=4)
    assert state is not None
    assert StreakState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


# ---------------------------------------------------------------- properties against a brute-force reference


def reference(spec: Streak, active: set[int]) -> tuple[tuple[int, int, int], list[tuple[Any, ...]], list[int]]:
    """Walk every period from the first active to the last: ((length, longest, freezes), facts, earned-by)."""
    length = longest = held = toward = missed = 0
    facts: list[tuple[Any, ...]] = []
    earned: list[int] = []  # the period at which each freeze was earned
    for period in range(min(active), max(active) + 1):
        if period not in active:
            missed += 1
            continue
        if length and missed and missed <= held:
            held -= missed
            facts += [("streak_frozen", period - missed + i, held + missed - i - 1) for i in range(missed)]
        elif length and missed:
            facts.append(("streak_broken", period, length))
            length = toward = 0
        missed = 0
        length += 1
        longest = max(longest, length)
        toward += 1
        if spec.freezes and toward == spec.freezes.earn_every:
            toward = 0
            if held < spec.freezes.max:
                held += 1
                earned.append(period)
        facts.append(("streak_extended", period, length))
        if length in spec.milestones:
            facts.append(("streak_milestone", period, length))
    return (length, longest, held), facts, earned


def as_tuple(fact: StreakFact) -> tuple[Any, ...]:
    value = {"streak_frozen": "freezes_left", "streak_broken": "previous_length"}.get(fact.type, "length")
    return (fact.type, fact.data["period"], fact.data[value])


specs = st.builds(
    lambda freezes, milestones: streak(freezes=freezes, milestones=milestones),
    st.none() | st.tuples(st.integers(1, 8), st.integers(1, 3)),
    st.lists(st.integers(1, 20), unique=True, max_size=4),
)
active_sets = st.sets(st.integers(D, D + 59), min_size=1, max_size=45)


@st.composite
def arrivals(draw) -> list[int]:
    """A set of active days, arriving in any order, some more than once."""
    active = sorted(draw(active_sets))
    order = draw(st.permutations(active))
    repeats = draw(st.lists(st.sampled_from(active), max_size=5))
    return [*order, *repeats]


@PROPERTY_SETTINGS
@given(spec=specs, active=active_sets)
def test_given_in_order_arrival_then_facts_and_view_match_the_reference(spec, active):
    ordered = sorted(active)
    state, calls = record(spec, ordered)
    (length, longest, freezes), expected, earned = reference(spec, active)
    emitted = [as_tuple(fact) for facts in calls for fact in facts]
    assert emitted == expected  # in order, nothing is reported twice and nothing is missed
    view = streak_view(spec, state, ordered[-1])
    assert (view.length, view.longest, view.freezes) == (length, longest, freezes)
    for i, fact in enumerate(emitted):  # a freeze is used only once earned
        frozen = sum(1 for f in emitted[: i + 1] if f[0] == "streak_frozen")
        assert frozen <= sum(1 for period in earned if period < fact[1])


@PROPERTY_SETTINGS
@given(spec=specs, order=arrivals(), ahead=st.integers(0, 5))
def test_given_any_arrival_order_then_the_result_equals_in_order_replay(spec, order, ahead):
    active = set(order)
    in_order, _ = record(spec, sorted(active))
    state: StreakState | None = None
    seen: set[int] = set()
    extended: list[int] = []
    emitted: set[tuple[Any, ...]] = set()
    milestones: set[int] = set()
    for period in order:
        state, facts = record_activity(spec, state, period, KEEP)
        if period in seen:
            assert facts == []  # idempotent: a known period changes nothing
        else:
            # Each new period reports its own extension, once; frozen/broken/milestone facts may recur,
            # since a late period can undo one (a filled gap) and a later one bring it back.
            assert [f.data["period"] for f in facts if f.type == "streak_extended"] == [period]
        seen.add(period)
        extended += [f.data["period"] for f in facts if f.type == "streak_extended"]
        emitted |= {as_tuple(f)[:2] for f in facts if f.type != "streak_milestone"}
        milestones |= {f.data["length"] for f in facts if f.type == "streak_milestone"}
        view = streak_view(spec, state, max(seen) + ahead)
        assert 0 <= view.length <= view.longest and view.freezes >= 0
        assert view.at_risk == (view.length > 0 and not view.done_this_period)
    assert state == in_order
    assert sorted(extended) == sorted(active)
    (length, longest, freezes), expected, _ = reference(spec, active)
    # Whatever finally holds was reported at some point; a milestone as a length reached (a late period can
    # move the period it falls on, and a celebrated milestone is not repeated).
    assert {fact[:2] for fact in expected if fact[0] != "streak_milestone"} <= emitted
    assert {fact[2] for fact in expected if fact[0] == "streak_milestone"} <= milestones
    view = streak_view(spec, state, max(active) + ahead)
    assert (view.longest, view.freezes) == (longest, freezes)
    assert view.length == (0 if ahead - 1 > freezes else length)


@st.composite
def late_within(draw, keep: int) -> list[int]:
    """Active days arriving up to `keep` - 1 periods late (the caller's late-window guarantee)."""
    active = sorted(draw(active_sets))
    delays = draw(st.lists(st.integers(0, keep - 1), min_size=len(active), max_size=len(active)))
    return [
        period for _, period in sorted(zip((p + d for p, d in zip(active, delays, strict=True)), active, strict=True))
    ]


@PROPERTY_SETTINGS
@given(spec=specs, data=st.data(), keep=st.integers(1, 6))
def test_given_a_small_kept_window_then_folding_gives_the_same_facts_and_view_as_no_folding(spec, data, keep):
    order = data.draw(late_within(keep))
    folded = whole = None
    for period in order:
        folded, folded_facts = record_activity(spec, folded, period, keep)
        whole, whole_facts = record_activity(spec, whole, period, KEEP)
        assert folded_facts == whole_facts
        assert len(folded.active) <= keep
        assert StreakState.from_dict(json.loads(json.dumps(folded.to_dict()))) == folded
        for current in (period, max(order) + 1):
            assert streak_view(spec, folded, current) == streak_view(spec, whole, current)


def test_a_late_period_joining_two_runs_does_not_repeat_a_celebrated_milestone():
    from engage.config.schema import Streak
    from engage.engine.streaks import record_activity

    spec = Streak(id="s", name="S", on="workout_completed", milestones=[3, 5])
    state, emitted = None, []
    for day in (1, 2, 4, 5, 6):  # runs [1, 2] and [4, 5, 6]: milestone 3 reached on day 6
        state, facts = record_activity(spec, state, day, keep_periods=30)
        emitted += [(f.type, f.data["length"]) for f in facts if f.type == "streak_milestone"]
    state, late = record_activity(spec, state, 3, keep_periods=30)  # day 3 joins them: one run of 6

    assert emitted == [("streak_milestone", 3)]
    assert [(f.type, f.data["length"]) for f in late if f.type == "streak_milestone"] == [("streak_milestone", 5)]


def test_a_late_period_before_an_earlier_run_does_not_repeat_its_milestone(daily):
    # A run of 4, 5, 6 celebrated 3 on day 6; day 9 broke it. Day 3, arriving late, lengthens that old run
    # from its start: the run had reached 3 already, so no second celebration (any arrival order: no repeat).
    _, calls = record(daily, [4, 5, 6, 9, 3])
    milestones = [
        (f.data["period"], f.data["length"]) for facts in calls for f in facts if f.type == "streak_milestone"
    ]
    assert milestones == [(6, 3)]


def test_a_late_period_that_cuts_the_current_run_lets_the_new_run_celebrate_its_milestone():
    # With a freeze per 2 active days (1 held at most), days 2, 3, 4, 6, 8, 9 are one run (5 and 7 frozen).
    # Day 1, arriving late, spends the freeze earlier: day 8 now starts a new run, which reaches 2 on day 9,
    # as in time order. (The run of 1-6 had celebrated 2 already: no repeat for it.)
    spec = Streak(id="s", name="S", on="workout_completed", milestones=[2], freezes=Freezes(earn_every=2, max=1))

    _, calls = record(spec, [2, 3, 4, 6, 8, 9, 1])

    milestones = [
        (f.data["period"], f.data["length"]) for facts in calls for f in facts if f.type == "streak_milestone"
    ]
    assert milestones == [(3, 2), (9, 2)]

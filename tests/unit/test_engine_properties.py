"""Properties of the engine over generated fitquest event sequences (hypothesis)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engage.engine import Event, Fact, Outcome, Profile, UserState, apply_batch
from engage.engine.levels import level_index


@pytest.fixture(scope="session")
def fitquest(fitquest_rules_only):
    """These tests are about rules, limits and levels; badges, streaks and quests add awards of their own
    (tests/unit/test_progression.py, test_streaks.py), so they are left out here."""
    return fitquest_rules_only


NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
WEEK = 7 * 24 * 3600
KINDS = ["run", "ride", "yoga", "strength"]
ZONES = [None, "UTC", "Pacific/Kiritimati", "America/St_Johns", "America/New_York", "Pacific/Auckland"]

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)


@st.composite
def fitquest_events(draw, max_size: int = 30) -> list[Event]:
    """A sequence of valid fitquest events with unique ids, all within the last 7 days (any order)."""
    # Sometimes spread over the week, sometimes packed into a few hours so daily limits are reached.
    spread = draw(st.sampled_from([3 * 3600, 26 * 3600, WEEK - 1]))
    size = draw(st.integers(0, max_size))  # drawn first: plain st.lists mostly yields very short lists
    kinds = draw(
        st.lists(st.sampled_from(["workout", "workout", "workout", "open", "purchase"]), min_size=size, max_size=size)
    )
    events = []
    for i, kind in enumerate(kinds):
        at = NOW - timedelta(seconds=draw(st.integers(0, spread)))
        if kind == "workout":
            properties = {"minutes": draw(st.integers(1, 600)), "kind": draw(st.sampled_from(KINDS))}
            events.append(Event(f"e{i}", "workout_completed", at, properties))
        elif kind == "open":
            events.append(Event(f"e{i}", "app_opened", at, {}))
        else:
            amount = draw(st.none() | st.integers(0, 500) | st.floats(0, 500, allow_nan=False))
            properties = {"sku": "pack"} | ({} if amount is None else {"amount": amount})
            events.append(Event(f"e{i}", "purchase_completed", at, properties))
    return events


@st.composite
def split(draw, events: list[Event]) -> list[list[Event]]:
    """The sequence cut into consecutive batches at arbitrary points (empty batches included)."""
    cuts = sorted(draw(st.lists(st.integers(0, len(events)), max_size=6)))
    bounds = [0, *cuts, len(events)]
    return [events[a:b] for a, b in pairwise(bounds)]


def run(config, state: UserState, events: list[Event], zone: str | None, already: set[str] = frozenset()) -> Outcome:
    return apply_batch(
        config,
        state,
        list(enumerate(events)),
        source="server",  # the server may send client and server events, so purchases count too
        now=NOW,
        already_applied=set(already),
        profile=Profile(timezone=zone),
    )


def all_facts(outcome: Outcome) -> list[Fact]:
    return [fact for applied in outcome.applied for fact in applied.facts]


def progress(state: UserState) -> tuple:
    return state.balances, state.earned, state.level, state.counters


# ---------------------------------------------------------------- batching does not matter


@PROPERTY_SETTINGS
@given(data=st.data(), events=fitquest_events(), zone=st.sampled_from(ZONES))
def test_applying_in_consecutive_batches_equals_applying_in_one(fitquest, data, events, zone):
    # Given the same sequence applied in one batch, and cut into consecutive batches
    whole = run(fitquest, UserState("u1"), events, zone)
    batches = data.draw(split(events), label="batches")

    state, applied_ids, facts, statuses = UserState("u1"), set(), [], []
    for batch in batches:
        outcome = run(fitquest, state, batch, zone, applied_ids)
        state = outcome.after
        applied_ids |= {applied.event.id for applied in outcome.applied}
        facts += all_facts(outcome)
        statuses += [result.status for result in outcome.results]

    # Then the final progress, the facts and the per-event statuses are the same
    assert progress(state) == progress(whole.after)
    assert facts == all_facts(whole)
    assert statuses == [result.status for result in whole.results]
    assert all(status == "accepted" for status in statuses)


@PROPERTY_SETTINGS
@given(data=st.data(), events=fitquest_events(), zone=st.sampled_from(ZONES))
def test_replaying_an_applied_prefix_awards_nothing(fitquest, data, events, zone):
    # Given a user who has had the whole sequence applied
    first = run(fitquest, UserState("u1"), events, zone)
    applied_ids = {applied.event.id for applied in first.applied}
    # When any prefix of it is sent again (a client retry)
    prefix = events[: data.draw(st.integers(0, len(events)), label="prefix length")]
    replay = run(fitquest, first.after, prefix, zone, applied_ids)
    # Then every event is a duplicate and nothing moves
    assert [result.status for result in replay.results] == ["duplicate"] * len(prefix)
    assert all(result.awards == {} and result.facts == [] for result in replay.results)
    assert replay.applied == []
    assert progress(replay.after) == progress(first.after)
    assert not replay.changed


# ---------------------------------------------------------------- ledger and level invariants


@PROPERTY_SETTINGS
@given(events=fitquest_events(), zone=st.sampled_from(ZONES))
def test_balances_are_never_negative_and_equal_the_sum_of_awards(fitquest, events, zone):
    outcome = run(fitquest, UserState("u1"), events, zone)
    awarded: Counter[str] = Counter()
    for fact in all_facts(outcome):
        if fact.type == "points_awarded":
            assert fact.data["amount"] > 0
            awarded[fact.data["currency"]] += fact.data["amount"]
            assert fact.data["balance"] == awarded[fact.data["currency"]]  # the running balance
    assert all(balance >= 0 for balance in outcome.after.balances.values())
    assert outcome.after.balances == dict(awarded)
    assert outcome.after.earned == dict(awarded)  # nothing was spent
    assert {c: sum(r.awards.get(c, 0) for r in outcome.results) for c in awarded} == dict(awarded)


@PROPERTY_SETTINGS
@given(events=fitquest_events(), zone=st.sampled_from(ZONES))
def test_level_follows_earned_xp_and_each_level_is_reported_once(fitquest, events, zone):
    outcome = run(fitquest, UserState("u1"), events, zone)
    levels = fitquest.levels
    expected = level_index(levels, outcome.after.earned.get("xp", 0))
    assert outcome.after.level == expected
    reported = [fact.data["level"] for fact in all_facts(outcome) if fact.type == "level_up"]
    assert reported == list(range(2, expected + 2))  # every level crossed, once, in order (numbers are 1-based)
    assert all(
        fact.data["name"] == levels.name_of(fact.data["level"] - 1)
        for fact in all_facts(outcome)
        if fact.type == "level_up"
    )


# ---------------------------------------------------------------- daily limit in the user's calendar


@PROPERTY_SETTINGS
@given(events=fitquest_events(max_size=40), zone=st.sampled_from(ZONES))
def test_at_most_five_workout_awards_per_local_day(fitquest, events, zone):
    outcome = run(fitquest, UserState("u1"), events, zone)
    tz = ZoneInfo(zone or fitquest.default_timezone)
    by_id = {event.id: event for event in events}

    def local_day(event: Event) -> str:
        return event.occurred_at.astimezone(tz).date().isoformat()

    awarded = Counter(
        local_day(by_id[fact.event_id])
        for fact in all_facts(outcome)
        if fact.type == "points_awarded" and fact.data["rule"] == "workout-xp" and fact.data["currency"] == "xp"
    )
    eligible = Counter(local_day(e) for e in events if e.type == "workout_completed" and e.properties["minutes"] >= 10)
    assert all(n <= 5 for n in awarded.values())
    # Exactly the first five eligible workouts of each local day earn xp
    assert awarded == Counter({day: min(n, 5) for day, n in eligible.items()})
    assert {k: v for k, v in outcome.after.counters.items() if k.startswith("workout-xp|")} == {
        f"workout-xp|{day}": n for day, n in awarded.items()
    }

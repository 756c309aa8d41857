"""The push policy: choices, validity, quiet hours, caps and priority, in that order (engage.notify.policy)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engage.config.schema import Caps, QuietHours
from engage.notify.policy import (
    Candidate,
    Decision,
    PushHistory,
    UserPrefs,
    decide,
    quiet_until,
    release,
)

NEW_YORK, KIRITIMATI = ZoneInfo("America/New_York"), ZoneInfo("Pacific/Kiritimati")
QUIET = QuietHours(start="21:30", end="08:00")  # the reference config's default, crossing midnight
NO_CAPS = Caps()
REASONS = {
    "opted_out", "paused", "expired", "stale", "quiet_hours", "cap_per_day", "cap_per_week", "min_gap", "budget",
    "lower_priority", "ok",
}  # fmt: skip
PROPERTY_SETTINGS = settings(max_examples=150, deadline=None)


def ny(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=NEW_YORK)


def candidate(
    message_id: str = "m1",
    *,
    at: datetime,
    valid_for: timedelta = timedelta(hours=2),
    priority: int = 5,
    category: str = "progress",
    created_at: datetime | None = None,
) -> Candidate:
    return Candidate(
        message_id=message_id,
        trigger_id=f"trigger-{message_id}",
        category=category,
        priority=priority,
        fact_key=f"fact-{message_id}",
        created_at=created_at or at,
        valid_until=at + valid_for,
    )


def prefs(**changes: object) -> UserPrefs:
    base: dict[str, object] = {"timezone": "America/New_York", "quiet_hours": QUIET}
    base.update(changes)
    return UserPrefs(**base)  # type: ignore[arg-type]


def one(
    c: Candidate, p: UserPrefs, now: datetime, caps: Caps = NO_CAPS, sent: list[datetime] | None = None
) -> Decision:
    (decision,) = decide([c], p, PushHistory(sent or []), caps, now)
    return decision


# ---------------------------------------------------------------- rules 1–3 and their order


def test_given_an_opted_out_category_when_inside_quiet_hours_then_inbox_opted_out_beats_quiet_hours() -> None:
    now = ny(2026, 1, 10, 23, 0)
    d = one(candidate(at=now, category="reminders"), prefs(opted_out={"reminders"}), now)
    assert (d.action, d.reason, d.deliver_at) == ("inbox", "opted_out", None)
    assert one(candidate(at=now, category="progress"), prefs(opted_out={"reminders"}), now).reason == "quiet_hours"


def test_given_an_opted_out_category_when_the_message_has_expired_then_opted_out_comes_first() -> None:
    now = ny(2026, 1, 10, 12, 0)
    d = one(candidate(at=now - timedelta(hours=3)), prefs(opted_out={"progress"}), now)
    assert (d.action, d.reason) == ("inbox", "opted_out")


def test_given_pushes_paused_when_deciding_then_inbox_paused_until_the_pause_ends() -> None:
    now = ny(2026, 1, 10, 12, 0)
    assert one(candidate(at=now), prefs(paused_until=now + timedelta(minutes=1)), now).reason == "paused"
    d = one(candidate(at=now), prefs(paused_until=now), now)
    assert (d.action, d.reason) == ("push", "ok")


def test_given_an_expired_message_when_inside_quiet_hours_then_it_is_dropped_expired_beats_quiet_hours() -> None:
    now = ny(2026, 1, 10, 23, 0)
    d = one(candidate(at=now - timedelta(hours=2, seconds=1)), prefs(), now)
    assert (d.action, d.reason, d.deliver_at) == ("drop", "expired", None)
    # at valid_until exactly it is still valid
    assert one(candidate(at=now - timedelta(hours=2)), prefs(quiet_hours=None), now).action == "push"


@pytest.mark.parametrize(
    ("now", "deliver_at"),
    [
        (ny(2026, 1, 10, 21, 30), ny(2026, 1, 11, 8, 0)),  # the window starts
        (ny(2026, 1, 10, 23, 59), ny(2026, 1, 11, 8, 0)),  # before midnight: tomorrow's 08:00
        (ny(2026, 1, 11, 0, 0), ny(2026, 1, 11, 8, 0)),  # after midnight: today's 08:00
        (ny(2026, 1, 11, 7, 59), ny(2026, 1, 11, 8, 0)),
    ],
)
def test_given_quiet_hours_crossing_midnight_when_inside_then_the_push_is_deferred_to_the_window_end(
    now: datetime, deliver_at: datetime
) -> None:
    d = one(candidate(at=now, valid_for=timedelta(hours=12)), prefs(), now)
    assert (d.action, d.reason, d.deliver_at) == ("defer", "quiet_hours", deliver_at)
    assert d.deliver_at is not None and d.deliver_at.tzinfo is UTC


@pytest.mark.parametrize("now", [ny(2026, 1, 10, 21, 29), ny(2026, 1, 11, 8, 0), ny(2026, 1, 11, 12, 0)])
def test_given_quiet_hours_when_outside_the_window_then_the_push_goes_now(now: datetime) -> None:
    assert one(candidate(at=now), prefs(), now).action == "push"


@pytest.mark.parametrize(
    ("now", "deliver_at_utc"),
    [
        # spring forward, 2026-03-08 02:00 EST → 03:00 EDT: the window ends at 08:00 EDT = 12:00 UTC
        (ny(2026, 3, 7, 22, 0), datetime(2026, 3, 8, 12, 0, tzinfo=UTC)),
        (datetime(2026, 3, 8, 6, 59, tzinfo=UTC), datetime(2026, 3, 8, 12, 0, tzinfo=UTC)),  # 01:59 EST
        (datetime(2026, 3, 8, 7, 0, tzinfo=UTC), datetime(2026, 3, 8, 12, 0, tzinfo=UTC)),  # 03:00 EDT
        # fall back, 2026-11-01 02:00 EDT → 01:00 EST: the window ends at 08:00 EST = 13:00 UTC
        (ny(2026, 10, 31, 22, 0), datetime(2026, 11, 1, 13, 0, tzinfo=UTC)),
        (datetime(2026, 11, 1, 5, 30, tzinfo=UTC), datetime(2026, 11, 1, 13, 0, tzinfo=UTC)),  # 01:30 EDT
        (datetime(2026, 11, 1, 6, 30, tzinfo=UTC), datetime(2026, 11, 1, 13, 0, tzinfo=UTC)),  # 01:30 EST
    ],
)
def test_given_new_york_dst_switch_nights_when_inside_quiet_hours_then_the_defer_lands_at_local_eight(
    now: datetime, deliver_at_utc: datetime
) -> None:
    d = one(candidate(at=now, valid_for=timedelta(hours=14)), prefs(), now)
    assert (d.action, d.deliver_at) == ("defer", deliver_at_utc)
    assert d.deliver_at is not None and d.deliver_at.astimezone(NEW_YORK).strftime("%H:%M") == "08:00"


def test_given_new_york_dst_nights_when_the_window_ends_then_the_first_minute_after_it_is_allowed() -> None:
    assert one(candidate(at=ny(2026, 3, 8, 8, 0)), prefs(), datetime(2026, 3, 8, 12, 0, tzinfo=UTC)).action == "push"
    assert one(candidate(at=ny(2026, 3, 8, 8, 0)), prefs(), datetime(2026, 3, 8, 11, 59, tzinfo=UTC)).action == "defer"
    assert one(candidate(at=ny(2026, 11, 1, 8)), prefs(), datetime(2026, 11, 1, 12, 59, tzinfo=UTC)).action == "defer"
    assert one(candidate(at=ny(2026, 11, 1, 8)), prefs(), datetime(2026, 11, 1, 13, 0, tzinfo=UTC)).action == "push"


@pytest.mark.parametrize(
    ("now", "end_utc"),
    [
        (datetime(2026, 11, 1, 5, 15, tzinfo=UTC), datetime(2026, 11, 1, 5, 30, tzinfo=UTC)),  # 01:15 EDT → 01:30 EDT
        (datetime(2026, 11, 1, 6, 15, tzinfo=UTC), datetime(2026, 11, 1, 6, 30, tzinfo=UTC)),  # 01:15 EST → 01:30 EST
    ],
)
def test_given_a_window_ending_in_the_hour_that_happens_twice_then_it_ends_at_its_next_occurrence_never_in_the_past(
    now: datetime, end_utc: datetime
) -> None:
    # 22:00–01:30 in New York on the fall-back night: 01:00–02:00 happens twice
    end = quiet_until(QuietHours(start="22:00", end="01:30"), now, NEW_YORK)
    assert end == end_utc and end > now
    between = datetime(2026, 11, 1, 5, 45, tzinfo=UTC)  # 01:45 EDT: outside until the clock shows 01:00 again
    assert quiet_until(QuietHours(start="22:00", end="01:30"), between, NEW_YORK) is None


def test_given_a_plus_fourteen_zone_when_inside_quiet_hours_then_the_window_is_read_on_the_local_clock() -> None:
    p = prefs(timezone="Pacific/Kiritimati")
    now = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # 22:00 on 2026-03-02 in Kiritimati
    d = one(candidate(at=now, valid_for=timedelta(hours=12)), p, now)
    assert (d.action, d.deliver_at) == ("defer", datetime(2026, 3, 3, 8, 0, tzinfo=KIRITIMATI))
    assert d.deliver_at == datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
    assert d.inputs.local_now == datetime(2026, 3, 2, 22, 0, tzinfo=KIRITIMATI)
    later = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)  # 10:00 on 2026-03-03 there, though 20:00 in UTC
    assert one(candidate(at=later), p, later).action == "push"


def test_given_quiet_hours_when_the_message_expires_before_the_window_ends_then_inbox_instead_of_defer() -> None:
    now = ny(2026, 1, 10, 23, 0)
    d = one(candidate(at=now, valid_for=timedelta(hours=4)), prefs(), now)
    assert (d.action, d.reason, d.deliver_at) == ("inbox", "quiet_hours", None)
    # a window ending exactly at valid_until is not "before" it either
    assert one(candidate(at=now, valid_for=timedelta(hours=9)), prefs(), now).action == "inbox"


def test_given_a_same_day_window_or_an_empty_one_when_deciding_then_both_are_read_plainly() -> None:
    lunch = QuietHours(start="12:00", end="13:30")
    assert quiet_until(lunch, ny(2026, 1, 10, 12, 15), NEW_YORK) == ny(2026, 1, 10, 13, 30)
    assert quiet_until(lunch, ny(2026, 1, 10, 13, 30), NEW_YORK) is None
    assert quiet_until(QuietHours(start="08:00", end="08:00"), ny(2026, 1, 10, 8, 0), NEW_YORK) is None


# ---------------------------------------------------------------- rule 4: caps on the user's calendar


def test_given_a_push_at_23_30_local_yesterday_when_capped_per_day_then_it_does_not_count_today() -> None:
    caps = Caps(per_day=1)
    yesterday = ny(2026, 1, 10, 23, 30)  # 2026-01-11 04:30 UTC: "today" in UTC, yesterday for the user
    now = ny(2026, 1, 11, 9, 0)
    d = one(candidate(at=now), prefs(quiet_hours=None), now, caps, [yesterday])
    assert (d.action, d.reason, d.inputs.usage.today) == ("push", "ok", 0)
    this_morning = ny(2026, 1, 11, 0, 30)
    d = one(candidate(at=now), prefs(quiet_hours=None), now, caps, [this_morning])
    assert (d.action, d.reason, d.inputs.usage.today) == ("inbox", "cap_per_day", 1)


def test_given_pushes_this_iso_week_when_capped_per_week_then_last_week_does_not_count() -> None:
    caps = Caps(per_week=2)
    p = prefs(quiet_hours=None)
    monday = ny(2026, 1, 12, 12, 0)
    last_sunday_late = ny(2026, 1, 11, 23, 30)  # Monday in UTC, the previous ISO week for the user
    assert one(candidate(at=monday), p, monday, caps, [ny(2026, 1, 10, 12), last_sunday_late]).action == "push"
    wednesday = ny(2026, 1, 14, 12, 0)
    d = one(candidate(at=wednesday), p, wednesday, caps, [monday, ny(2026, 1, 13, 12)])
    assert (d.action, d.reason, d.inputs.usage.this_week) == ("inbox", "cap_per_week", 2)


def test_given_a_min_gap_when_the_last_push_is_too_recent_then_inbox_min_gap() -> None:
    caps = Caps(min_gap=timedelta(hours=2))
    now = ny(2026, 1, 11, 12, 0)
    d = one(candidate(at=now), prefs(), now, caps, [now - timedelta(hours=1, minutes=59)])
    assert (d.action, d.reason) == ("inbox", "min_gap")
    assert one(candidate(at=now), prefs(), now, caps, [now - timedelta(hours=2)]).action == "push"


def test_given_a_weekly_budget_lower_than_the_cap_when_reached_then_the_budget_wins() -> None:
    caps = Caps(per_week=6)
    now = ny(2026, 1, 14, 12, 0)
    sent = [ny(2026, 1, 12, 12), ny(2026, 1, 13, 12)]
    d = one(candidate(at=now), prefs(weekly_budget=2), now, caps, sent)
    assert (d.action, d.reason) == ("inbox", "budget")
    assert one(candidate(at=now), prefs(weekly_budget=3), now, caps, sent).action == "push"
    # a budget above the configured cap does not raise it
    week = [ny(2026, 1, 12, h) for h in (9, 12, 15)] + [ny(2026, 1, 13, h) for h in (9, 12, 15)]
    assert one(candidate(at=now), prefs(weekly_budget=10), now, caps, week).reason == "cap_per_week"


def test_given_caps_when_also_in_quiet_hours_then_quiet_hours_come_first() -> None:
    now = ny(2026, 1, 10, 23, 0)
    d = one(candidate(at=now, valid_for=timedelta(hours=12)), prefs(), now, Caps(per_day=1), [ny(2026, 1, 10, 9)])
    assert (d.action, d.reason) == ("defer", "quiet_hours")


# ---------------------------------------------------------------- rule 5: one push per decision


def test_given_several_triggers_at_once_when_deciding_then_the_highest_priority_pushes_and_the_rest_go_to_inbox() -> (
    None
):
    now = ny(2026, 1, 11, 12, 0)
    batch = [
        candidate("badge", at=now, priority=5),
        candidate("level", at=now, priority=6),
        candidate("overtaken", at=now, priority=3, category="competition"),
    ]
    decisions = decide(batch, prefs(), PushHistory([]), Caps(per_day=5), now)
    assert [(d.message_id, d.action, d.reason) for d in decisions] == [
        ("badge", "inbox", "lower_priority"),
        ("level", "push", "ok"),
        ("overtaken", "inbox", "lower_priority"),
    ]


def test_given_equal_priorities_when_deciding_then_the_newest_pushes_then_the_lowest_id() -> None:
    """Never stale: of two level-ups from one workout, level 3 is pushed, not level 2 (the latest fact of the
    event); of two held messages released together, the later one."""
    now = ny(2026, 1, 11, 12, 0)
    early, late = now - timedelta(minutes=5), now

    def pushed(*batch: Candidate) -> str:
        return next(
            d.message_id for d in decide(list(batch), prefs(), PushHistory([]), NO_CAPS, now) if d.action == "push"
        )

    level_2, level_3 = (replace(candidate(m, at=now, created_at=late), position=p) for m, p in (("a2", 1), ("z3", 2)))
    assert pushed(candidate("a", at=now, created_at=early), candidate("b", at=now, created_at=late)) == "b"
    assert pushed(level_2, level_3) == pushed(level_3, level_2) == "z3"
    assert pushed(candidate("b", at=now), candidate("a", at=now)) == "a"


def test_given_several_triggers_when_one_pushes_then_the_others_say_lower_priority_even_if_a_cap_is_now_hit() -> None:
    """The user's question is "why not this one?": because another was pushed at the same moment."""
    now = ny(2026, 1, 11, 12, 0)
    batch = [candidate("a", at=now, priority=9), candidate("b", at=now)]
    per_day = decide(batch, prefs(), PushHistory([]), Caps(per_day=1), now)
    assert [(d.action, d.reason) for d in per_day] == [("push", "ok"), ("inbox", "lower_priority")]
    assert per_day[1].inputs.usage.today == 1 and "a (priority 9)" in per_day[1].detail
    gap = decide(batch, prefs(), PushHistory([]), Caps(per_day=2, min_gap=timedelta(hours=2)), now)
    assert [d.reason for d in gap] == ["ok", "lower_priority"]


def test_given_caps_already_reached_when_several_triggers_arrive_then_none_pushes_and_each_says_why() -> None:
    now = ny(2026, 1, 11, 12, 0)
    batch = [candidate("a", at=now, priority=9), candidate("b", at=now), candidate("c", at=now, category="muted")]
    decisions = decide(batch, prefs(opted_out={"muted"}), PushHistory([ny(2026, 1, 11, 9)]), Caps(per_day=1), now)
    assert [(d.action, d.reason) for d in decisions] == [
        ("inbox", "cap_per_day"),
        ("inbox", "cap_per_day"),
        ("inbox", "opted_out"),
    ]


def test_given_a_naive_datetime_when_deciding_then_it_is_refused() -> None:
    now = ny(2026, 1, 11, 12, 0)
    with pytest.raises(ValueError, match="no time zone"):
        decide([candidate(at=now)], prefs(), PushHistory([]), NO_CAPS, now.replace(tzinfo=None))


# ---------------------------------------------------------------- release of a deferred message


def deferred(now: datetime, valid_for: timedelta = timedelta(hours=12)) -> tuple[Decision, Candidate]:
    c = candidate("reminder", at=now, valid_for=valid_for, category="reminders", priority=8)
    d = one(c, prefs(), now)
    assert d.action == "defer" and d.deliver_at is not None
    return d, c


def test_given_a_deferred_reminder_when_the_user_already_acted_then_release_drops_it_as_stale() -> None:
    d, c = deferred(ny(2026, 1, 10, 22, 0))
    assert d.deliver_at is not None
    released = release(d, c, d.deliver_at, still_relevant=False, prefs=prefs(), history=PushHistory([]), caps=NO_CAPS)
    assert (released.action, released.reason) == ("drop", "stale")


def test_given_a_deferred_message_when_still_relevant_at_the_window_end_then_it_is_pushed() -> None:
    d, c = deferred(ny(2026, 1, 10, 22, 0))
    assert d.deliver_at is not None
    released = release(d, c, d.deliver_at, still_relevant=True, prefs=prefs(), history=PushHistory([]), caps=NO_CAPS)
    assert (released.action, released.reason) == ("push", "ok")


def test_given_a_deferred_message_the_user_already_read_in_the_inbox_when_released_then_it_stays_there() -> None:
    d, c = deferred(ny(2026, 1, 10, 22, 0))
    assert d.deliver_at is not None
    read = replace(c, seen=True)
    released = release(d, read, d.deliver_at, still_relevant=True, prefs=prefs(), history=PushHistory([]), caps=NO_CAPS)
    assert (released.action, released.reason) == ("inbox", "seen")


def test_given_a_deferred_message_when_released_after_validity_then_it_is_dropped_expired() -> None:
    d, c = deferred(ny(2026, 1, 10, 22, 0))
    late = c.valid_until + timedelta(seconds=1)
    released = release(d, c, late, still_relevant=True, prefs=prefs(), history=PushHistory([]), caps=NO_CAPS)
    assert (released.action, released.reason) == ("drop", "expired")


def test_given_a_deferred_message_when_caps_filled_meanwhile_or_the_user_opted_out_then_release_sends_to_inbox() -> (
    None
):
    d, c = deferred(ny(2026, 1, 10, 22, 0))
    assert d.deliver_at is not None
    history = PushHistory([d.deliver_at - timedelta(minutes=30)])
    capped = release(d, c, d.deliver_at, True, prefs=prefs(), history=history, caps=Caps(min_gap=timedelta(hours=2)))
    assert (capped.action, capped.reason) == ("inbox", "min_gap")
    muted = release(
        d, c, d.deliver_at, True, prefs=prefs(opted_out={"reminders"}), history=PushHistory([]), caps=NO_CAPS
    )
    assert (muted.action, muted.reason) == ("inbox", "opted_out")


def test_given_a_decision_that_is_not_a_defer_when_released_then_it_is_refused() -> None:
    now = ny(2026, 1, 11, 12, 0)
    c = candidate(at=now)
    with pytest.raises(ValueError, match="deferred"):
        release(one(c, prefs(), now), c, now, True, prefs=prefs(), history=PushHistory([]), caps=NO_CAPS)


# ---------------------------------------------------------------- properties

ZONES = ["UTC", "America/New_York", "Pacific/Kiritimati", "America/St_Johns", "Asia/Kolkata", "Pacific/Pago_Pago"]
START = datetime(2026, 3, 1, tzinfo=UTC)  # sequences run across the 2026-03-08 DST switch
hhmm = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))
quiet_hours = st.one_of(st.none(), st.builds(QuietHours, start=hhmm, end=hhmm))
caps_strategy = st.builds(
    Caps,
    per_day=st.one_of(st.none(), st.integers(1, 3)),
    per_week=st.one_of(st.none(), st.integers(1, 8)),
    min_gap=st.one_of(st.none(), st.integers(1, 240).map(lambda m: timedelta(minutes=m))),
)
prefs_strategy = st.builds(
    UserPrefs,
    opted_out=st.sets(st.sampled_from(["progress", "reminders"]), max_size=1),
    paused_until=st.one_of(st.none(), st.integers(-600, 600).map(lambda m: START + timedelta(minutes=m))),
    quiet_hours=quiet_hours,
    timezone=st.sampled_from(ZONES),
    weekly_budget=st.one_of(st.none(), st.integers(0, 8)),
)


@st.composite
def candidates_strategy(draw: st.DrawFn, now: datetime, prefix: str = "m") -> list[Candidate]:
    count = draw(st.integers(0, 5))
    return [
        Candidate(
            message_id=f"{prefix}{i}",
            trigger_id=draw(st.sampled_from(["badge-earned", "level-up", "overtaken"])),
            category=draw(st.sampled_from(["progress", "reminders", "competition"])),
            priority=draw(st.integers(0, 10)),
            fact_key=f"fact-{prefix}{i}",
            created_at=now - timedelta(minutes=draw(st.integers(0, 120))),
            valid_until=now + timedelta(minutes=draw(st.integers(-60, 24 * 60))),
        )
        for i in range(count)
    ]


@PROPERTY_SETTINGS
@given(
    data=st.data(),
    p=prefs_strategy,
    caps=caps_strategy,
    sent=st.lists(st.integers(-14 * 24 * 60, 0).map(lambda m: START + timedelta(minutes=m)), max_size=8),
)
def test_property_every_candidate_gets_one_decision_with_a_reason_and_at_most_one_pushes(
    data: st.DataObject, p: UserPrefs, caps: Caps, sent: list[datetime]
) -> None:
    batch = data.draw(candidates_strategy(START))
    decisions = decide(batch, p, PushHistory(sent), caps, START)
    assert [d.message_id for d in decisions] == [c.message_id for c in batch]
    assert all(d.reason in REASONS for d in decisions)
    assert all((d.action == "defer") == (d.deliver_at is not None) for d in decisions)
    assert all((d.action == "push") == (d.reason == "ok") for d in decisions)
    assert sum(d.action == "push" for d in decisions) <= 1
    for d, c in zip(decisions, batch, strict=True):
        if d.deliver_at is not None:
            assert START < d.deliver_at < c.valid_until


def due_at(decision: Decision) -> datetime:
    assert decision.deliver_at is not None
    return decision.deliver_at


def _week_limit(caps: Caps, p: UserPrefs) -> int | None:
    limits = [limit for limit in (caps.per_week, p.weekly_budget) if limit is not None]
    return min(limits) if limits else None


@PROPERTY_SETTINGS
@given(
    data=st.data(),
    p=prefs_strategy.map(lambda p: UserPrefs(set(), None, p.quiet_hours, p.timezone, p.weekly_budget)),
    caps=caps_strategy,
    steps=st.lists(st.integers(0, 9 * 60), min_size=1, max_size=25),
)
def test_property_over_a_sequence_of_calls_pushes_never_exceed_the_caps_nor_fall_in_quiet_hours(
    data: st.DataObject, p: UserPrefs, caps: Caps, steps: list[int]
) -> None:
    zone = ZoneInfo(p.timezone)
    sent: list[datetime] = []
    pending: list[tuple[Decision, Candidate]] = []
    now = START
    for step, advance in enumerate(steps):
        now += timedelta(minutes=advance)
        due = sorted((x for x in pending if due_at(x[0]) <= now), key=lambda x: due_at(x[0]))
        pending = [x for x in pending if due_at(x[0]) > now]
        for decision, c in due:
            relevant = data.draw(st.booleans())
            released = release(decision, c, now, relevant, prefs=p, history=PushHistory(list(sent)), caps=caps)
            if released.action == "push":
                sent.append(now)
            elif released.action == "defer":
                pending.append((released, c))
        batch = data.draw(candidates_strategy(now, f"s{step}-"))
        decisions = decide(batch, p, PushHistory(list(sent)), caps, now)
        assert sum(d.action == "push" for d in decisions) <= 1
        sent += [now for d in decisions if d.action == "push"]
        pending += [(d, c) for d, c in zip(decisions, batch, strict=True) if d.action == "defer"]

    days = Counter(moment.astimezone(zone).date() for moment in sent)
    weeks = Counter(moment.astimezone(zone).date().isocalendar()[:2] for moment in sent)
    if caps.per_day is not None:
        assert max(days.values(), default=0) <= caps.per_day
    week_limit = _week_limit(caps, p)
    if week_limit is not None:
        assert max(weeks.values(), default=0) <= week_limit
    if caps.min_gap is not None:
        assert all(later - earlier >= caps.min_gap for earlier, later in pairwise(sent))
    assert all(quiet_until(p.quiet_hours, moment, zone) is None for moment in sent)


@pytest.mark.parametrize(("pushed_ago", "action"), [(timedelta(seconds=30), "inbox"), (timedelta(minutes=2), "push")])
def test_given_no_caps_when_a_push_went_out_under_a_minute_ago_then_this_one_waits_in_the_inbox(pushed_ago, action):
    # Two messages due at a window's end can reach notify in two invocations: without min_gap both pushed.
    now = ny(2026, 1, 10, 8, 0)
    d = one(candidate(at=now), prefs(), now, sent=[now - pushed_ago])
    assert d.action == action and d.reason == ("lower_priority" if action == "inbox" else "ok")

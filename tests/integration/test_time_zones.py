"""Streaks and daily quests on the user's own calendar, against DynamoDB Local.

Every request goes through `ingest_client_events` with a fixed `now` (the late window is 7 days, so past
dates such as DST days are reachable), one request per simulated moment, so the state round-trips through
the store between them. Streak facts name their period as the local date's ordinal; daily quests name their
run as the local date ("2026-03-08").

Not covered here: a weekly quest resetting at local Monday 00:00 (FitQuest has no weekly quest; see
tests/unit/test_progression.py).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from engage.api.events import EventsRequest, IngestResponse
from engage.api.models import StreakOut
from engage.services.ingest import ingest_client_events
from engage.services.me import my_progress

STREAK = "daily-workout"
DAILY = "daily-goal"


# ---------------------------------------------------------------- helpers


def local(zone: str, year: int, month: int, day: int, hour: int, minute: int = 0, fold: int = 0) -> datetime:
    """A wall-clock moment in `zone`, as an aware datetime."""
    return datetime(year, month, day, hour, minute, fold=fold, tzinfo=ZoneInfo(zone))


def workout(event_id: str, at: datetime, minutes: int = 30, kind: str = "run") -> dict:
    return {"id": event_id, "type": "workout_completed", "occurred_at": at.isoformat(),
            "properties": {"minutes": minutes, "kind": kind}}  # fmt: skip


class Athlete:
    """One user sending one workout per request, each request at its own fixed server time."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.sent = 0

    def works_out(self, zone: str, at: datetime, minutes: int = 30, now: datetime | None = None) -> IngestResponse:
        """POST /v1/events with one workout at `at`, the device in `zone`; the server's clock reads `now`
        (a minute after the workout unless given; added in UTC, since aware arithmetic in one zone is
        wall-clock arithmetic and would lose a fold)."""
        self.sent += 1
        request = EventsRequest.model_validate(
            {"events": [workout(f"{self.user_id}-{self.sent}", at, minutes)], "context": {"timezone": zone}}
        )
        answer = ingest_client_events(
            request, {"sub": self.user_id}, now=now or at.astimezone(UTC) + timedelta(minutes=1)
        )
        assert answer.accepted == 1, answer.results
        return answer

    def streak(self, now: datetime) -> StreakOut:
        """GET /v1/me's daily-workout streak at server time `now`."""
        return next(s for s in my_progress({"sub": self.user_id}, now=now).streaks if s.id == STREAK)


def streak_facts(answer: IngestResponse, type_: str) -> list[dict]:
    return [f for f in answer.progress.streaks if f["type"] == type_ and f["streak"] == STREAK]


def lengths(answer: IngestResponse) -> list[int]:
    return [f["length"] for f in streak_facts(answer, "streak_extended")]


def periods(answer: IngestResponse, type_: str = "streak_extended") -> list[date]:
    return [date.fromordinal(f["period"]) for f in streak_facts(answer, type_)]


def completed_daily_goals(answer: IngestResponse) -> list[str]:
    return [f["instance"] for f in answer.progress.quests if f["type"] == "quest_completed" and f["quest"] == DAILY]


# ---------------------------------------------------------------- 1. DST days in New York

NEW_YORK = "America/New_York"


@pytest.mark.parametrize(
    ("day", "hours"),
    [(date(2026, 3, 8), 23), (date(2026, 11, 1), 25)],
    ids=["spring-forward", "fall-back"],
)
def test_on_a_dst_day_early_and_late_workouts_are_one_streak_day_and_one_daily_goal_run(user_id, day, hours):
    # Given a New York user who worked out the evening before a DST change day
    zone = ZoneInfo(NEW_YORK)
    before, after = day - timedelta(days=1), day + timedelta(days=1)
    midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
    next_midnight = datetime(after.year, after.month, after.day, tzinfo=zone)
    assert next_midnight.astimezone(UTC) - midnight.astimezone(UTC) == timedelta(hours=hours)  # the day's length
    athlete = Athlete(user_id)
    eve = athlete.works_out(NEW_YORK, local(NEW_YORK, before.year, before.month, before.day, 20))
    assert lengths(eve) == [1]

    # When they work out 15 minutes at 00:30 and 20 minutes at 23:30 local on the DST day
    early = athlete.works_out(NEW_YORK, local(NEW_YORK, day.year, day.month, day.day, 0, 30), minutes=15)
    late = athlete.works_out(NEW_YORK, local(NEW_YORK, day.year, day.month, day.day, 23, 30), minutes=20)

    # Then the early one extends the streak to 2 for that day, the late one is the same streak day
    assert (lengths(early), periods(early)) == ([2], [day])
    assert late.progress.streaks == []
    # And both count towards the same run of the daily goal, which 15 + 20 minutes complete
    assert completed_daily_goals(early) == []
    assert completed_daily_goals(late) == [day.isoformat()]

    # When they work out on the next local day
    next_day = athlete.works_out(NEW_YORK, local(NEW_YORK, after.year, after.month, after.day, 19))

    # Then the streak grows by exactly one
    assert (lengths(next_day), periods(next_day)) == ([3], [after])
    assert [f["length"] for f in streak_facts(next_day, "streak_milestone")] == [3]
    assert completed_daily_goals(next_day) == [after.isoformat()]
    streak = athlete.streak(local(NEW_YORK, after.year, after.month, after.day, 21))
    assert (streak.length, streak.done_this_period, streak.at_risk) == (3, True, False)


def test_a_workout_in_the_repeated_hour_of_fall_back_counts_for_that_day(user_id):
    # Given a New York user who worked out at 00:30 on fall-back day 2026-11-01
    athlete = Athlete(user_id)
    athlete.works_out(NEW_YORK, local(NEW_YORK, 2026, 11, 1, 0, 30), minutes=10)

    # When they work out in both 01:30s (EDT, then EST an hour later) and at 23:30
    first = athlete.works_out(NEW_YORK, local(NEW_YORK, 2026, 11, 1, 1, 30, fold=0), minutes=10)
    second = athlete.works_out(NEW_YORK, local(NEW_YORK, 2026, 11, 1, 1, 30, fold=1), minutes=5)
    last = athlete.works_out(NEW_YORK, local(NEW_YORK, 2026, 11, 1, 23, 30), minutes=10)

    # Then none of them starts a new streak day, and the daily goal completes once, at 35 minutes
    assert first.progress.streaks == second.progress.streaks == last.progress.streaks == []
    assert (completed_daily_goals(first), completed_daily_goals(second), completed_daily_goals(last)) == (
        [], [], ["2026-11-01"],
    )  # fmt: skip
    daily = next(q for q in my_progress({"sub": user_id}, now=local(NEW_YORK, 2026, 11, 1, 23, 45)).quests
                 if q.id == DAILY)  # fmt: skip
    assert (daily.instance, daily.state, daily.steps[0].value) == ("2026-11-01", "completed", 35)


# ---------------------------------------------------------------- 2. UTC+14


def test_in_kiritimati_ten_thirty_utc_is_already_the_next_local_day(user_id):
    zone = "Pacific/Kiritimati"
    late_evening = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    just_after_midnight = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)
    assert late_evening.astimezone(ZoneInfo(zone)).replace(tzinfo=None) == datetime(2026, 11, 20, 23, 30)
    assert just_after_midnight.astimezone(ZoneInfo(zone)).replace(tzinfo=None) == datetime(2026, 11, 21, 0, 30)
    athlete = Athlete(user_id)

    # Given a workout at 09:30Z (23:30 on the 20th in Kiritimati)
    first = athlete.works_out(zone, late_evening)
    # When the next one is an hour later, at 10:30Z (00:30 on the 21st)
    second = athlete.works_out(zone, just_after_midnight)

    # Then they are consecutive local days: a streak of 2, and two daily-goal runs
    assert (lengths(first), periods(first)) == ([1], [date(2026, 11, 20)])
    assert (lengths(second), periods(second)) == ([2], [date(2026, 11, 21)])
    assert completed_daily_goals(first) == ["2026-11-20"]
    assert completed_daily_goals(second) == ["2026-11-21"]
    streak = athlete.streak(just_after_midnight + timedelta(minutes=5))
    assert (streak.length, streak.done_this_period) == (2, True)


# ---------------------------------------------------------------- 3. half-hour offset


def test_in_st_johns_the_day_boundary_is_at_0330_utc_in_winter(user_id):
    zone = "America/St_Johns"  # NST, UTC−3:30
    at_2329 = datetime(2026, 1, 15, 2, 59, tzinfo=UTC)
    at_2359 = datetime(2026, 1, 15, 3, 29, tzinfo=UTC)
    at_0001 = datetime(2026, 1, 15, 3, 31, tzinfo=UTC)
    to_local = lambda moment: moment.astimezone(ZoneInfo(zone)).replace(tzinfo=None)  # noqa: E731
    assert (to_local(at_2329), to_local(at_2359), to_local(at_0001)) == (
        datetime(2026, 1, 14, 23, 29), datetime(2026, 1, 14, 23, 59), datetime(2026, 1, 15, 0, 1),
    )  # fmt: skip
    # (A whole-hour offset would split these differently: at −3 02:59Z and 03:29Z fall on different days,
    # at −4 all three fall on the 14th.)
    athlete = Athlete(user_id)

    # Given 15-minute workouts at local 23:29 and 23:59 on the 14th
    first = athlete.works_out(zone, at_2329, minutes=15)
    second = athlete.works_out(zone, at_2359, minutes=15)
    # When the next one is at local 00:01 on the 15th
    third = athlete.works_out(zone, at_0001, minutes=30)

    # Then the first two are one local day (one streak day, one daily-goal run of 30 minutes)
    assert (lengths(first), periods(first)) == ([1], [date(2026, 1, 14)])
    assert second.progress.streaks == []
    assert completed_daily_goals(second) == ["2026-01-14"]
    # And the third is the next local day
    assert (lengths(third), periods(third)) == ([2], [date(2026, 1, 15)])
    assert completed_daily_goals(third) == ["2026-01-15"]
    me = my_progress({"sub": user_id}, now=at_0001 + timedelta(minutes=1))
    streak = next(s for s in me.streaks if s.id == STREAK)
    daily = next(q for q in me.quests if q.id == DAILY)
    assert (me.timezone, streak.length, streak.done_this_period) == (zone, 2, True)
    assert (daily.instance, daily.state) == ("2026-01-15", "completed")


# ---------------------------------------------------------------- 4. changing zone


def test_a_user_who_moves_from_berlin_to_new_york_keeps_their_streak(user_id):
    athlete = Athlete(user_id)
    answers = []

    # Given three workouts on consecutive local days in Berlin, at 19:00
    for day in (12, 13, 14):
        answers.append(athlete.works_out("Europe/Berlin", local("Europe/Berlin", 2026, 1, day, 19)))
    # When the user flies to New York and keeps working out at 19:00 local, once per local day
    for day in (15, 16):
        answers.append(athlete.works_out(NEW_YORK, local(NEW_YORK, 2026, 1, day, 19)))

    # Then every workout extends the streak by one: nothing frozen, nothing broken
    assert [lengths(a) for a in answers] == [[1], [2], [3], [4], [5]]
    assert [p for a in answers for p in periods(a)] == [date(2026, 1, d) for d in range(12, 17)]
    assert all(not streak_facts(a, "streak_frozen") and not streak_facts(a, "streak_broken") for a in answers)
    # And /v1/me shows the streak on the New York calendar
    evening = my_progress({"sub": user_id}, now=local(NEW_YORK, 2026, 1, 16, 23, 30))  # 04:30Z on the 17th
    streak = next(s for s in evening.streaks if s.id == STREAK)
    assert evening.timezone == NEW_YORK
    assert (streak.length, streak.freezes, streak.done_this_period, streak.at_risk) == (5, 0, True, False)
    morning = athlete.streak(local(NEW_YORK, 2026, 1, 17, 8))
    assert (morning.length, morning.done_this_period, morning.at_risk) == (5, False, True)


# ---------------------------------------------------------------- 5. freezes


def test_a_freeze_earned_in_seven_days_bridges_one_missed_day_and_two_missed_days_break_the_streak(user_id):
    zone = "Asia/Kolkata"  # UTC+5:30: the local evening is the UTC afternoon
    athlete = Athlete(user_id)

    def on(day: int) -> IngestResponse:  # a workout at 19:00 local on February `day`, sent at 20:00
        return athlete.works_out(zone, local(zone, 2026, 2, day, 19), now=local(zone, 2026, 2, day, 20))

    # Given workouts on 7 consecutive days (Feb 2–8)
    week = [on(day) for day in range(2, 9)]
    assert [lengths(a) for a in week] == [[n] for n in range(1, 8)]
    assert [f["length"] for a in week for f in streak_facts(a, "streak_milestone")] == [3, 7]
    assert athlete.streak(local(zone, 2026, 2, 8, 21)).freezes == 1  # earned by the 7-day run

    # When Feb 9 is missed (the streak holds on the freeze meanwhile) and Feb 10 has a workout
    missed = athlete.streak(local(zone, 2026, 2, 10, 8))
    assert (missed.length, missed.freezes, missed.at_risk) == (7, 1, True)
    bridged = on(10)

    # Then the freeze is spent on Feb 9 and the streak goes on to 8
    assert [f["type"] for f in bridged.progress.streaks] == ["streak_frozen", "streak_extended"]
    assert streak_facts(bridged, "streak_frozen")[0]["freezes_left"] == 0
    assert periods(bridged, "streak_frozen") == [date(2026, 2, 9)]
    assert (lengths(bridged), periods(bridged)) == ([8], [date(2026, 2, 10)])
    streak = athlete.streak(local(zone, 2026, 2, 10, 21))
    assert (streak.length, streak.freezes, streak.done_this_period) == (8, 0, True)

    # When Feb 11 and 12 are missed with no freeze left, and Feb 13 has a workout
    broken = on(13)

    # Then the streak is broken (after 8 days) and a new one starts at 1
    assert [f["type"] for f in broken.progress.streaks] == ["streak_broken", "streak_extended"]
    assert streak_facts(broken, "streak_broken")[0]["previous_length"] == 8
    assert (lengths(broken), periods(broken)) == ([1], [date(2026, 2, 13)])
    streak = athlete.streak(local(zone, 2026, 2, 13, 21))
    assert (streak.length, streak.longest, streak.freezes) == (1, 8, 0)


# ---------------------------------------------------------------- 6. /v1/me between workouts


def test_me_shows_the_streak_at_risk_until_todays_workout_and_zero_once_days_are_missed(user_id):
    zone = "Australia/Sydney"  # UTC+11 in January: the local morning is the previous UTC day
    athlete = Athlete(user_id)
    athlete.works_out(zone, local(zone, 2026, 1, 5, 18))
    athlete.works_out(zone, local(zone, 2026, 1, 6, 18))

    # Given a streak of 2 and no workout yet on Jan 7 (local morning, still Jan 6 in UTC)
    morning = athlete.streak(local(zone, 2026, 1, 7, 7))
    # Then /v1/me shows it at risk and not done
    assert (morning.length, morning.done_this_period, morning.at_risk) == (2, False, True)

    # Given the same streak late on Jan 6 local (already done today)
    evening = athlete.streak(local(zone, 2026, 1, 6, 23, 30))
    assert (evening.length, evening.done_this_period, evening.at_risk) == (2, True, False)

    # When Jan 7 and Jan 8 pass without a workout (no freezes held)
    later = athlete.streak(local(zone, 2026, 1, 9, 7))
    # Then the streak shows as 0 and is no longer at risk; the longest run is kept
    assert (later.length, later.longest, later.freezes, later.done_this_period, later.at_risk) == (
        0, 2, 0, False, False,
    )  # fmt: skip

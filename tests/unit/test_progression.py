"""Badges and quests in the pure engine: tiers in order, windows, secrets, rewards, recurring quests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from engage.config import load_config_file
from engage.config.loader import parse_yaml, validate_config_data
from engage.engine import Event, Profile, UserState, apply_batch

from .conftest import REPO_ROOT

FITQUEST = REPO_ROOT / "examples" / "fitquest" / "engagement.yaml"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # a Friday
_ids = itertools.count()


def config(**changes):
    data, _ = parse_yaml(FITQUEST.read_text(), str(FITQUEST))
    data.update(changes)
    return validate_config_data(data)


def workout(at: datetime, minutes: int = 30, kind: str = "run") -> Event:
    return Event(f"w{next(_ids)}", "workout_completed", at, {"minutes": minutes, "kind": kind})


def run(cfg, events, state=None, timezone=None, now=NOW):
    state = state or UserState("u", profile=Profile(timezone=timezone))
    return apply_batch(cfg, state, list(enumerate(events)), source="client", now=now)


def facts(outcome, type_):
    return [fact.data for result in outcome.results for fact in result.facts if fact.type == type_]


def test_first_workout_earns_the_first_badge_once():
    cfg = load_config_file(FITQUEST)
    first = run(cfg, [workout(NOW - timedelta(hours=2)), workout(NOW - timedelta(hours=1))])

    assert [f["badge"] for f in facts(first, "badge_awarded")] == ["first-workout"]
    again = run(cfg, [workout(NOW)], state=first.after)
    assert facts(again, "badge_awarded") == []


def test_one_large_event_skipping_a_tier_awards_both_in_order():
    # Given tiers close together, so one workout crosses two of them
    cfg = config(
        badges=[
            {
                "id": "marathoner",
                "name": "Marathoner",
                "criteria": {"sum": {"event": "workout_completed", "property": "minutes"}},
                "tiers": [
                    {"name": "Bronze", "gte": 100},
                    {"name": "Silver", "gte": 250},
                    {"name": "Gold", "gte": 1000},
                ],
            }
        ]
    )

    outcome = run(cfg, [workout(NOW, minutes=50), workout(NOW, minutes=300)])

    awarded = facts(outcome, "badge_awarded")
    assert [(f["tier"], f["tier_index"]) for f in awarded] == [("Bronze", 0), ("Silver", 1)]
    assert outcome.after.badges["marathoner"] == {"value": 350, "tiers": 2, "counts": "sum:minutes"}


def test_distinct_values_earn_the_all_rounder():
    cfg = load_config_file(FITQUEST)
    kinds = ["run", "run", "ride", "yoga", "ride", "strength"]

    outcome = run(cfg, [workout(NOW - timedelta(minutes=i), kind=kind) for i, kind in enumerate(kinds)])

    earned_at = [r.id for r in outcome.results if any(f.data.get("badge") == "all-rounder" for f in r.facts)]
    assert earned_at == [outcome.results[5].id]  # the fourth distinct kind
    assert len(outcome.after.badges["all-rounder"]["seen"]) == 4  # kept: a tier added later counts on from them


def test_a_tier_added_to_a_distinct_badge_earned_in_full_counts_on_from_the_values_seen():
    def variety(*tiers: tuple[str, int]) -> list[dict]:
        return [{"id": "variety", "name": "Variety", "criteria": {"distinct": {"event": "workout_completed",
                 "property": "kind"}}, "tiers": [{"name": name, "gte": gte} for name, gte in tiers]}]  # fmt: skip

    earned = run(config(badges=variety(("Two kinds", 2))), [workout(NOW, kind="run"), workout(NOW, kind="ride")])
    more = run(config(badges=variety(("Two kinds", 2), ("Three kinds", 3))), [workout(NOW, kind="yoga")],
               state=earned.after)  # fmt: skip

    assert [f["tier"] for f in facts(earned, "badge_awarded")] == ["Two kinds"]
    assert [f["tier"] for f in facts(more, "badge_awarded")] == ["Three kinds"]  # the third kind, not a first one


def test_weekend_warrior_needs_two_weekend_workouts_within_two_days_and_pays_its_reward():
    cfg = load_config_file(FITQUEST)
    berlin = ZoneInfo("Europe/Berlin")
    saturday = datetime(2026, 11, 14, 10, tzinfo=berlin)
    # Friday does not count (when: local.weekday >= 6); Saturday and Sunday do, within 2 days
    outcome = run(
        cfg,
        [workout(saturday - timedelta(days=1)), workout(saturday), workout(saturday + timedelta(days=1))],
        timezone="Europe/Berlin",
    )

    weekend = [f for f in facts(outcome, "badge_awarded") if f["badge"] == "weekend-warrior"]
    assert len(weekend) == 1 and weekend[0]["secret"] is True
    reward = [f for f in facts(outcome, "points_awarded") if f.get("badge") == "weekend-warrior"]
    assert [(f["currency"], f["amount"]) for f in reward] == [("coins", 50)]
    assert outcome.results[2].awards["coins"] == 5 + 10 + 50  # the rule, the daily goal (a new day), the badge


def test_window_counts_only_events_close_in_time():
    cfg = load_config_file(FITQUEST)
    saturdays = [datetime(2026, 11, 7, 10, tzinfo=UTC), datetime(2026, 11, 14, 10, tzinfo=UTC)]

    outcome = run(cfg, [workout(day) for day in saturdays])  # a week apart: never 2 within 2 days

    assert not [f for f in facts(outcome, "badge_awarded") if f["badge"] == "weekend-warrior"]


def test_a_late_event_lands_in_its_own_place_in_the_window():
    cfg = load_config_file(FITQUEST)
    sunday = datetime(2026, 11, 15, 10, tzinfo=UTC)
    outcome = run(cfg, [workout(sunday), workout(sunday - timedelta(days=1))])  # Saturday's arrives late

    assert [f["badge"] for f in facts(outcome, "badge_awarded")].count("weekend-warrior") == 1


def test_quest_steps_in_any_order_complete_it_and_pay_the_reward():
    cfg = load_config_file(FITQUEST)
    events = [workout(NOW - timedelta(hours=3), kind="yoga"), workout(NOW - timedelta(hours=2)), workout(NOW)]

    outcome = run(cfg, events)

    assert [f["step"] for f in facts(outcome, "quest_step_completed") if f["quest"] == "first-week"] == [
        "try-yoga",
        "three-workouts",
    ]
    assert [f["quest"] for f in facts(outcome, "quest_completed")] == ["daily-goal", "first-week"]
    quest_points = [f for f in facts(outcome, "points_awarded") if "quest" in f]
    assert {(f["quest"], f["currency"], f["amount"]) for f in quest_points} == {
        ("first-week", "xp", 100),
        ("daily-goal", "coins", 10),
    }


def test_quest_expires_when_its_time_from_first_progress_runs_out():
    cfg = load_config_file(FITQUEST)
    week_ago = NOW - timedelta(days=7, hours=1)
    started = run(cfg, [workout(week_ago)], now=week_ago)

    outcome = run(cfg, [workout(NOW - timedelta(minutes=5))], state=started.after, now=NOW)

    assert [f["quest"] for f in facts(outcome, "quest_expired")] == ["first-week"]
    assert outcome.after.quests["first-week"]["state"] == "expired"
    assert outcome.after.quests["first-week"]["steps"] == {"three-workouts": 1}


def test_a_quest_expired_by_a_later_event_is_completed_by_a_late_one_from_inside_its_window():
    """The same result in any arrival order: day 2, day 5 (past the 2-day window: expires), then day 3 (inside)."""
    quest = {"id": "q2", "name": "Two in two days", "within": "2d", "reward": {"coins": 10},
             "steps": [{"id": "two", "count": {"event": "workout_completed"}, "gte": 2}]}  # fmt: skip
    cfg = config(quests=[quest])
    day = NOW - timedelta(days=5)
    in_time = run(cfg, [workout(day), workout(day + timedelta(days=1)), workout(day + timedelta(days=3))])
    shuffled = run(cfg, [workout(day), workout(day + timedelta(days=3)), workout(day + timedelta(days=1))])

    assert in_time.after.quests["q2"] == shuffled.after.quests["q2"]
    assert shuffled.after.quests["q2"]["state"] == "completed" and shuffled.after.balances == in_time.after.balances
    assert [f["quest"] for f in facts(shuffled, "quest_expired")] == ["q2"]  # said when day 5 came: it was


def test_daily_quest_starts_afresh_at_the_users_local_midnight():
    cfg = load_config_file(FITQUEST)
    tokyo = ZoneInfo("Asia/Tokyo")
    midnight = datetime(2026, 11, 20, 0, 0, tzinfo=tokyo)

    outcome = run(cfg, [workout(midnight - timedelta(minutes=5), minutes=20), workout(midnight, minutes=20)],
                  timezone="Asia/Tokyo")  # fmt: skip

    assert facts(outcome, "quest_completed") == []  # 20 minutes on each local day: neither reaches 30
    assert outcome.after.quests["daily-goal"]["instance"] == "2026-11-20"
    assert outcome.after.quests["daily-goal"]["steps"] == {"move-30": 20}


def test_weekly_quest_resets_at_local_monday_midnight():
    cfg = config(quests=[{"id": "weekly", "name": "Three a week", "recurrence": "weekly",
                          "steps": [{"id": "three", "count": {"event": "workout_completed"}, "gte": 3}],
                          "reward": {"coins": 25}}])  # fmt: skip
    new_york = ZoneInfo("America/New_York")
    monday = datetime(2026, 11, 16, 0, 0, tzinfo=new_york)  # Monday 00:00 local = 05:00 UTC
    sunday_night = [workout(monday - timedelta(minutes=m)) for m in (30, 20)]

    outcome = run(cfg, [*sunday_night, workout(monday + timedelta(minutes=1))], timezone="America/New_York")

    assert facts(outcome, "quest_completed") == []  # two in the old week, one in the new
    assert outcome.after.quests["weekly"]["instance"] == "2026-W47"
    assert outcome.after.quests["weekly"]["steps"] == {"three": 1}


def test_a_late_event_completes_its_daily_run_while_it_is_one_of_the_two_newest_whatever_the_arrival_order():
    cfg = load_config_file(FITQUEST)
    yesterday, today = workout(NOW - timedelta(days=1), minutes=20), workout(NOW, minutes=5)
    late = workout(NOW - timedelta(days=1, hours=-2), minutes=15)  # yesterday evening, synced this morning

    in_order = run(cfg, [yesterday, late, today])
    today_first = run(cfg, [today, yesterday, late])

    assert in_order.after.quests["daily-goal"] == today_first.after.quests["daily-goal"]
    assert [f["instance"] for f in facts(today_first, "quest_completed") if f["quest"] == "daily-goal"] == [
        (NOW - timedelta(days=1)).date().isoformat()
    ]
    assert today_first.after.quests["daily-goal"]["steps"] == {"move-30": 5}  # today's run goes on


def test_a_late_event_of_a_run_older_than_the_two_newest_counts_for_nothing():
    cfg = load_config_file(FITQUEST)
    two_runs = run(cfg, [workout(NOW - timedelta(days=1), minutes=10), workout(NOW, minutes=10)])

    late = run(cfg, [workout(NOW - timedelta(days=2), minutes=60)], state=two_runs.after)

    assert all(f["quest"] != "daily-goal" for f in facts(late, "quest_completed"))
    assert late.after.quests["daily-goal"] == two_runs.after.quests["daily-goal"]


def test_a_run_kept_before_older_runs_were_kept_or_across_a_recurrence_change_is_never_paid_twice():
    """A stored run without `previous` (written before it was kept, or after the recurrence changed) may follow
    runs that were already paid: a late event of one of them counts for nothing."""
    cfg = load_config_file(FITQUEST)
    today = NOW.date().isoformat()
    legacy = UserState("u", quests={"daily-goal": {"instance": today, "started": None, "steps": {"move-30": 5},
                                                   "state": "active"}})  # fmt: skip

    late = run(cfg, [workout(NOW - timedelta(days=1), minutes=40)], state=legacy)

    assert all(f["quest"] != "daily-goal" for f in facts(late, "quest_completed"))
    assert late.after.quests["daily-goal"] == legacy.quests["daily-goal"]

    weekly = config(quests=[{**_daily_goal(), "recurrence": "weekly"}])
    paid = run(cfg, [workout(NOW - timedelta(days=2), minutes=40)])  # daily: paid for two days ago
    toggled = run(weekly, [workout(NOW - timedelta(days=1), minutes=5)], state=paid.after)
    back = run(cfg, [workout(NOW, minutes=5), workout(NOW - timedelta(days=2, minutes=-5), minutes=40)],
               state=toggled.after)  # fmt: skip
    assert all(f["quest"] != "daily-goal" for f in facts(back, "quest_completed"))


def _daily_goal() -> dict:
    data, _ = parse_yaml(FITQUEST.read_text(), str(FITQUEST))
    return next(quest for quest in data["quests"] if quest["id"] == "daily-goal")


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(1, 600), st.sampled_from(["run", "ride", "yoga", "strength"]), st.integers(0, 6 * 24 * 60)
        ),
        min_size=1,
        max_size=25,
    ),
    st.randoms(use_true_random=False),
)
def test_badges_do_not_depend_on_arrival_order_and_are_never_awarded_twice(specs, rng):
    # Count, sum and distinct badges (windows aside) see the same events whatever order they arrive in.
    cfg = config(badges=[b for b in _fitquest_badges() if "within" not in b["criteria"]])
    events = [workout(NOW - timedelta(minutes=offset), minutes=minutes, kind=kind) for minutes, kind, offset in specs]
    shuffled = events[:]
    rng.shuffle(shuffled)

    in_order, other_order = run(cfg, events), run(cfg, shuffled)

    def earned(outcome):
        return sorted((f["badge"], f["tier_index"]) for f in facts(outcome, "badge_awarded"))

    assert earned(in_order) == earned(other_order)
    assert len(earned(in_order)) == len(set(earned(in_order)))
    assert {b: p["tiers"] for b, p in in_order.after.badges.items()} == {
        b: p["tiers"] for b, p in other_order.after.badges.items()
    }
    assert all(value >= 0 for value in in_order.after.balances.values())


def _fitquest_badges() -> list[dict]:
    data, _ = parse_yaml(FITQUEST.read_text(), str(FITQUEST))
    return data["badges"]


def test_events_outside_a_quests_window_do_not_count_whatever_order_they_arrive_in():
    cfg = config(quests=[{"id": "sprint", "name": "Two in two days", "within": "2d",
                          "steps": [{"id": "two", "count": {"event": "workout_completed"}, "gte": 2}]}])  # fmt: skip
    # The window opens with the first event processed; a late one from six days earlier does not count
    outcome = run(cfg, [workout(NOW), workout(NOW - timedelta(days=6))])

    assert facts(outcome, "quest_completed") == []
    assert outcome.after.quests["sprint"]["steps"] == {"two": 1}


def test_changing_a_quests_recurrence_starts_a_new_run():
    once = config(
        quests=[{"id": "q", "name": "Q", "steps": [{"id": "s", "count": {"event": "workout_completed"}, "gte": 5}]}]
    )
    daily = config(quests=[{"id": "q", "name": "Q", "recurrence": "daily",
                            "steps": [{"id": "s", "count": {"event": "workout_completed"}, "gte": 5}]}])  # fmt: skip
    before = run(once, [workout(NOW - timedelta(hours=1))])

    after = run(daily, [workout(NOW)], state=before.after)

    assert after.after.quests["q"]["instance"] == "2026-11-20"
    assert after.after.quests["q"]["steps"] == {"s": 1}


def test_a_badge_or_quest_removed_and_restored_under_its_id_never_pays_twice():
    full = load_config_file(FITQUEST)
    before = run(full, [workout(NOW - timedelta(hours=2), kind="yoga")])
    assert {"first-workout", "all-rounder"} <= set(before.after.badges)
    assert [f["quest"] for f in facts(before, "quest_completed")] == ["daily-goal"]

    data, _ = parse_yaml(FITQUEST.read_text(), str(FITQUEST))
    without = config(
        badges=[b for b in data["badges"] if b["id"] not in ("first-workout", "all-rounder")],
        quests=[q for q in data["quests"] if q["id"] != "daily-goal"],
    )
    removed = run(without, [workout(NOW - timedelta(hours=1))], state=before.after)
    # a removed badge keeps what it paid; the detail of one that paid nothing (distinct digests) goes
    assert removed.after.badges["first-workout"] == before.after.badges["first-workout"]
    assert "all-rounder" not in removed.after.badges

    restored = run(full, [workout(NOW)], state=removed.after)
    assert facts(restored, "badge_awarded") == []
    assert "daily-goal" not in [f["quest"] for f in facts(restored, "quest_completed")]
    assert restored.after.badges["first-workout"] == before.after.badges["first-workout"]  # still earned, value 1


def test_distinct_values_are_kept_as_short_digests():
    cfg = load_config_file(FITQUEST)
    outcome = run(cfg, [workout(NOW, kind="yoga"), workout(NOW, kind="ride")])

    seen = outcome.after.badges["all-rounder"]["seen"]
    assert len(seen) == 2 and all(len(digest) == 12 for digest in seen)


def test_distinct_values_within_a_window_count_only_values_close_in_time():
    cfg = config(badges=[{"id": "variety", "name": "Variety", "criteria": {"distinct": {"event": "workout_completed",
                          "property": "kind"}, "gte": 3, "within": "1d"}}])  # fmt: skip
    spread = run(cfg, [workout(NOW - timedelta(days=d), kind=k) for d, k in ((4, "run"), (2, "ride"), (0, "yoga"))])
    close = run(
        cfg, [workout(NOW - timedelta(hours=h), kind=k) for h, k in ((5, "run"), (3, "run"), (2, "ride"), (1, "yoga"))]
    )

    assert facts(spread, "badge_awarded") == []
    assert [f["badge"] for f in facts(close, "badge_awarded")] == ["variety"]


def test_changing_what_a_badge_counts_starts_its_progress_over_and_keeps_the_tiers_won():
    # Given a badge counting distinct kinds within a day (its window holds digests of kinds)
    variety = {"id": "variety", "name": "Variety", "tiers": [{"name": "I", "gte": 1}, {"name": "II", "gte": 4}],
               "criteria": {"distinct": {"event": "workout_completed", "property": "kind"}, "within": "1d"}}  # fmt: skip
    before = run(config(badges=[variety]), [workout(NOW - timedelta(hours=2), kind="run")])
    assert before.after.badges["variety"]["tiers"] == 1

    # When the product owner makes it a sum of minutes under the same id
    minutes = {**variety, "tiers": [{"name": "I", "gte": 1}, {"name": "II", "gte": 90}],
               "criteria": {"sum": {"event": "workout_completed", "property": "minutes"}, "within": "1d"}}  # fmt: skip
    after = run(config(badges=[minutes]), [workout(NOW, minutes=95)], state=before.after)

    # Then the digests are not summed (that failed every request): it starts over, tier I stays won
    progress = after.after.badges["variety"]
    assert progress["tiers"] == 2 and progress["counts"] == "sum:minutes:window"
    assert [f["tier"] for f in facts(after, "badge_awarded")] == ["II"]


def test_changing_a_streaks_period_starts_it_over_instead_of_never_extending_again():
    daily = load_config_file(FITQUEST)
    days = [workout(NOW - timedelta(days=d)) for d in (2, 1)]
    before = run(daily, days)
    weekly_streaks = [{**s, "period": "week"} for s in _fitquest_streaks()]

    after = run(config(streaks=weekly_streaks), [workout(NOW)], state=before.after)

    [extended] = [f for f in facts(after, "streak_extended") if f["streak"] == "daily-workout"]
    assert extended["length"] == 1 and after.after.streaks["daily-workout"]["period"] == "week"


def _fitquest_streaks() -> list[dict]:
    data, _ = parse_yaml(FITQUEST.read_text(), str(FITQUEST))
    return data["streaks"]


def test_an_older_published_distinct_badge_keeps_a_thousand_values_at_most_in_the_user_item():
    data, _ = parse_yaml(FITQUEST.read_text(), str(FITQUEST))
    data["badges"] = [{"id": "collector", "name": "Collector", "criteria": {"distinct": {"event": "workout_completed",
                       "property": "minutes"}, "gte": 5000}}]  # fmt: skip
    cfg = validate_config_data(data, published=True)  # publishing refuses it now; an active one still loads
    full = UserState("u", badges={"collector": {"value": 0, "tiers": 0, "seen": [f"{n:012x}" for n in range(1000)]}})

    after = run(cfg, [workout(NOW, minutes=17)], state=full)

    assert len(after.after.badges["collector"]["seen"]) == 1000


def test_decimal_amounts_add_up_as_people_count_them_so_a_goal_of_their_total_is_reached():
    """Ten purchases of 0.1 make 1, not 0.9999999999999999: a badge or a quest step on the total is reached."""
    spent = {"sum": {"event": "purchase_completed", "property": "amount"}, "gte": 1}
    cfg = config(
        badges=[{"id": "spender", "name": "Spender", "criteria": spent}],
        quests=[{"id": "spend", "name": "Spend 1", "steps": [{"id": "one", **spent}], "reward": {"coins": 1}}],
    )
    purchases = [
        Event(f"p{n}", "purchase_completed", NOW - timedelta(minutes=30 - n), {"sku": "x", "amount": 0.1})
        for n in range(10)
    ]

    outcome = apply_batch(cfg, UserState("u"), list(enumerate(purchases)), source="server", now=NOW)

    assert [f["value"] for f in facts(outcome, "badge_awarded")] == [1.0]
    assert [f["quest"] for f in facts(outcome, "quest_completed")] == ["spend"]
    assert outcome.after.quests["spend"]["steps"]["one"] == 1.0

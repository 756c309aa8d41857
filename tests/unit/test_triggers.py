"""Facts → candidate messages: which triggers fire, their ids, texts and the user's preferences (engage.notify.triggers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ulid import ULID

from engage.config import EngagementConfig
from engage.engine.model import Profile, UserState
from engage.engine.streaks import StreakState, period_index
from engage.notify.triggers import FactSeen, message_id, prepare, scheduled_fact, user_prefs

AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def badge_fact(key: str = "evt#client#e1#0") -> FactSeen:
    fact = {"type": "badge_awarded", "event_id": "e1", "badge": "first-workout", "name": "First Step", "tier": None}
    return FactSeen(key, AT, fact)


def user(**profile: str) -> UserState:
    return UserState(user_id="u1", profile=Profile(**profile))


def test_given_the_same_trigger_user_and_fact_when_ids_are_derived_then_they_are_equal_ulids_at_the_facts_time() -> (
    None
):
    first = message_id("badge-earned", "u1", "evt#client#e1#0", AT)
    assert first == message_id("badge-earned", "u1", "evt#client#e1#0", AT)
    assert ULID.from_str(first).datetime == AT
    others = {message_id("level-up", "u1", "evt#client#e1#0", AT), message_id("badge-earned", "u2", "evt#client#e1#0", AT),
              message_id("badge-earned", "u1", "evt#client#e1#1", AT)}  # fmt: skip
    assert first not in others and len(others) == 3


def test_given_a_badge_fact_when_prepared_then_the_badge_trigger_fires_with_rendered_texts(
    fitquest: EngagementConfig,
) -> None:
    [message] = prepare(fitquest, user(display_name="Ada Lovelace"), [badge_fact()], AT)
    assert message.trigger.id == "badge-earned"
    assert message.rendered.title == "New badge: First Step"
    assert message.rendered.body == "Nice work, Ada! You earned First Step."
    assert message.rendered.deep_link == "fitquest://badges/first-workout"
    assert message.candidate.valid_until == AT + timedelta(hours=2)
    assert message.candidate.category == "progress" and message.candidate.priority == 5


def test_a_candidate_knows_its_facts_place_in_the_event_so_the_later_of_two_equal_pushes_wins(
    fitquest: EngagementConfig,
) -> None:
    first, later = (prepare(fitquest, user(), [badge_fact(f"evt#client#e1#{n}")], AT)[0] for n in (1, 12))

    assert (first.candidate.position, later.candidate.position) == (1, 12)


def test_given_a_german_user_when_prepared_then_the_de_texts_are_used(fitquest: EngagementConfig) -> None:
    [message] = prepare(fitquest, user(display_name="Grete", locale="de-AT"), [badge_fact()], AT)
    assert message.rendered.title == "Neues Abzeichen: First Step"
    assert message.rendered.locale_used == "de"


def test_given_a_rank_lost_fact_when_its_rank_or_board_does_not_match_then_no_trigger_fires(
    fitquest: EngagementConfig,
) -> None:
    def rank_lost(board: str, rank: int) -> FactSeen:
        fact = {"type": "rank_lost", "event_id": "x", "board": board, "period": "2026-W47", "new_rank": rank}
        return FactSeen(f"fact#{board}#{rank}", AT, fact)

    fired = prepare(
        fitquest, user(), [rank_lost("weekly-xp", 4), rank_lost("weekly-xp", 11), rank_lost("other", 2)], AT
    )
    assert [(m.trigger.id, m.fact.fact["new_rank"]) for m in fired] == [("overtaken", 4)]
    assert fired[0].rendered.title == "You were passed on This week's XP"
    assert fired[0].rendered.body == "You are now #4. Win it back!"


def test_given_a_fact_no_trigger_listens_to_when_prepared_then_nothing_fires(fitquest: EngagementConfig) -> None:
    points = FactSeen("evt#client#e1#0", AT, {"type": "points_awarded", "event_id": "e1", "amount": 5})
    assert prepare(fitquest, user(), [points], AT) == []


def test_given_a_schedule_trigger_when_evaluated_twice_a_local_day_then_the_fact_key_is_the_same(
    fitquest: EngagementConfig,
) -> None:
    assert fitquest.notifications is not None
    trigger = next(t for t in fitquest.notifications.triggers if t.id == "streak-at-risk")
    tokyo = user(timezone="Asia/Tokyo")
    morning = scheduled_fact(fitquest, trigger, tokyo, datetime(2026, 11, 20, 0, 30, tzinfo=UTC))  # 09:30 local
    evening = scheduled_fact(fitquest, trigger, tokyo, datetime(2026, 11, 20, 14, 0, tzinfo=UTC))  # 23:00 local
    next_day = scheduled_fact(fitquest, trigger, tokyo, datetime(2026, 11, 20, 15, 30, tzinfo=UTC))  # 00:30 next day
    assert morning.key == evening.key == "schedule#streak-at-risk#2026-11-20"
    assert next_day.key == "schedule#streak-at-risk#2026-11-21"
    # The message id carries the day's 19:00 slot, not the run's moment: two runs that day name one message.
    assert morning.id_at == evening.id_at == datetime(2026, 11, 20, 10, 0, tzinfo=UTC)  # 19:00 in Tokyo
    assert message_id(trigger.id, "u1", morning.key, morning.id_at) == message_id(
        trigger.id, "u1", evening.key, evening.id_at
    )


def test_given_a_streak_of_three_days_not_done_today_when_the_reminder_is_evaluated_then_it_fires_until_done(
    fitquest: EngagementConfig,
) -> None:
    from engage.notify.triggers import holds, scope

    assert fitquest.notifications is not None
    trigger = next(t for t in fitquest.notifications.triggers if t.id == "streak-at-risk")
    spec = next(s for s in fitquest.streaks if s.id == "daily-workout")
    today = period_index(spec.period, AT)
    state = user()
    state.streaks["daily-workout"] = StreakState(active=(today - 3, today - 2, today - 1)).to_dict()
    seen = scheduled_fact(fitquest, trigger, state, AT)
    values = scope(fitquest, trigger, state, seen, AT)
    assert values["streak"]["length"] == 3 and values["streak"]["done_today"] is False
    assert holds(trigger, values)
    state.streaks["daily-workout"] = StreakState(active=(today - 3, today - 2, today - 1, today)).to_dict()
    assert not holds(trigger, scope(fitquest, trigger, state, seen, AT))


def test_given_stored_preferences_when_read_for_the_policy_then_defaults_fill_what_the_user_left_unset(
    fitquest: EngagementConfig,
) -> None:
    state = user(timezone="Europe/Berlin")
    defaults = user_prefs(fitquest, state)
    assert defaults.quiet_hours is not None and (defaults.quiet_hours.start, defaults.quiet_hours.end) == (
        "21:30",
        "08:00",
    )
    assert defaults.timezone == "Europe/Berlin" and defaults.opted_out == set()
    state.preferences = {
        "categories": {"competition": False, "progress": True},
        "quiet_hours": {"start": "22:00", "end": "07:00"},
        "paused_until": "2026-12-01T00:00:00+00:00",
        "weekly_budget": 3,
    }
    chosen = user_prefs(fitquest, state)
    assert chosen.opted_out == {"competition"}
    assert chosen.quiet_hours is not None and chosen.quiet_hours.start == "22:00"
    assert chosen.paused_until == datetime(2026, 12, 1, tzinfo=UTC)
    assert chosen.weekly_budget == 3
    state.preferences = {"quiet_hours": False}  # turned off by the user: none, not the app's default
    assert user_prefs(fitquest, state).quiet_hours is None


def test_given_the_hour_repeated_when_clocks_go_back_when_a_schedule_runs_in_it_then_the_slot_is_the_same(
    fitquest: EngagementConfig,
) -> None:
    assert fitquest.notifications is not None
    trigger = next(t for t in fitquest.notifications.triggers if t.id == "streak-at-risk").model_copy(
        update={"at_local": "01:30"}
    )
    new_york = user(timezone="America/New_York")
    first = scheduled_fact(fitquest, trigger, new_york, datetime(2025, 11, 2, 5, 10, tzinfo=UTC))  # 01:10 EDT
    again = scheduled_fact(fitquest, trigger, new_york, datetime(2025, 11, 2, 6, 10, tzinfo=UTC))  # 01:10 EST
    assert first.key == again.key and first.id_at == again.id_at == datetime(2025, 11, 2, 5, 30, tzinfo=UTC)


def test_a_pause_stored_before_pauses_were_bounded_reads_as_paused_not_as_a_failure(fitquest: EngagementConfig):
    # 9999-12-31 at 23:00 in New York is past the calendar's end in UTC
    forever = UserState("u1", preferences={"paused_until": "9999-12-31T23:00:00-05:00"})
    long_ago = UserState("u1", preferences={"paused_until": "0001-01-01T00:00:00+14:00"})

    assert user_prefs(fitquest, forever).paused_until == datetime.max.replace(tzinfo=UTC)
    assert user_prefs(fitquest, long_ago).paused_until is None


def test_a_replay_hands_notify_all_of_a_users_rows_together_as_the_stream_handler_does(monkeypatch):
    # The policy sends one push for a user's facts decided together; rows [A, B, A] used to reach it as {A}, {A}.
    from engage.services import replay

    def record(user: str, n: int) -> dict:
        image = {
            "user_id": {"S": user},
            "sk": {"S": f"evt#client#{user}-{n}"},
            "ts": {"S": "01KAS5N3J1X5Q7Y0D6Z8W9V4T2"},
        }
        return {"eventName": "INSERT", "dynamodb": {"NewImage": image, "SequenceNumber": str(n)}}

    handed: list[list[str]] = []
    monkeypatch.setattr(
        replay, "_stream_records", lambda streams, batch: [record("a", 1), record("b", 2), record("a", 3)]
    )
    monkeypatch.setattr(replay, "handle_rows", lambda rows, tally: handed.append([row.sk for row in rows]))

    assert replay._replay(None, {}, replay._notify_rows, replay.Replayed()) == []
    assert handed == [["evt#client#a-1", "evt#client#a-3"], ["evt#client#b-2"]]


def test_a_board_replay_handles_the_score_changes_boards_would_and_goes_on_past_one_that_fails(monkeypatch):
    from engage.services import replay

    def record(n: int, new: dict | None, name: str = "MODIFY") -> dict:
        images = {"NewImage": new} if new is not None else {"OldImage": {"board": {"S": "weekly-xp#2026-W34"}}}
        return {"eventName": name, "dynamodb": {**images, "SequenceNumber": str(n)}}

    row = {"board": {"S": "weekly-xp#2026-W34"}, "user_id": {"S": "ada"}, "rank_key": {"S": "k"}}
    records = [
        record(1, {"board": {"S": "weekly-xp#2026-W34"}, "user_id": {"S": "0"}, "b3": {"N": "1"}}),  # a histogram
        record(2, None, "REMOVE"),
        record(3, {**row, "user_id": {"S": "broken"}}),
        record(4, row, "INSERT"),
    ]
    handed: list[str] = []

    def score_changed(old, new):
        handed.append(new["user_id"])
        if new["user_id"] == "broken":
            raise RuntimeError("a bug, say")
        return 2

    monkeypatch.setattr(replay, "score_changed", score_changed)
    replayed = replay.Replayed()

    problems = replay._score_changes(records, replayed)

    assert handed == ["broken", "ada"] and (replayed.rows, replayed.rank_lost) == (2, 2)
    assert problems == ["score change 3: a bug, say"]  # the batch stays in the queue for the next replay


def test_a_streak_fact_trigger_naming_a_streak_fires_only_for_that_streaks_facts(fitquest_text: str) -> None:
    # Before: `streak:` only put a streak in scope, so a weekly streak's milestone fired the daily streak's trigger
    # and its texts spoke of the daily streak
    from engage.config import parse_config_text

    weekly = "  - id: weekly-yoga\n    name: Weekly yoga\n    on: workout_completed\n    period: week\n"
    trigger = (
        "    - id: daily-milestone\n      on: streak_milestone\n      streak: daily-workout\n"
        "      category: progress\n      valid_for: 2h\n"
        '      template: {title: "{streak.name}: {fact.length} in a row", body: "Keep going"}\n'
    )
    text = fitquest_text.replace("\nquests:\n", f"{weekly}\nquests:\n").replace(
        "  triggers:\n", f"  triggers:\n{trigger}"
    )
    config = parse_config_text(text)

    def milestone(streak: str) -> FactSeen:
        fact = {"type": "streak_milestone", "event_id": "e1", "streak": streak, "period": 1, "length": 3}
        return FactSeen(f"evt#client#e1#{streak}", AT, fact)

    fired = prepare(config, user(), [milestone("weekly-yoga"), milestone("daily-workout")], AT)

    assert [(m.trigger.id, m.fact.fact["streak"]) for m in fired] == [("daily-milestone", "daily-workout")]
    assert fired[0].rendered.title == "Daily workout: 3 in a row"

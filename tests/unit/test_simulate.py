"""`engage config simulate`: a recorded stream through the engine, per user and in all, without AWS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engage.cli import app
from engage.config import load_config_file
from engage.simulate import EventsInvalid, read_events, simulate, summary

from .conftest import FITQUEST_PATH

EVENTS = FITQUEST_PATH.parent / "events.jsonl"


@pytest.fixture(scope="module")
def week() -> dict:
    config = load_config_file(FITQUEST_PATH)
    return summary(config, simulate(config, read_events(EVENTS)))


def test_the_daily_limit_holds_in_each_users_own_day(week):
    # Grace logs six 30-minute workouts on three evenings in New York; the rule pays 60 xp and 5 coins for five a day
    grace = week["users"]["grace"]
    assert grace["balances"] == {"xp": 3 * 5 * 60, "coins": 3 * 5 * 5 + 3 * 10}  # + the daily-goal quest, 10 a day
    assert grace["quests_completed"] == {"daily-goal": 3}
    assert grace["answers"] == {"accepted": 18}  # past the limit an event still counts: it just pays nothing


def test_a_resent_event_is_a_duplicate_and_pays_once(week):
    linus = week["users"]["linus"]
    assert linus["answers"] == {"accepted": 4, "duplicate": 1}
    assert linus["balances"]["coins"] == 5 + 9 + 10  # the ride, the purchase (int(9.99)) and the daily goal


def test_a_week_of_daily_workouts_makes_a_seven_day_streak_and_its_badges(week):
    ada = week["users"]["ada"]
    assert ada["longest_streaks"] == {"daily-workout": 7}
    assert {"first-workout", "all-rounder", "weekend-warrior"} <= set(ada["badges"])  # four kinds; two weekend days
    assert week["badges"]["first-workout"] == 3 and week["answers"] == {"accepted": 36, "duplicate": 1}


def test_a_line_that_is_no_event_is_named_with_its_line(tmp_path: Path):
    events = tmp_path / "events.jsonl"
    events.write_text('# recorded\n{"user_id": "a", "id": "x", "type": "app_opened"}\n\nnot json\n')
    with pytest.raises(EventsInvalid) as caught:
        read_events(events)
    assert str(caught.value).splitlines() == [
        "line 2, occurred_at: required field is missing. Fix: add it",
        "line 4, the line: is not valid JSON. Fix: check its quotes, brackets and commas",
    ]


def test_the_command_shows_what_a_changed_rule_would_change(tmp_path: Path):
    changed = tmp_path / "engagement.yaml"
    changed.write_text(FITQUEST_PATH.read_text().replace('xp: "event.minutes * 2"', 'xp: "event.minutes * 3"'))

    shown = CliRunner().invoke(app, ["config", "simulate", str(changed), str(EVENTS), "--compare", str(FITQUEST_PATH)])
    as_json = CliRunner().invoke(
        app, ["config", "simulate", str(changed), str(EVENTS), "--compare", str(FITQUEST_PATH), "--json"]
    )

    assert shown.exit_code == 0, shown.output
    assert "900 → 1350" in shown.output  # Grace's 15 paid workouts: 60 → 90 xp each
    both = json.loads(as_json.output)
    assert (
        both["old"]["users"]["grace"]["balances"]["xp"] == 900
        and both["new"]["users"]["grace"]["balances"]["xp"] == 1350
    )
    assert both["old"]["totals"]["coins"] == both["new"]["totals"]["coins"]  # coins did not change


def test_a_config_with_problems_is_reported_not_simulated(tmp_path: Path):
    broken = tmp_path / "engagement.yaml"
    broken.write_text(FITQUEST_PATH.read_text().replace("award: {xp: 5}", "award: {gems: 5}"))

    result = CliRunner().invoke(app, ["config", "simulate", str(broken), str(EVENTS)])

    assert result.exit_code == 1 and "unknown currency 'gems'" in result.output


def _recorded(tmp_path: Path, *lines: dict) -> Path:
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return events


def test_a_client_and_a_server_event_may_share_an_id_as_in_the_ledger(tmp_path: Path):
    # Before: the purchase was taken for a duplicate of the workout; the ingest keeps the two routes' ids apart
    config = load_config_file(FITQUEST_PATH)
    at = "2026-11-20T10:00:00Z"
    events = _recorded(
        tmp_path,
        {
            "user_id": "u",
            "id": "e1",
            "type": "workout_completed",
            "occurred_at": at,
            "properties": {"minutes": 30, "kind": "run"},
        },
        {
            "user_id": "u",
            "id": "e1",
            "type": "purchase_completed",
            "occurred_at": at,
            "properties": {"sku": "x", "amount": 50},
        },
    )
    [user] = summary(config, simulate(config, read_events(events)))["users"].values()
    assert user["answers"] == {"accepted": 2} and user["balances"]["coins"] == 5 + 50 + 10


def test_a_line_received_past_the_late_window_is_too_late_and_one_skewed_clock_spoils_nothing(tmp_path: Path):
    # A line arrives when it happened unless it says `received_at`: a week-old upload is refused as the ingest
    # would, and a phone whose clock is a year ahead (the reviewer's case) does not make later lines too late
    config = load_config_file(FITQUEST_PATH)
    events = _recorded(
        tmp_path,
        {"user_id": "u", "id": "on-time", "type": "app_opened", "occurred_at": "2026-11-01T10:00:00Z"},
        {"user_id": "u", "id": "uploaded-late", "type": "app_opened", "occurred_at": "2026-11-02T10:00:00Z",
         "received_at": "2026-11-30T10:00:00Z"},
        {"user_id": "skewed", "id": "s", "type": "app_opened", "occurred_at": "2027-11-01T10:00:00Z"},
        {"user_id": "v", "id": "after", "type": "app_opened", "occurred_at": "2026-11-03T10:00:00Z"},
    )  # fmt: skip
    users = summary(config, simulate(config, read_events(events)))["users"]
    assert users["u"]["answers"] == {"accepted": 1, "rejected:too_late": 1}
    assert users["v"]["answers"] == {"accepted": 1}


def test_an_award_that_failed_on_an_event_is_shown_as_a_warning(tmp_path: Path):
    # A purchase without `amount` is accepted and pays no coins: the output says why, as the API's answer does
    events = _recorded(tmp_path, {"user_id": "u", "id": "p", "type": "purchase_completed", "occurred_at": "2026-11-20T10:00:00Z",
                                  "properties": {"sku": "x"}})  # fmt: skip
    shown = CliRunner().invoke(app, ["config", "simulate", str(FITQUEST_PATH), str(events)])
    assert "warning (1×): rule purchase-coins: award coins: 'int(event.amount)' reads 'amount'" in " ".join(
        shown.output.split()
    )


def test_compare_with_a_draft_that_has_problems_names_them_and_a_removed_currency_keeps_its_column(tmp_path: Path):
    draft = tmp_path / "draft.yaml"
    draft.write_text(FITQUEST_PATH.read_text().replace("award: {xp: 5}", "award: {gems: 5}"))
    renamed = tmp_path / "renamed.yaml"
    renamed.write_text(FITQUEST_PATH.read_text().replace("coins", "gems"))

    with_problems = CliRunner().invoke(
        app, ["config", "simulate", str(FITQUEST_PATH), str(EVENTS), "--compare", str(draft)]
    )
    currencies = CliRunner().invoke(
        app, ["config", "simulate", str(renamed), str(EVENTS), "--compare", str(FITQUEST_PATH), "--json"]
    )

    assert with_problems.exit_code == 0
    words = " ".join(with_problems.output.split())
    assert "unknown currency 'gems'" in words and "simulated anyway, as the Lambdas load a published config" in words
    wide = {"COLUMNS": "250"}  # one line per row
    shown = CliRunner().invoke(
        app, ["config", "simulate", str(renamed), str(EVENTS), "--compare", str(FITQUEST_PATH)], env=wide
    )
    [header] = [line for line in shown.output.splitlines() if "user" in line and "level" in line]
    assert [cell.strip() for cell in header.split("┃")[1:-1]][:4] == ["user", "xp", "gems", "coins"]  # both configs'
    assert "155 → 0" in next(line for line in shown.output.splitlines() if "ada" in line)
    assert json.loads(currencies.output)["old"]["totals"]["coins"] == 284


def test_a_file_that_is_not_utf8_is_named_not_a_crash(tmp_path: Path):
    events = tmp_path / "events.jsonl"
    events.write_bytes(b'{"user_id": "u"}\n{"id": "caf\xe9"}\n')
    with pytest.raises(EventsInvalid, match=r"line 2: not UTF-8 text \(byte 0xe9\). Fix: save the file as UTF-8"):
        read_events(events)


def test_compare_takes_a_published_config_newer_checks_refuse_and_shows_what_was_removed(tmp_path: Path):
    # A live config with `award: {xp: 0}` (refused since) is still the baseline; a badge taken out shows "1 → 0"
    live = tmp_path / "live.yaml"
    live.write_text(FITQUEST_PATH.read_text().replace("award: {xp: 5}", "award: {xp: 0}"))
    text = FITQUEST_PATH.read_text()
    weekend = text[text.index("  - id: weekend-warrior") : text.index("\nstreaks:")]
    new = tmp_path / "new.yaml"
    new.write_text(text.replace(weekend, ""))

    shown = CliRunner().invoke(app, ["config", "simulate", str(new), str(EVENTS), "--compare", str(live)])

    assert shown.exit_code == 0, shown.output
    words = " ".join(shown.output.split())  # as read, whatever the terminal's width wrapped
    assert "badge holders: first-workout 3, marathoner 2, all-rounder 1, weekend-warrior 1 → 0" in words
    assert "Leaderboard standings and period rewards are not simulated" in words  # said, not silently left out


def test_an_events_file_without_events_is_refused(tmp_path: Path):
    empty = tmp_path / "events.jsonl"
    empty.write_text("# nothing yet\n")
    result = CliRunner().invoke(app, ["config", "simulate", str(FITQUEST_PATH), str(empty)])
    assert result.exit_code == 1 and "holds no events" in result.output

"""engagement.yaml: the reference file is accepted, and every rejection says where (path + line) and how to fix it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import pytest

from engage.config import ConfigInvalid, EngagementConfig, parse_config_text, validate_config_data
from engage.config.checks import Issue
from engage.config.loader import parse_yaml
from engage.config.types import format_duration, parse_duration

from .conftest import FITQUEST_PATH, REPO_ROOT

# ---------------------------------------------------------------- helpers


def edit(text: str, old: str, new: str) -> str:
    """Replace exactly one occurrence, so a test can never silently test the unchanged file."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in the reference file"
    return text.replace(old, new)


def line_of(text: str, needle: str) -> int:
    """1-based line on which the (unique) needle starts."""
    assert text.count(needle) == 1, f"{needle!r} occurs {text.count(needle)} times"
    return text[: text.index(needle)].count("\n") + 1


def issues_of_text(text: str) -> list[Issue]:
    with pytest.raises(ConfigInvalid) as caught:
        parse_config_text(text)
    return caught.value.issues


def issues_of_data(data: Any) -> list[Issue]:
    with pytest.raises(ConfigInvalid) as caught:
        validate_config_data(data)
    return caught.value.issues


# ---------------------------------------------------------------- the reference config


def test_reference_config_is_accepted_as_written(fitquest):
    # Given the product owner's fitquest file (loaded by the fixture)
    # Then every section is there, with the values written in the file
    assert fitquest.app == "fitquest"
    assert fitquest.default_timezone == "UTC"
    assert [rule.id for rule in fitquest.rules] == ["workout-xp", "daily-open", "purchase-coins"]
    assert fitquest.events["purchase_completed"].source == "server"
    assert fitquest.levels is not None and fitquest.levels.thresholds == [0, 100, 300, 600, 1000, 1500, 2500]
    assert fitquest.levels.name_of(6) == "Legend"
    assert [badge.id for badge in fitquest.badges] == ["first-workout", "marathoner", "all-rounder", "weekend-warrior"]
    assert fitquest.notifications is not None
    assert fitquest.notifications.defaults.caps.min_gap == timedelta(hours=2)


def test_late_window_defaults_to_seven_days(fitquest):
    assert fitquest.late_window == timedelta(days=7)


def test_rules_are_looked_up_by_event_type_in_config_order(fitquest):
    assert [rule.id for rule in fitquest.rules_for("workout_completed")] == ["workout-xp"]
    assert [rule.id for rule in fitquest.rules_for("app_opened")] == ["daily-open"]
    assert fitquest.rules_for("notification_opened") == []
    assert fitquest.rules_for("no_such_event") == []


def test_on_is_read_as_a_key_not_as_yaml_1_1_true(fitquest_text, fitquest):
    # When the YAML is parsed
    data, _ = parse_yaml(fitquest_text, "engagement.yaml")
    # Then `on:` stays the string key "on" (YAML 1.1 would have made it the boolean True)
    assert data["rules"][0]["on"] == "workout_completed"
    assert True not in data["rules"][0]
    assert data["notifications"]["triggers"][2]["on"] == "schedule"
    assert fitquest.streaks[0].on == "workout_completed"


def test_true_and_false_are_still_booleans(fitquest_text):
    data, _ = parse_yaml(fitquest_text, "engagement.yaml")
    assert data["badges"][3]["secret"] is True


def test_yes_and_no_stay_strings_not_booleans():
    data, _ = parse_yaml("a: yes\nb: no\nc: off\n", "x.yaml")
    assert data == {"a": "yes", "b": "no", "c": "off"}


def test_times_and_dates_written_without_quotes_stay_text(fitquest_text):
    # YAML 1.1 reads 21:30 as 1290 (base 60) and 2026-01-01 as a date; the quiet hours were refused as "got 1290"
    data, _ = parse_yaml("a: 21:30\nb: 2026-01-01\nc: 1:30:00\nd: 12\ne: 1.5\nf: 1_000\n", "x.yaml")
    assert data == {"a": "21:30", "b": "2026-01-01", "c": "1:30:00", "d": 12, "e": 1.5, "f": 1000}

    unquoted = parse_config_text(fitquest_text.replace('{start: "21:30", end: "08:00"}', "{start: 21:30, end: 08:00}"))

    assert unquoted.notifications is not None and unquoted.notifications.defaults.quiet_hours is not None
    assert unquoted.notifications.defaults.quiet_hours.start == "21:30"


def test_a_value_of_the_wrong_type_is_shown_as_written_in_yaml(fitquest_text):
    dated = issues_of_text(fitquest_text.replace('end: "08:00"}', "end: 2026-01-01}"))
    flagged = issues_of_text(fitquest_text.replace('{start: "21:30", end: "08:00"}', '{start: true, end: "08:00"}'))

    assert "'2026-01-01' is not a local time" in dated[0].message
    assert "(got true)" in flagged[0].message


# ---------------------------------------------------------------- one problem: path, line and fix

# (old text, new text, YAML path, text on the reported line, part of the message)
SINGLE_PROBLEMS = {
    "unknown_event_in_rule": (
        "on: workout_completed\n    when",
        "on: workout_complete\n    when",
        "rules[0].on",
        "on: workout_complete\n",
        "unknown event 'workout_complete'",
    ),
    "unknown_currency_in_award": (
        "award: {xp: 5}",
        "award: {gems: 5}",
        "rules[1].award.gems",
        "award: {gems: 5}",
        "unknown currency 'gems'",
    ),
    "constant_award_that_pays_nothing": (
        "award: {xp: 5}",
        'award: {xp: "-5"}',
        "rules[1].award.xp",
        'award: {xp: "-5"}',
        "is always -5, which pays nothing",
    ),
    "constant_award_cut_to_nothing": (
        "award: {xp: 5}",
        'award: {xp: "0.5"}',
        "rules[1].award.xp",
        'award: {xp: "0.5"}',
        "is always 0.5, which pays nothing",
    ),
    "cel_syntax_error_in_when": (
        'when: "event.minutes >= 10"',
        'when: "event.minutes >= "',
        "rules[0].when",
        'when: "event.minutes >= "',
        "CEL syntax error",
    ),
    "thresholds_not_strictly_increasing": (
        "thresholds: [0, 100, 300,",
        "thresholds: [0, 300, 300,",
        "levels.thresholds",
        "thresholds: [0, 300, 300,",
        "strictly increase",
    ),
    "thresholds_not_starting_at_zero": (
        "thresholds: [0, 100,",
        "thresholds: [50, 100,",
        "levels.thresholds",
        "thresholds: [50, 100,",
        "first threshold is 50",
    ),
    "level_names_count_mismatch": (
        "names: [Rookie, Mover, Regular, Athlete, Pro, Elite, Legend]",
        "names: [Rookie, Mover]",
        "levels",
        "levels:\n  currency",
        "2 names for 7 thresholds",
    ),
    "unknown_field_typo": (
        "limit: {per: day, max: 5}",
        "limt: {per: day, max: 5}",
        "rules[0].limt",
        "limt:",
        "unknown field 'limt'",
    ),
    "unknown_time_zone": (
        "default_timezone: UTC",
        "default_timezone: Europe/Atlantis",
        "default_timezone",
        "default_timezone:",
        "unknown time zone 'Europe/Atlantis'",
    ),
    "undeclared_variable_in_expression": (
        'when: "event.minutes >= 10"',
        'when: "evnt.minutes >= 10"',
        "rules[0].when",
        'when: "evnt.minutes',
        "reads evnt",
    ),
    "undeclared_event_property_in_expression": (
        'award: {xp: "event.minutes * 2", coins: 5}',
        'award: {xp: "event.mins * 2", coins: 5}',
        "rules[0].award.xp",
        'award: {xp: "event.mins',
        "declares no property 'mins'",
    ),
    "duplicate_rule_id": (
        "  - id: daily-open\n",
        "  - id: workout-xp\n",
        "rules[1].id",
        "  - id: workout-xp\n    on: app_opened",
        "'workout-xp' is used twice",
    ),
    "badge_without_gte_or_tiers": (
        "criteria: {count: {event: workout_completed}, gte: 1}",
        "criteria: {count: {event: workout_completed}}",
        "badges[0]",
        "id: first-workout",
        "no threshold",
    ),
    "trigger_with_unknown_category": (
        "category: reminders",
        "category: reminder",
        "notifications.triggers[2].category",
        "category: reminder\n",
        "unknown category 'reminder'",
    ),
    "late_window_over_30_days": (
        "default_locale: en\n",
        "default_locale: en\nlate_window: 31d\n",
        "late_window",
        "late_window:",
        "30 days (got 31d)",
    ),
    "late_window_not_a_duration": (
        "default_locale: en\n",
        "default_locale: en\nlate_window: 7x\n",
        "late_window",
        "late_window:",
        "'7x' is not a duration",
    ),
    "property_min_above_max": (
        "minutes: {type: integer, min: 1, max: 600}",
        "minutes: {type: integer, min: 601, max: 600}",
        "events.workout_completed.properties.minutes",
        "minutes: {type: integer, min: 601",
        "swap them",
    ),
    "unknown_currency_for_levels": (
        "  currency: xp\n  thresholds",
        "  currency: stars\n  thresholds",
        "levels.currency",
        "currency: stars",
        "unknown currency 'stars'",
    ),
    "push_cap_beyond_the_push_log": (
        "caps: {per_day: 2, per_week: 6",
        "caps: {per_day: 2, per_week: 600",
        "notifications.defaults.caps.per_week",
        "caps: {per_day: 2, per_week: 600",
        "100",
    ),
    "min_gap_beyond_a_week": (
        "per_week: 6, min_gap: 2h}",
        "per_week: 6, min_gap: 2w}",
        "notifications.defaults.caps.min_gap",
        "min_gap: 2w}",
        "at most 7d",
    ),
    "negative_constant_award": (
        "award: {xp: 5}",
        "award: {xp: -5}",
        "rules[1].award.xp",
        "award: {xp: -5}",
        "negative",
    ),
    "fractional_constant_award": (
        "award: {xp: 5}",
        "award: {xp: 5.5}",
        "rules[1].award.xp",
        "award: {xp: 5.5}",
        "not a whole number",
    ),
    "unknown_function": (
        'when: "event.minutes >= 10"',
        'when: "foo(event.minutes) >= 10"',
        "rules[0].when",
        'when: "foo(event.minutes)',
        "calls a function CEL does not have",
    ),
    "condition_that_is_not_boolean": (
        'when: "event.minutes >= 10"',
        'when: "event.minutes"',
        "rules[0].when",
        'when: "event.minutes"',
        "not true or false",
    ),
    "award_that_is_not_a_number": (
        'award: {xp: "event.minutes * 2", coins: 5}',
        'award: {xp: "event.kind", coins: 5}',
        "rules[0].award.xp",
        'award: {xp: "event.kind"',
        "not a number of points",
    ),
    "board_reward_mixing_types": (
        "- {rank_lte: 1, award: {coins: 100}}",
        '- {rank_lte: 1, award: {coins: "user.level * 2.5"}}',
        "leaderboards[0].rewards[0].award.coins",
        '- {rank_lte: 1, award: {coins: "user.level',
        "mixes types",
    ),
    "sum_of_a_string_property": (
        "criteria: {distinct: {event: workout_completed, property: kind}, gte: 4}",
        "criteria: {sum: {event: workout_completed, property: kind}, gte: 4}",
        "badges[2].criteria.sum.property",
        "criteria: {sum: {event: workout_completed, property: kind}",
        "cannot be summed",
    ),
    "enum_of_the_wrong_type": (
        "kind: {type: string, enum: [run, ride, yoga, strength]}",
        "kind: {type: string, enum: [1, 2]}",
        "events.workout_completed.properties.kind.enum",
        "kind: {type: string, enum: [1, 2]}",
        "not of type string",
    ),
    "empty_enum": (
        "kind: {type: string, enum: [run, ride, yoga, strength]}",
        "kind: {type: string, enum: []}",
        "events.workout_completed.properties.kind.enum",
        "kind: {type: string, enum: []}",
        "fits no string",
    ),
    "rewards_of_an_all_time_board": (
        "    period: week\n    timezone: UTC\n    rewards:",
        "    period: all\n    timezone: UTC\n    rewards:",
        "leaderboards[0].rewards",
        "    rewards:",
        "never closes",
    ),
    "min_on_a_string": (
        "kind: {type: string, enum: [run, ride, yoga, strength]}",
        "kind: {type: string, enum: [run, ride, yoga, strength], min: 3}",
        "events.workout_completed.properties.kind.min",
        "kind: {type: string, enum: [run, ride, yoga, strength], min: 3}",
        "bounds numbers",
    ),
    "property_name_cel_cannot_read": (
        "minutes: {type: integer, min: 1, max: 600}",
        "duration-min: {type: integer, min: 1, max: 600}\n      minutes: {type: integer, min: 1, max: 600}",
        "events.workout_completed.properties.duration-min",
        "duration-min:",
        "not a name CEL can read",
    ),
}


def test_a_number_property_with_an_enum_of_whole_numbers_is_still_a_double_in_expressions(fitquest_text):
    # Given amount: number with enum [5, 10] (CEL sees 5.0 at runtime) and an award multiplying it by an int
    text = edit(fitquest_text, "amount: {type: number, min: 0}", "amount: {type: number, enum: [5, 10]}")
    text = edit(text, 'award: {coins: "int(event.amount)"}', 'award: {coins: "int(event.amount * 2)"}')
    [issue] = issues_of_text(text)
    assert issue.where == "rules[2].award.coins" and "mixes types" in issue.message


@pytest.mark.parametrize(("old", "new", "path", "line_text", "says"), SINGLE_PROBLEMS.values(), ids=SINGLE_PROBLEMS)
def test_rejection_names_path_line_and_fix(fitquest_text, old, new, path, line_text, says):
    # Given the reference file with one mistake
    text = edit(fitquest_text, old, new)
    # When it is loaded
    issues = issues_of_text(text)
    # Then exactly that mistake is reported, where it is and with a fix
    assert len(issues) == 1, [f"{i.where}: {i.message}" for i in issues]
    issue = issues[0]
    assert issue.where == path
    assert issue.line == line_of(text, line_text)
    assert says in issue.message
    assert "Fix:" in issue.message


def test_report_shows_line_path_and_message(fitquest_text):
    text = edit(fitquest_text, "limit: {per: day, max: 5}", "limt: {per: day, max: 5}")
    with pytest.raises(ConfigInvalid) as caught:
        parse_config_text(text, source="fitquest.yaml")
    line = line_of(text, "limt:")
    assert str(caught.value).splitlines() == [
        "fitquest.yaml: 1 problem(s)",
        f"  line {line}, rules[0].limt: unknown field 'limt'. Fix: did you mean 'limit'?",
    ]


def test_an_unknown_field_like_no_other_is_to_be_removed(fitquest_text):
    text = edit(fitquest_text, "limit: {per: day, max: 5}", "bonus: {per: day, max: 5}")
    [issue] = issues_of_text(text)
    assert issue.message == "unknown field 'bonus'. Fix: remove it or check its spelling"


@pytest.mark.parametrize(
    ("old", "new", "where", "meant"),
    [
        ("  - id: workout-xp\n    on:", "  - id: workout-xp\n    On:", "rules[0].On", "on"),  # not also "on is missing"
        ("collapse_key", "colapse_key", None, "collapse_key"),
        ("quiet_hours:", "quiet_hour:", "notifications.defaults.quiet_hour", "quiet_hours"),
    ],
    ids=["wrong-case-of-a-required-field", "misspelled-optional-field", "misspelled-optional-section"],
)
def test_a_misspelled_optional_field_names_the_field_meant(fitquest_text, old, new, where, meant):
    # An optional field is never "missing": before, the typo was only "remove it", and following that lost the limit
    [issue] = issues_of_text(edit(fitquest_text, old, new))
    assert issue.message.endswith(f"Fix: did you mean {meant!r}?")
    assert where is None or issue.where == where


def test_a_misspelled_required_field_is_one_problem_that_names_the_field_meant(fitquest_text):
    text = edit(
        fitquest_text, 'award: {xp: "event.minutes * 2", coins: 5}', 'awrd: {xp: "event.minutes * 2", coins: 5}'
    )
    with pytest.raises(ConfigInvalid) as caught:
        parse_config_text(text, source="fitquest.yaml")
    line = line_of(text, "awrd:")
    assert str(caught.value).splitlines() == [  # not also "required field 'award' is missing"
        "fitquest.yaml: 1 problem(s)",
        f"  line {line}, rules[0].awrd: unknown field 'awrd'. Fix: did you mean 'award'?",
    ]


def test_invalid_yaml_reports_the_line_of_the_problem(fitquest_text):
    # Given a tab where YAML allows only spaces
    text = edit(fitquest_text, "app: fitquest\n", "app: fitquest\n\tdebug: true\n")
    issues = issues_of_text(text)
    assert len(issues) == 1
    assert issues[0].line == line_of(text, "\tdebug")
    assert "not valid YAML" in issues[0].message


def test_invalid_yaml_unclosed_bracket_reports_a_line_inside_the_file(fitquest_text):
    text = edit(fitquest_text, "  - id: daily-open\n", "  - id: daily-open\n   bad: [\n")
    issues = issues_of_text(text)
    assert len(issues) == 1
    assert issues[0].line is not None and line_of(text, "   bad: [") <= issues[0].line <= text.count("\n") + 1
    assert "not valid YAML" in issues[0].message


def test_invalid_yaml_names_where_the_open_bracket_started_and_the_fix():
    issues = issues_of_text("app: x\nevents:\n  foo: [a, b\nrules: []\n")
    assert issues[0].line == 4
    assert "on line 3" in issues[0].message and "Fix:" in issues[0].message


def test_a_file_that_is_not_utf8_is_a_config_error_not_a_crash(tmp_path):
    from engage.config import load_config_file

    path = tmp_path / "engagement.yaml"
    path.write_bytes(b"app: \xff\xfe\n")
    with pytest.raises(ConfigInvalid, match=r"not UTF-8.*Fix: save the file as UTF-8"):
        load_config_file(path)


@pytest.mark.parametrize(
    ("tail", "says"),
    [
        ("x: &r [*r]\n", "refers to a value that contains it"),
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdefg", "bcdefgh", strict=True)),
            "more than 100,000 values",
        ),
        ("y: " + "[" * 3000 + "]" * 3000 + "\n", "nests values too deeply"),
    ],
    ids=["alias-inside-itself", "alias-bomb", "too-deep"],
)
def test_yaml_that_would_hang_or_crash_the_reader_is_a_config_error(fitquest_text, tail, says):
    issues = issues_of_text(fitquest_text + "\n" + tail)
    assert len(issues) == 1 and says in issues[0].message and "Fix:" in issues[0].message


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        (
            "kind: {type: string, enum: [run, ride, yoga, strength]}",
            "kind: {type: integer, enum: [run, ride]}",
            "enum values ['run', 'ride'] are not of type integer",
        ),
        ("app: fitquest\n", "app: fitquest\nlate_window: 1000000000d\n", "'1000000000d' is longer than any duration"),
    ],
    ids=["enum-of-another-type", "huge-duration"],
)
def test_values_that_crashed_the_validator_are_config_errors(fitquest_text, old, new, says):
    issues = issues_of_text(edit(fitquest_text, old, new))
    assert any(says in issue.message and "Fix:" in issue.message for issue in issues), issues


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        (
            'when: "fact.new_rank <= 10"',
            'when: "fact.new_rnk <= 10"',
            "reads fact.new_rnk, which fact does not have for a rank_lost trigger. Fix: use one of board,",
        ),
        ('when: "fact.new_rank <= 10"', "when: \"fact.new_rank <= '10'\"", "mixes types"),
        ('when: "fact.new_rank <= 10"', "when: \"badge.name == 'x'\"", "badge is empty for a rank_lost trigger"),
        ('when: "fact.new_rank <= 10"', 'when: "fact.new_rank"', "gives 1, not true or false"),
        (
            'when: "streak.length >= 3 && !streak.done_today"',
            'when: "streak.lenght >= 3"',
            "reads streak.lenght, which streak does not have",
        ),
        ('when: "event.minutes >= 10"', 'when: "user.levle >= 2"', "reads user.levle, which user does not have"),
        (
            'when: "event.minutes >= 10"',
            'when: "local.day_of_week >= 6"',
            "Fix: use one of date, hour, minute, weekday",
        ),
        ('when: "event.minutes >= 10"', 'when: "user.balances.gems > 1"', "'gems' is no currency"),
    ],
    ids=[
        "fact-typo",
        "number-vs-text",
        "not-this-facts-subject",
        "not-a-condition",
        "streak-typo",
        "user-typo",
        "local-typo",
        "unknown-currency",
    ],
)
def test_fields_an_expression_reads_are_checked_also_in_triggers(fitquest_text, old, new, says):
    issues = issues_of_text(edit(fitquest_text, old, new))
    assert len(issues) == 1 and says in issues[0].message and "Fix:" in issues[0].message, issues


@pytest.mark.parametrize(
    "condition",
    [
        "user.balances.coins >= 100",
        "['run', 'ride'].exists(k, k == event.kind)",
        "local.date != 'user.x'",
        "user.balances.size() > 0",
        "user.earned.exists(c, user.earned[c] > 100)",
        "event.kind in ['run', 'ride'] || 'yoga' == event.kind",
        "event.kind.startsWith('r') || 'yoga' == event.kind",
    ],
)
def test_expressions_reading_what_is_there_are_accepted(fitquest_text, condition):
    parse_config_text(edit(fitquest_text, 'when: "event.minutes >= 10"', f'when: "{condition}"'))


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        (
            'quiet_hours: {start: "21:30", end: "08:00"}',
            'quiet_hours: {start: "21:30", end: "21:30"}',
            "quiet hours from 21:30 to 21:30 are no window at all",
        ),
        (
            "      on: level_up\n",
            "      on: level_up\n      leaderboard: weekly-xp\n",
            "level_up facts name no board, so it would never fire",
        ),
        (
            "      on: level_up\n",
            '      on: level_up\n      at_local: "09:00"\n',
            "at_local is read only by schedule triggers",
        ),
        (
            'criteria: {count: {event: workout_completed, when: "local.weekday >= 6"}, gte: 2, within: 2d}',
            'criteria: {count: {event: workout_completed, when: "local.weekday >= 6"}, gte: 150, within: 2d}',
            "so 150 within 2d can never be reached",
        ),
        (
            'criteria: {count: {event: workout_completed, when: "local.weekday >= 6"}, gte: 2, within: 2d}',
            "criteria: {sum: {event: workout_completed, property: minutes}, gte: 70000, within: 2d}",
            "so a sum of 70000 within 2d can never be reached",
        ),
        ("app: fitquest\n", "app: fitquest\nlate_window: 1m\n", "a late_window of 1m refuses the events"),
        ("valid_for: 2h", "valid_for: 5000d", "is longer than 10 years"),
        (
            "      - {rank_lte: 10, award: {coins: 20}}",
            "      - {rank_lte: 1, award: {coins: 20}}",
            "rank_lte 1 is given twice",
        ),
        (
            '        - {id: start, title: "Start 10 minutes", deep_link: "fitquest://workout/quick"}\n',
            '        - {id: start, title: "Start 10 minutes", deep_link: "fitquest://workout/quick"}\n'
            '        - {id: start, title: "Later"}\n',
            "id 'start' is used twice",
        ),
    ],
    ids=[
        "quiet-hours-without-a-window",
        "board-on-a-fact-without-one",
        "at-local-off-schedule",
        "window-too-full",
        "sum-window-too-full",
        "late-window-of-minutes",
        "a-validity-of-years",
        "a-rank-rewarded-twice",
        "an-action-id-twice",
    ],
)
def test_settings_that_would_never_take_effect_are_refused(fitquest_text, old, new, says):
    text = edit(fitquest_text, old, new)
    issues = issues_of_text(text)
    assert len(issues) == 1 and says in issues[0].message and "Fix:" in issues[0].message, issues
    # Refused when published, never when loaded: a config published before a check existed keeps serving.
    data, _ = parse_yaml(text, "engagement.yaml")
    validate_config_data(data, published=True)


def test_a_template_may_greet_the_user_with_their_level(fitquest_text):
    parse_config_text(
        edit(fitquest_text, 'body: "Nice work, {user.first_name}!', 'body: "Level {user.level}, {user.first_name}!')
    )


@pytest.mark.parametrize(
    "condition",
    ["event.minutes >= 10 && event.kind", "event.minutes >= 60 ? event.minutes * 1.5 > 90.0 : true"],
    ids=["only-long-workouts-reach-the-text", "only-long-workouts-take-the-double-branch"],
)
def test_a_branch_only_some_events_take_is_type_checked_too(fitquest_text, condition):
    # The sample used to be the property's minimum alone (1 minute): these branches were never evaluated.
    issues = issues_of_text(edit(fitquest_text, 'when: "event.minutes >= 10"', f'when: "{condition}"'))
    assert len(issues) == 1 and "mixes types" in issues[0].message


@pytest.mark.parametrize(
    ("condition", "says"),
    [
        ("event.kind == 'Yoga'", "which its enum does not have: it is always false. Fix: use one of ride, run,"),
        ("'Yoga' != event.kind", "it is always true"),
        ("event.minutes == '10'", "which holds a number, with the text '10': it is always false"),
        ("local.weekday == 'Saturday'", "(1 Monday … 7 Sunday)"),
    ],
    ids=["enum-case", "enum-reversed", "number-as-text", "weekday-by-name"],
)
def test_a_comparison_whose_answer_never_changes_is_refused(fitquest_text, condition, says):
    # CEL answers these without an error, so evaluating them on samples never caught them.
    issues = issues_of_text(edit(fitquest_text, 'when: "event.minutes >= 10"', f'when: "{condition}"'))
    assert len(issues) == 1 and says in issues[0].message, issues


def test_a_distinct_badge_needing_more_values_than_the_enum_has_is_refused(fitquest_text):
    text = edit(fitquest_text, "distinct: {event: workout_completed, property: kind}, gte: 4",
                "distinct: {event: workout_completed, property: kind}, gte: 5")  # fmt: skip
    [issue] = issues_of_text(text)
    assert "5 different values of kind can never be seen: its enum has 4" in issue.message


def test_empty_file_is_rejected_at_the_top_level():
    issues = issues_of_text("")
    assert [issue.where for issue in issues] == ["(top level)"]


# ---------------------------------------------------------------- several problems at once


def test_several_schema_problems_are_reported_at_once(fitquest_text):
    text = edit(fitquest_text, "limit: {per: day, max: 5}", "limt: {per: day, max: 5}")
    text = edit(text, "default_timezone: UTC", "default_timezone: Mars/Olympus")
    text = edit(text, "thresholds: [0, 100,", "thresholds: [5, 100,")
    issues = issues_of_text(text)
    assert {(issue.where, issue.line) for issue in issues} == {
        ("default_timezone", line_of(text, "default_timezone")),
        ("rules[0].limt", line_of(text, "limt:")),
        ("levels.thresholds", line_of(text, "thresholds:")),
    }
    assert all("Fix:" in issue.message for issue in issues)


def test_several_reference_problems_are_reported_at_once(fitquest_text):
    text = edit(fitquest_text, "  - id: daily-open\n", "  - id: workout-xp\n")
    text = edit(text, "award: {xp: 5}", "award: {gems: 5}")
    text = edit(text, "category: reminders", "category: reminder")
    text = edit(text, 'when: "event.minutes >= 10"', 'when: "evnt.minutes >= 10"')
    issues = issues_of_text(text)
    assert {(issue.where, issue.line) for issue in issues} == {
        ("rules[1].id", line_of(text, "  - id: workout-xp\n    on: app_opened")),
        ("rules[0].when", line_of(text, "evnt.minutes")),
        ("rules[1].award.gems", line_of(text, "gems")),
        ("notifications.triggers[2].category", line_of(text, "category: reminder\n")),
    }
    assert all("Fix:" in issue.message for issue in issues)


def test_shape_problems_come_first_then_reference_problems(fitquest_text):
    # As loader.py documents: references are checked once the shape is right (they need the parsed model).
    text = edit(fitquest_text, "limit: {per: day, max: 5}", "limt: {per: day, max: 5}")
    text = edit(text, "award: {xp: 5}", "award: {gems: 5}")
    assert [issue.where for issue in issues_of_text(text)] == ["rules[0].limt"]

    fixed = edit(text, "limt: {per: day, max: 5}", "limit: {per: day, max: 5}")
    assert [issue.where for issue in issues_of_text(fixed)] == ["rules[1].award.gems"]


# ---------------------------------------------------------------- plain dicts (the JSON form in the table)


def test_plain_json_dict_of_reference_config_validates_to_the_same_config(fitquest_text, fitquest):
    data, _ = parse_yaml(fitquest_text, "engagement.yaml")
    config = validate_config_data(json.loads(json.dumps(data)))
    assert config.model_dump(mode="json") == fitquest.model_dump(mode="json")


def test_json_dump_of_a_config_validates_back_to_an_equal_config(fitquest):
    # Given the config as stored in the table (durations as "2h", expressions as their CEL text)
    stored = json.loads(json.dumps(fitquest.model_dump(mode="json")))
    assert stored["late_window"] == "1w"
    assert stored["rules"][0]["award"] == {"xp": "event.minutes * 2", "coins": 5}
    # When a Lambda validates it again
    again = validate_config_data(stored)
    # Then it is the same config, expressions compiled again
    assert again.model_dump(mode="json") == stored
    assert again.rules[0].award["xp"].evaluate({"event": {"minutes": 12}}) == 24


@pytest.mark.parametrize(
    ("old", "new"),
    [SINGLE_PROBLEMS[key][:2] for key in ("unknown_event_in_rule", "unknown_field_typo", "trigger_with_unknown_category",
                                           "late_window_over_30_days", "cel_syntax_error_in_when")],
    ids=["unknown_event", "unknown_field", "unknown_category", "late_window", "cel_syntax"],
)  # fmt: skip
def test_plain_dict_gives_the_same_errors_as_yaml_without_lines(fitquest_text, old, new):
    text = edit(fitquest_text, old, new)
    data, _ = parse_yaml(text, "engagement.yaml")
    from_yaml = issues_of_text(text)
    from_dict = issues_of_data(json.loads(json.dumps(data)))
    assert [(i.path, i.message) for i in from_dict] == [(i.path, i.message) for i in from_yaml]
    assert all(issue.line is None for issue in from_dict)
    assert all(issue.line is not None for issue in from_yaml)


def test_plain_dict_reports_missing_required_section(fitquest_data):
    del fitquest_data["currencies"]
    issues = issues_of_data(fitquest_data)
    assert [(i.where, i.line) for i in issues] == [("currencies", None)]
    assert "required field 'currencies' is missing" in issues[0].message
    assert "Fix: add it" in issues[0].message


def test_a_document_that_is_not_a_mapping_is_rejected():
    issues = issues_of_data(["app", "fitquest"])
    assert len(issues) == 1 and issues[0].where == "(top level)"


# ---------------------------------------------------------------- JSON schema for editors


def test_json_schema_is_generated_and_json_serialisable():
    schema = EngagementConfig.model_json_schema()
    text = json.dumps(schema)
    assert json.loads(text) == schema
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) >= {"app", "events", "currencies"}
    assert "on" in schema["$defs"]["Rule"]["properties"]


def test_reference_config_satisfies_the_generated_json_schema(fitquest_text):
    data, _ = parse_yaml(fitquest_text, "engagement.yaml")
    jsonschema.validate(data, EngagementConfig.model_json_schema())


def test_generated_json_schema_rejects_a_field_typo(fitquest_data):
    fitquest_data["rules"][0]["limt"] = fitquest_data["rules"][0].pop("limit")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(fitquest_data, EngagementConfig.model_json_schema())


# ---------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("7d", timedelta(days=7)),
        ("1w", timedelta(weeks=1)),
        ("45s", timedelta(seconds=45)),
        (" 3d ", timedelta(days=3)),
    ],
)
def test_durations_parse(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["0d", "7x", "", "7", "d", "-1d", "1.5h", "7 days", 7, None])
def test_bad_durations_are_rejected_with_a_fix(text):
    with pytest.raises(ValueError, match="Fix:"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["30m", "2h", "7d", "1w", "90m", "45s", "36h"])
def test_durations_format_back_to_an_equal_duration(text):
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)


def test_durations_format_in_the_largest_whole_unit():
    assert [format_duration(timedelta(seconds=s)) for s in (604800, 86400 * 14, 172800, 7200, 5400, 45)] == [
        "1w", "2w", "2d", "2h", "90m", "45s",
    ]  # fmt: skip


# ---------------------------------------------------------------- edge cases found by review


def test_expression_with_a_macro_and_its_loop_variable_is_accepted(fitquest_text):
    text = edit(
        fitquest_text,
        'when: "event.minutes >= 10"',
        """when: "['run', 'ride'].exists(k, k == event.kind)\"""",
    )
    config = parse_config_text(text)
    assert config.rules[0].when is not None


def test_duplicate_quest_step_id_is_reported_on_its_own_line(fitquest_text):
    text = edit(fitquest_text, "{id: try-yoga,", "{id: three-workouts,")
    issues = issues_of_text(text)
    assert [issue.where for issue in issues] == ["quests[0].steps[1].id"]
    assert issues[0].line == line_of(text, "{id: three-workouts, count: {event: workout_completed, when")


def test_a_key_written_twice_in_one_mapping_is_rejected(fitquest_text):
    text = edit(
        fitquest_text,
        "    limit: {per: day, max: 5}",
        "    limit: {per: day, max: 5}\n    limit: {per: week, max: 50}",
    )
    issues = issues_of_text(text)
    assert [issue.where for issue in issues] == ["rules[0].limit"]


# Mistakes a product owner makes easily: every one of them must come with a "Fix:" hint.
MISSING_FIX_HINTS = {
    "event_source_typo": ("source: server ", "source: sever "),
    "limit_period_typo": ("limit: {per: day, max: 5}", "limit: {per: days, max: 5}"),
    "property_type_typo": ("minutes: {type: integer,", "minutes: {type: int,"),
    "boolean_not_a_boolean": ("secret: true", "secret: maybe"),
    "name_not_a_string": ("xp: {name: Experience}", "xp: {name: [Experience]}"),
    "min_not_a_number": ("min: 1, max: 600", "min: one, max: 600"),
    "empty_award_expression": ("award: {xp: 5}", 'award: {xp: ""}'),
    "whole_file_empty": None,
}


@pytest.mark.parametrize("change", MISSING_FIX_HINTS.values(), ids=MISSING_FIX_HINTS)
def test_every_rejection_has_a_fix_hint(fitquest_text, change):
    text = "" if change is None else edit(fitquest_text, *change)
    issues = issues_of_text(text)
    assert len(issues) == 1
    assert "Fix:" in issues[0].message, issues[0].message


def test_an_expression_mixing_int_and_double_is_caught_at_validation(fitquest_text):
    # amount is a number (a double in CEL): `* 2` (an int) fails on every real event, so it fails here first.
    text = edit(fitquest_text, 'award: {coins: "int(event.amount)"}', 'award: {coins: "event.amount * 2"}')
    issues = issues_of_text(text)
    assert [issue.where for issue in issues] == ["rules[2].award.coins"]
    assert "mixes types" in issues[0].message and "Fix:" in issues[0].message
    assert issues[0].line == line_of(text, 'award: {coins: "event.amount * 2"}')


def test_the_same_expression_with_explicit_conversions_is_accepted(fitquest_text):
    text = edit(fitquest_text, 'award: {coins: "int(event.amount)"}', 'award: {coins: "int(event.amount * 2.0)"}')
    assert parse_config_text(text).rules[2].award["coins"].source == "int(event.amount * 2.0)"


def test_a_template_placeholder_the_trigger_cannot_fill_is_a_config_error(fitquest_text):
    text = edit(fitquest_text, 'body: "Nice work, {user.first_name}!', 'body: "Nice work, {user.nickname}!')
    issues = issues_of_text(text)
    assert [issue.where for issue in issues] == ["notifications.triggers[0].template.body"]
    assert "user.nickname" in issues[0].message and "Fix:" in issues[0].message
    assert issues[0].line == line_of(text, 'body: "Nice work, {user.nickname}!')


def test_a_placeholder_mistake_in_a_locale_override_names_that_text_and_its_line(fitquest_text):
    # It used to point at the trigger's template, some lines above the German text that has the mistake.
    text = edit(fitquest_text, 'body: "Gut gemacht, {user.first_name}!', 'body: "Gut gemacht, {user.vorname}!')
    [issue] = issues_of_text(text)
    assert issue.where == "notifications.triggers[0].locales.de.body"
    assert issue.line == line_of(text, 'body: "Gut gemacht, {user.vorname}!')


@pytest.mark.parametrize("tag", ["de", "de-DE", "pt_BR", "ja-JP-u-ca-japanese", "th-TH-u-nu-thai", "zh-Hant-TW"])
def test_locales_devices_send_are_accepted_with_their_extensions(tag):
    from pydantic import TypeAdapter

    from engage.config.types import Locale

    assert TypeAdapter(Locale).validate_python(tag) == tag


@pytest.mark.parametrize("tag", ["", "d", "de--DE", "de-DE-", "123", "de-toolongsubtag"])
def test_malformed_locales_are_refused(tag):
    from pydantic import TypeAdapter, ValidationError

    from engage.config.types import Locale

    with pytest.raises(ValidationError):
        TypeAdapter(Locale).validate_python(tag)


def test_a_distinct_badge_counts_to_a_thousand_at_most_as_each_value_is_kept_in_the_user_item(fitquest_text):
    text = edit(
        fitquest_text,
        "criteria: {distinct: {event: workout_completed, property: kind}, gte: 4}",
        "criteria: {distinct: {event: workout_completed, property: minutes}, gte: 5000}",
    )
    [issue] = issues_of_text(text)
    assert issue.where == "badges[2]" and "Fix: at most 1000" in issue.message


def test_a_published_config_is_only_checked_for_shape_when_the_lambdas_load_it(fitquest_text):
    # Given a config published before a check became stricter (a when that gives no true/false)
    data, _ = parse_yaml(edit(fitquest_text, 'when: "event.minutes >= 10"', 'when: "event.minutes"'), "x")
    with pytest.raises(ConfigInvalid, match="not true or false"):
        validate_config_data(data)
    # Then the Lambdas still load it after the upgrade (a 503 for every request would be worse); only a
    # document whose shape the code cannot use is refused
    assert validate_config_data(data, published=True).rules[0].id == "workout-xp"
    with pytest.raises(ConfigInvalid):
        validate_config_data({**data, "rules": "not a list"}, published=True)


def test_property_names_any_published_config_had_still_load_and_the_publish_check_names_those_cel_cannot_read(
    fitquest_text,
):
    text = edit(fitquest_text, "minutes: {type: integer, min: 1, max: 600}",
                "minutes: {type: integer, min: 1, max: 600}\n      _src: {type: string}\n      heart-rate: {type: number}")  # fmt: skip
    data, _ = parse_yaml(text, "x")
    assert set(validate_config_data(data, published=True).events["workout_completed"].properties) >= {
        "_src",
        "heart-rate",
    }
    [issue] = issues_of_text(text)  # _src is a name CEL reads as event._src; heart-rate is not
    assert issue.where == "events.workout_completed.properties.heart-rate"


def test_a_duration_out_of_bounds_is_quoted_in_days_as_written(fitquest_text):
    [issue] = issues_of_text(edit(fitquest_text, "default_locale: en\n", "default_locale: en\nlate_window: 35d\n"))
    assert "(got 35d)" in issue.message


def test_the_examples_in_the_gamification_guide_validate():
    """Each YAML block of docs/gamification.md, put in place of its section of the FitQuest config."""
    import re

    guide = (REPO_ROOT / "docs" / "gamification.md").read_text()
    for block in re.findall(r"```yaml\n(.*?)```", guide, re.S):
        data, _ = parse_yaml(FITQUEST_PATH.read_text(), "fitquest")
        section, _ = parse_yaml(block, "docs/gamification.md")
        data.update(section)
        validate_config_data(data)  # raises ConfigInvalid naming the field


def test_a_text_in_the_wrong_form_gets_the_fix_for_its_own_kind_of_name(fitquest_text):
    locale = edit(fitquest_text, "        de:\n", "        de.DE:\n")
    badge = edit(fitquest_text, "- id: first-workout", "- id: 1st-workout")

    [bad_locale], [bad_id] = issues_of_text(locale), issues_of_text(badge)

    assert "Fix: write a language tag such as en, de-DE or pt-BR" in bad_locale.message
    assert "Fix: use letters, digits, '_', '-' or '.', starting with a letter" in bad_id.message


@pytest.mark.parametrize(
    ("reported", "stored", "offset_minutes"),
    [("GMT+05:30", "UTC+05:30", 330), ("GMT+0530", "UTC+05:30", 330), ("UTC-3", "UTC-03:00", -180),
     ("GMT+00:00", "UTC", 0), ("Asia/Kolkata", "Asia/Kolkata", 330)],
)  # fmt: skip
def test_a_zone_set_by_hand_on_a_device_is_a_fixed_offset_not_a_refused_batch(reported, stored, offset_minutes):
    from datetime import datetime, timedelta

    from engage.config.types import check_timezone, tzinfo_of

    assert check_timezone(reported) == stored
    assert tzinfo_of(stored).utcoffset(datetime(2026, 1, 15)) == timedelta(minutes=offset_minutes)


@pytest.mark.parametrize("zone", ["GMT+15:00", "GMT+05:60", "UTC+", "GMT+5:3", "Mars/Olympus"])
def test_offsets_no_place_has_are_refused_with_the_fix(zone):
    from engage.config.types import check_timezone

    with pytest.raises(ValueError, match=r"Fix: use an IANA zone name .* or a fixed offset"):
        check_timezone(zone)


# ---------------------------------------------------------------- mistakes found by trying them (2026-11-23)


@pytest.mark.parametrize(
    ("bounds", "where", "says"),
    [
        ("{type: integer, min: 1, max: .nan}", "max", ".nan is not a finite number"),
        ("{type: integer, min: -.inf, max: 600}", "min", "-.inf is not a finite number"),
        ("{type: integer, min: 1, max: 1.0e+30}", "max", "1e+30 is outside the 64-bit range"),
    ],
    ids=["nan", "minus-infinity", "past-64-bits"],
)
def test_a_bound_no_event_value_can_be_checked_against_is_refused_on_its_own_line(fitquest_text, bounds, where, says):
    # Before: .nan and .inf crashed `config validate` with a traceback; a bound past 64 bits blamed the rule
    # multiplying the property ("mixes types")
    text = edit(fitquest_text, "minutes: {type: integer, min: 1, max: 600}", f"minutes: {bounds}")
    [issue] = issues_of_text(text)
    assert issue.where == f"events.workout_completed.properties.minutes.{where}"
    assert says in issue.message and "Fix:" in issue.message
    assert issue.line == line_of(text, "minutes: {type:")


def test_an_infinite_bound_of_a_number_property_is_refused(fitquest_text):
    # Before: it passed, and `max: .nan` checked nothing at all
    [issue] = issues_of_text(
        edit(fitquest_text, "amount: {type: number, min: 0}", "amount: {type: number, min: 0, max: .inf}")
    )
    assert issue.where == "events.purchase_completed.properties.amount.max"
    assert ".inf is not a finite number" in issue.message


def test_integer_enum_values_past_64_bits_are_refused(fitquest_text):
    text = edit(
        fitquest_text,
        "minutes: {type: integer, min: 1, max: 600}",
        "minutes: {type: integer, enum: [1, 99999999999999999999]}",
    )
    [issue] = issues_of_text(text)
    assert issue.where == "events.workout_completed.properties.minutes.enum"
    assert "enum values 99999999999999999999 are outside the 64-bit range" in issue.message


@pytest.mark.parametrize(
    ("enum", "says"),
    [
        ("[run, ride, yoga, true]", "enum value true is true/false"),
        ("[run, {a: 1}]", "enum value {'a': 1} is not text or a number"),
    ],
    ids=["a-boolean", "a-mapping"],
)
def test_an_enum_value_of_no_property_type_is_one_problem_saying_what_it_is(fitquest_text, enum, says):
    # Before: `true` was read as 1 ("enum values [1] are not of type string"), a mapping gave three problems
    text = edit(fitquest_text, "enum: [run, ride, yoga, strength]", f"enum: {enum}")
    [issue] = issues_of_text(text)
    assert issue.where.startswith("events.workout_completed.properties.kind.enum[")
    assert says in issue.message and "Fix:" in issue.message


def test_a_published_config_with_a_boolean_in_an_integer_enum_still_loads(fitquest):
    # Published before the enum check: the Lambdas keep loading it as they did (true as 1)
    data = fitquest.model_dump(mode="json", by_alias=True)
    data["events"]["workout_completed"]["properties"]["minutes"] = {"type": "integer", "enum": [1, True]}
    config = validate_config_data(data, published=True)
    assert config.events["workout_completed"].properties["minutes"].enum == [1, 1]


@pytest.mark.parametrize(
    ("old", "new", "where", "says"),
    [
        (
            'quiet_hours: {start: "21:30", end: "08:00"}',
            'quiet_hours: "22:00-07:00"',
            "notifications.defaults.quiet_hours",
            "expected a mapping of start, end, not '22:00-07:00'. Fix: write it as key: value lines, e.g. "
            "{start: …, end: …}",
        ),
        (
            "xp: {name: Experience}",
            "xp: Experience",
            "currencies.xp",
            "expected a mapping of name (optional: description), not 'Experience'",
        ),
    ],
    ids=["quiet-hours-as-a-range", "currency-as-its-name"],
)
def test_text_where_a_section_belongs_names_the_keys_it_takes(fitquest_text, old, new, where, says):
    [issue] = issues_of_text(edit(fitquest_text, old, new))
    assert issue.where == where
    assert says in issue.message
    assert "instance of" not in issue.message  # pydantic's class names mean nothing to a product owner


def test_a_file_that_is_a_list_is_told_what_a_config_looks_like():
    [issue] = issues_of_text("- app: fitquest\n")
    assert issue.message.startswith("the file must be a mapping of sections (app:, events:, currencies:, …)")
    assert "EngagementConfig" not in issue.message


def test_too_many_boards_are_counted_not_listed(fitquest_text):
    board = fitquest_text[fitquest_text.index("  - id: weekly-xp") : fitquest_text.index("notifications:")]
    boards = "".join(board.replace("id: weekly-xp", f"id: board-{n}") for n in range(21))
    [issue] = issues_of_text(
        fitquest_text.replace(board, boards).replace("leaderboard: weekly-xp", "leaderboard: board-0")
    )
    assert issue.where == "leaderboards"
    assert "at most 20 items" in issue.message and "not 21" in issue.message
    assert len(issue.message) < 200, issue.message  # before: every board dumped as Python dicts (1,884 characters)


@pytest.mark.parametrize(
    ("award", "says"),
    [
        ("{xp: true}", "award amount true is true/false"),
        ("{xp: }", "expected a CEL expression, got nothing"),
        ("{xp: 0}", "award amount 0 pays nothing"),
    ],
    ids=["true", "empty", "zero"],
)
def test_an_award_that_is_no_amount_says_so_as_written(fitquest_text, award, says):
    [issue] = issues_of_text(edit(fitquest_text, "award: {xp: 5}", f"award: {award}"))
    assert issue.where == "rules[1].award.xp"
    assert says in issue.message and "Fix:" in issue.message


@pytest.mark.parametrize(
    ("line", "where", "says"),
    [
        ("description: !!binary aGVsbG8=", "events.app_opened.description", "a YAML !!binary value"),
        ("description: !!timestamp 2026-01-01", "events.app_opened.description", "a YAML !!timestamp value"),
        ("properties: !!set {a, b}", "events.app_opened.properties", "a YAML !!set value"),
    ],
    ids=["binary", "timestamp", "set"],
)
def test_yaml_values_json_cannot_hold_are_refused_before_publishing(fitquest_text, line, where, says):
    # Before: `config validate` passed them and `config publish` crashed ("bytes is not JSON serializable")
    text = edit(
        fitquest_text, "  app_opened:\n    source: client\n", f"  app_opened:\n    source: client\n    {line}\n"
    )
    [issue] = issues_of_text(text)
    assert issue.where == where and says in issue.message and "Fix:" in issue.message
    assert issue.line == line_of(text, line)


@pytest.mark.parametrize("key", ["1", "~", "true"])
def test_a_key_that_yaml_reads_as_no_text_is_refused_with_its_line(fitquest_text, key):
    # Before: `~:` under currencies was reported at "currencies.None", `1:` at "currencies[1]"
    text = edit(fitquest_text, "  coins: {name: Coins}\n", f"  coins: {{name: Coins}}\n  {key}: {{name: Gems}}\n")
    [issue] = issues_of_text(text)
    assert issue.message == f"the key {key} is not text. Fix: quote it ('{key}')"
    assert issue.line == line_of(text, f"  {key}: {{name: Gems}}")


def test_a_tab_is_told_to_be_spaces(fitquest_text):
    [issue] = issues_of_text(edit(fitquest_text, "app: fitquest\n", "app: fitquest\n\tdebug: true\n"))
    assert issue.message.endswith("Fix: indent with spaces; YAML does not allow tabs there")


def test_a_config_too_big_for_its_config_table_item_is_refused_at_validation(fitquest_text):
    # Before: it validated, and `config publish` failed with DynamoDB's item-size error and a fix about permissions
    data, _ = parse_yaml(fitquest_text, "engagement.yaml")
    data["rules"] += [
        {"id": f"r{n}", "on": "app_opened", "award": {"xp": 1}, "when": f"user.level >= {n}"} for n in range(3000)
    ]
    [issue] = issues_of_data(data)
    assert "KB as stored; at most 160 KB fit" in issue.message and "Fix:" in issue.message


def test_a_file_too_big_to_publish_is_refused_before_it_is_parsed(fitquest_text):
    [issue] = issues_of_text(fitquest_text + "#" * 200_000 + "\n")
    assert "at most 200 KB can be published" in issue.message


def test_locale_keys_that_are_one_tag_are_refused(fitquest_text):
    # Tags are matched without case: DE and de hid one another, silently
    text = edit(
        fitquest_text, "      locales:\n        de:\n", "      locales:\n        DE: {title: Hallo}\n        de:\n"
    )
    [issue] = issues_of_text(text)
    assert issue.where == "notifications.triggers[0].locales.de"
    assert "is the same language tag as 'DE'" in issue.message and "Fix:" in issue.message


def test_a_daily_cap_above_the_weekly_cap_is_refused(fitquest_text):
    [issue] = issues_of_text(edit(fitquest_text, "caps: {per_day: 2, per_week: 6,", "caps: {per_day: 10, per_week: 6,"))
    assert issue.where == "notifications.defaults.caps.per_day"
    assert "per_day 10 is more than per_week 6" in issue.message


def test_an_unknown_trigger_fact_is_one_problem(fitquest_text):
    # Before: its `when` and every placeholder were reported too, each saying "use one of user"
    [issue] = issues_of_text(edit(fitquest_text, "on: badge_awarded", "on: badge_earned"))
    assert issue.where == "notifications.triggers[0].on"
    assert "unknown fact type 'badge_earned'" in issue.message


def test_min_above_max_is_shown_as_written(fitquest_text):
    [issue] = issues_of_text(edit(fitquest_text, "min: 1, max: 600", "min: 600, max: 1"))
    assert "min 600 is greater than max 1. Fix: swap them" in issue.message


# ---------------------------------------------------------------- what a config keeps per user


def _places_config(badges: int, highest: int = 1000) -> str:
    listed = "".join(
        f"  - {{id: places-{n}, name: Places {n}, criteria: {{distinct: {{event: visit, property: place}}}},"
        f" tiers: [{{name: Bronze, gte: 10}}, {{name: Gold, gte: {highest}}}]}}\n"
        for n in range(badges)
    )
    return (
        "app: places\nevents:\n  visit:\n    properties:\n      place: {type: string}\n"
        f"currencies:\n  xp: {{name: XP}}\nbadges:\n{listed}"
    )


def test_a_config_whose_per_user_progress_could_outgrow_a_dynamodb_item_is_refused():
    # 28 badges each keeping up to 1,000 values met: about 420 KB per user. Before, it validated, and a user who
    # got there had every later request fail (DynamoDB refuses items over 400 KB)
    [issue] = issues_of_text(_places_config(badges=28))
    assert issue.where == "badges[0]"
    assert "could grow to 420 KB" in issue.message and "badge places-0 15.0 KB" in issue.message
    assert "Fix: lower the highest tier of distinct badges" in issue.message


def test_progress_within_the_budget_fits_a_dynamodb_item_when_it_is_full():
    # The budget's estimate holds: a user who met 1,000 values on each of 19 such badges (285 KB counted; 20 is
    # the most accepted) has progress well under DynamoDB's 400 KB, measured as the store writes it
    from engage.engine import Event, UserState, apply_batch

    config = parse_config_text(_places_config(badges=19))
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    events = [(i, Event(f"v{i}", "visit", now, {"place": f"place number {i:04d} in town"})) for i in range(1000)]
    state = apply_batch(config, UserState(user_id="u1"), events, source="client", now=now).after

    assert all(badge["tiers"] == 2 for badge in state.badges.values())
    stored = json.dumps(
        {"badges": state.badges, "streaks": state.streaks, "quests": state.quests}, separators=(",", ":")
    )
    assert 280_000 < len(stored) <= 300_000  # what the budget counted for them: 19 × 1,000 × 15 bytes = 285 KB


def test_large_bounds_are_shown_as_written(fitquest_text):
    # `:g` printed both as 1.5e+06, which read as equal
    [issue] = issues_of_text(
        edit(fitquest_text, "amount: {type: number, min: 0}", "amount: {type: number, min: 1500000, max: 1499999}")
    )
    assert "min 1500000 is greater than max 1499999" in issue.message


def test_a_required_field_misspelt_further_off_is_still_one_problem(fitquest_text):
    text = edit(
        fitquest_text,
        "    criteria: {count: {event: workout_completed}, gte: 1}",
        "    crit: {count: {event: workout_completed}, gte: 1}",
    )
    [issue] = issues_of_text(text)
    assert issue.message == "unknown field 'crit'. Fix: did you mean 'criteria'?"


def test_a_section_with_only_optional_fields_says_which_it_takes(fitquest_text):
    [issue] = issues_of_text(edit(fitquest_text, "caps: {per_day: 2, per_week: 6, min_gap: 2h}", "caps: 3"))
    assert issue.message.startswith("expected a mapping with any of per_day, per_week, min_gap, not 3. Fix:")


def test_a_listed_text_an_enum_does_not_have_is_refused_as_a_compared_one_is(fitquest_text):
    # Before: `event.kind == 'Yoga'` was refused, `event.kind in ['run', 'Yoga']` passed and never matched yoga
    text = edit(fitquest_text, 'when: "event.minutes >= 10"', "when: \"event.kind in ['run', 'Yoga']\"")
    [issue] = issues_of_text(text)
    assert issue.where == "rules[0].when"
    assert (
        "lists 'Yoga' for event.kind, which its enum does not have: it never matches. Fix: use values from ride, run"
        in issue.message
    )


def test_listed_texts_the_enum_has_pass(fitquest_text):
    parse_config_text(edit(fitquest_text, 'when: "event.minutes >= 10"', "when: \"event.kind in ['run', 'yoga']\""))


def test_a_window_bound_reads_as_written(fitquest_text):
    text = edit(fitquest_text, "amount: {type: number, min: 0}", "amount: {type: number, min: 0, max: 1500000}")
    text = text.replace(
        "badges:\n",
        "badges:\n  - {id: big, name: Big, criteria: {sum: {event: purchase_completed, property: amount}, gte: 2000000000000, within: 7d}}\n",
        1,
    )
    [issue] = issues_of_text(text)
    assert (
        "at most 1500000, so a sum of 2000000000000 within 7d can never be reached. Fix: at most 150000000"
        in issue.message
    )

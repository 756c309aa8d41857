"""Notification texts: placeholder validation and rendering in the user's language (engage.notify.templates)."""

from __future__ import annotations

from typing import Any

import pytest

from engage.config import EngagementConfig
from engage.config.schema import Action, LocalizedTemplate, Template, Trigger
from engage.notify.templates import (
    AVAILABLE_BY_FACT,
    Rendered,
    RenderedAction,
    available_for,
    check_trigger_templates,
    placeholders,
    render,
)

BADGE_VALUES: dict[str, dict[str, Any]] = {
    "badge": {"id": "first-workout", "name": "First Workout", "tier": None},
    "user": {"first_name": "Ada", "locale": "de-DE"},
}


def trigger(**changes: Any) -> Trigger:
    data: dict[str, Any] = {
        "id": "badge-earned",
        "on": "badge_awarded",
        "category": "progress",
        "valid_for": "2h",
        "template": Template(
            title="New badge: {badge.name}",
            body="Nice work, {user.first_name}!",
            deep_link="app://badges/{badge.id}",
        ),
    }
    data.update(changes)
    return Trigger.model_validate(data)


# ---------------------------------------------------------------- placeholders and validation


def test_given_dotted_placeholders_and_escaped_braces_when_listed_then_only_the_placeholders_are_found() -> None:
    assert placeholders("Hi {user.first_name}, {{not.one}} costs {{{fact.amount}}}") == {
        "user.first_name",
        "fact.amount",
    }
    assert placeholders("no placeholders, just }} and {{") == set()


def test_given_the_reference_config_when_its_triggers_are_checked_then_all_four_pass(
    fitquest: EngagementConfig,
) -> None:
    assert fitquest.notifications is not None
    triggers = fitquest.notifications.triggers
    assert [t.id for t in triggers] == ["badge-earned", "level-up", "streak-at-risk", "overtaken"]
    for t in triggers:
        assert check_trigger_templates(t) == [], t.id
        assert check_trigger_templates(t, AVAILABLE_BY_FACT[t.on]) == [], t.id


def test_given_a_misspelt_field_when_checked_then_it_is_reported_with_a_fix_naming_the_real_fields() -> None:
    problems = check_trigger_templates(trigger(template=Template(title="{badge.nmae}", body="x")))
    assert len(problems) == 1
    assert "{badge.nmae}" in problems[0] and "template.title" in problems[0]
    assert "Fix:" in problems[0] and "badge.name" in problems[0]


def test_given_a_root_the_fact_type_lacks_when_checked_then_the_fix_lists_the_available_roots() -> None:
    problems = check_trigger_templates(trigger(template=Template(title="{streak.length} days", body="x")))
    assert len(problems) == 1
    assert "'streak'" in problems[0] and "badge_awarded" in problems[0]
    assert "Fix: use one of badge, fact, user" in problems[0]


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({"locales": {"de": LocalizedTemplate(body="Hallo {user.vorname}")}}, "locales.de.body"),
        ({"actions": [Action(id="open", title="Open {badge.title}")]}, "actions[0].title"),
        ({"actions": [Action(id="open", title="Open", deep_link="app://{level.number}")]}, "actions[0].deep_link"),
        ({"template": Template(title="t", body="b", deep_link="app://{badge}")}, "template.deep_link"),
        ({"template": Template(title="t", body="{badge.name.first}")}, "template.body"),
    ],
)
def test_given_a_bad_placeholder_anywhere_when_checked_then_the_text_holding_it_is_named(
    changes: dict[str, Any], where: str
) -> None:
    problems = check_trigger_templates(trigger(**changes))
    assert len(problems) == 1, problems
    assert where in problems[0] and "Fix:" in problems[0]


def test_given_an_unmatched_brace_or_a_malformed_placeholder_when_checked_then_both_are_reported() -> None:
    problems = check_trigger_templates(trigger(template=Template(title="50% off {today", body="{ badge.name }")))
    assert any("unmatched brace" in p and "Fix:" in p for p in problems)
    assert any("is not a placeholder" in p and "Fix:" in p for p in problems)


def test_given_a_placeholder_in_double_braces_when_checked_then_it_is_reported_as_the_literal_text_it_shows() -> None:
    # `{{badge.name}}`, the habit of other template languages, would show "{badge.name}" to the user.
    problems = check_trigger_templates(trigger(template=Template(title="New: {{badge.name}}", body="{{{badge.name}}}")))
    assert (
        len(problems) == 1 and "shows the text {badge.name}" in problems[0] and "Fix: write {badge.name}" in problems[0]
    )


def test_given_a_schedule_trigger_when_it_names_no_streak_then_streak_placeholders_are_not_available() -> None:
    with_streak = trigger(on="schedule", at_local="19:00", streak="daily-workout")
    without = trigger(on="schedule", at_local="19:00")
    text = Template(title="Keep your {streak.length}-day streak", body="{user.first_name}")
    assert "streak" in available_for(with_streak)
    assert check_trigger_templates(with_streak.model_copy(update={"template": text})) == []
    assert len(check_trigger_templates(without.model_copy(update={"template": text}))) == 1


def test_given_a_trigger_naming_a_leaderboard_when_checked_then_leaderboard_fields_are_available() -> None:
    t = trigger(on="schedule", at_local="09:00", leaderboard="weekly-xp")
    assert (
        check_trigger_templates(t.model_copy(update={"template": Template(title="{leaderboard.name}", body="b")})) == []
    )


# ---------------------------------------------------------------- rendering


@pytest.fixture
def localized() -> Trigger:
    return trigger(
        locales={
            "de": LocalizedTemplate(title="Neues Abzeichen: {badge.name}", body="Gut gemacht, {user.first_name}!"),
            "pt-BR": LocalizedTemplate(title="Nova medalha: {badge.name}"),
            "pt": LocalizedTemplate(title="Nova insígnia: {badge.name}", body="Bom trabalho!"),
        },
        actions=[Action(id="view", title="View {badge.name}", deep_link="app://badges/{badge.id}")],
    )


@pytest.mark.parametrize(
    ("locale", "used", "title"),
    [
        ("de-DE", "de", "Neues Abzeichen: First Workout"),
        ("de_AT", "de", "Neues Abzeichen: First Workout"),
        ("DE", "de", "Neues Abzeichen: First Workout"),
        ("pt-BR", "pt-BR", "Nova medalha: First Workout"),
        ("pt-PT", "pt", "Nova insígnia: First Workout"),
        ("pt-BR-u-nu-latn", "pt-BR", "Nova medalha: First Workout"),  # Android adds extensions
        ("fr-FR", "en", "New badge: First Workout"),
        (None, "en", "New badge: First Workout"),
    ],
)
def test_given_a_user_locale_when_rendered_then_exact_tag_then_language_then_default_is_used(
    localized: Trigger, locale: str | None, used: str, title: str
) -> None:
    rendered = render(localized, locale, "en", BADGE_VALUES)
    assert (rendered.locale_used, rendered.title) == (used, title)


def test_given_an_override_of_some_fields_when_rendered_then_the_others_fall_back_to_the_template(
    localized: Trigger,
) -> None:
    rendered = render(localized, "pt-BR", "en", BADGE_VALUES)
    assert rendered == Rendered(
        title="Nova medalha: First Workout",
        body="Nice work, Ada!",  # pt-BR overrides only the title
        deep_link="app://badges/first-workout",
        actions=(RenderedAction("view", "View First Workout", "app://badges/first-workout"),),
        locale_used="pt-BR",
    )
    assert render(localized, "de-DE", "en", BADGE_VALUES).deep_link == "app://badges/first-workout"


def test_given_escaped_braces_when_rendered_then_they_become_literal_braces() -> None:
    t = trigger(template=Template(title="{{{badge.name}}}", body="{{user.first_name}} is literal"))
    rendered = render(t, None, "en", BADGE_VALUES)
    assert (rendered.title, rendered.body) == ("{First Workout}", "{user.first_name} is literal")


def test_given_a_value_missing_at_runtime_when_rendered_then_it_renders_as_an_empty_string() -> None:
    t = trigger(
        template=Template(
            title="Tier: {badge.tier}.", body="Hi {user.first_name}{user.display_name}!", deep_link="app://{badge.id}"
        )
    )
    rendered = render(t, None, "en", {"badge": {"tier": None}})
    assert (rendered.title, rendered.body, rendered.deep_link) == ("Tier:.", "Hi!", "app://")


def test_a_missing_name_takes_the_comma_or_space_before_it_along() -> None:
    # Before: the reference config's "Nice work, {user.first_name}!" read "Nice work, !" for a user without a name
    t = trigger(
        template=Template(
            title="Nice work, {user.first_name}!", body="Well done {user.first_name} today, {user.first_name}"
        )
    )
    without = render(t, None, "en", {"user": {}})
    named = render(t, None, "en", {"user": {"first_name": "Ada"}})
    assert (without.title, without.body) == ("Nice work!", "Well done today")
    assert (named.title, named.body) == ("Nice work, Ada!", "Well done Ada today, Ada")


def test_given_a_fallback_when_the_value_is_missing_or_empty_then_the_fallback_is_shown() -> None:
    t = trigger(template=Template(title="Nice work, {user.first_name|there}!", body="{badge.name|A badge} {badge.id|}"))
    assert check_trigger_templates(t) == []
    assert placeholders(t.template.title) == {"user.first_name"}

    without = render(t, None, "en", {"user": {"first_name": ""}, "badge": {}})
    named = render(t, None, "en", BADGE_VALUES)

    assert (without.title, without.body) == ("Nice work, there!", "A badge")  # an empty fallback: no space left
    assert (named.title, named.body) == ("Nice work, Ada!", "First Workout first-workout")


def test_given_a_misspelt_field_with_a_fallback_when_checked_then_it_is_still_reported() -> None:
    [problem] = check_trigger_templates(trigger(template=Template(title="Hi {user.frist_name|there}", body="x")))
    assert "{user.frist_name} is not a field of 'user'" in problem
    [doubled] = check_trigger_templates(trigger(template=Template(title="Hi {{user.first_name|there}}", body="x")))
    assert "Fix: write {user.first_name|there} to show the value" in doubled


def test_given_a_user_without_a_locale_when_rendered_then_the_default_locales_override_is_used(
    localized: Trigger,
) -> None:
    rendered = render(localized, None, "de", BADGE_VALUES)
    assert (rendered.locale_used, rendered.title) == ("de", "Neues Abzeichen: First Workout")


def test_given_non_string_values_when_rendered_then_they_are_written_with_str() -> None:
    t = trigger(on="rank_lost", template=Template(title="You are now #{fact.new_rank}", body="{fact.score} XP"))
    rendered = render(t, "en", "en", {"fact": {"new_rank": 4, "score": 1250.5}})
    assert (rendered.title, rendered.body, rendered.deep_link) == ("You are now #4", "1250.5 XP", None)


def test_given_a_streak_fact_when_its_text_reads_another_streak_facts_field_then_it_is_reported() -> None:
    # A milestone fact has no current_length (only streak_extended has): it would render as nothing.
    milestone = trigger(on="streak_milestone", template=Template(title="{fact.current_length} days!", body="b"))
    extended = trigger(on="streak_extended", template=Template(title="{fact.current_length} days!", body="b"))
    assert len(check_trigger_templates(milestone)) == 1
    assert check_trigger_templates(extended) == []

"""Notification texts: which placeholders a trigger may use, and rendering one in the user's language.

A placeholder is a dotted path in braces, `{badge.name}`, optionally with the text to show when the value is
missing, `{user.first_name|there}`; `{{` and `}}` write literal braces. Validation is strict (an unknown
placeholder is a config error, found before publishing) and rendering is lenient (a value missing at
runtime renders as its fallback, else as nothing), so a product owner's typo never reaches a user and a
missing field never blocks a message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..config.issues import format_path
from ..config.schema import Trigger

# `{{` and `}}` are escapes; `{...}` without braces inside is a placeholder; any other brace is unmatched.
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_DOUBLED = re.compile(r"(?<!\{)\{\{\s*([A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*)(\|[^{}]*)?\s*\}\}(?!\})")

_USER = {"first_name", "display_name", "locale", "timezone", "level"}
_FACT = {"type", "event_id"}  # every fact has these (engine.model.Fact.as_dict)
_STREAK = {"id", "name", "length", "longest", "freezes", "done_today", "at_risk"}
_STREAK_FACT = _FACT | {"streak", "period"}
# What each streak fact adds (engine.streaks): a `when` or text reading another's field would find nothing.
_STREAK_FIELDS = {
    "streak_extended": {"length", "current_length"},
    "streak_frozen": {"freezes_left"},
    "streak_broken": {"previous_length"},
    "streak_milestone": {"length"},
}
_QUEST_FACT = _FACT | {"quest", "step", "name", "instance"}
_BOARD = {"id", "name"}


def _streak_fact(fact_type: str) -> dict[str, set[str]]:
    return {"user": set(_USER), "fact": _STREAK_FACT | _STREAK_FIELDS[fact_type], "streak": set(_STREAK)}


def _quest_fact() -> dict[str, set[str]]:
    return {"user": set(_USER), "fact": set(_QUEST_FACT), "quest": {"id", "name"}}


# Fact type → placeholder root → its fields (the `fact` fields are those of docs/config.md, "Facts").
AVAILABLE_BY_FACT: dict[str, dict[str, set[str]]] = {
    "badge_awarded": {
        "user": set(_USER),
        "fact": _FACT | {"badge", "name", "tier", "tier_index", "value", "secret"},
        "badge": {"id", "name", "tier", "description"},
    },
    "level_up": {
        "user": set(_USER),
        "fact": _FACT | {"level", "name", "currency", "total"},
        "level": {"number", "name"},
    },
    "rank_lost": {
        "user": set(_USER),
        "fact": _FACT | {"new_rank", "board", "period", "passed_by", "score"},
        "leaderboard": set(_BOARD),
    },
    "leaderboard_reward": {
        "user": set(_USER),
        "fact": _FACT | {"board", "period", "rank"},
        "leaderboard": set(_BOARD),
    },
    "points_awarded": {
        "user": set(_USER),
        "fact": _FACT | {"rule", "badge", "tier", "quest", "leaderboard_reward", "currency", "amount", "balance"},
    },
    **{fact_type: _streak_fact(fact_type) for fact_type in _STREAK_FIELDS},
    "quest_step_completed": _quest_fact(),
    "quest_completed": _quest_fact(),
    "quest_expired": _quest_fact(),
    # A schedule fires on the clock, not on a fact: `streak` is there when the trigger names one (available_for).
    "schedule": {"user": set(_USER), "fact": set(_FACT), "streak": set(_STREAK)},
}


def available_for(trigger: Trigger) -> dict[str, set[str]]:
    """What one trigger's texts may read: its fact type's roots, plus the streak or board it names."""
    available = {root: set(fields) for root, fields in AVAILABLE_BY_FACT.get(trigger.on, {"user": _USER}).items()}
    if trigger.streak is not None:
        available["streak"] = set(_STREAK)
    elif trigger.on == "schedule":
        available.pop("streak", None)  # no streak named: no streak state is loaded
    if trigger.leaderboard is not None:
        available["leaderboard"] = set(_BOARD)
    return available


def _tokens(text: str) -> Iterator[tuple[str, str | None]]:
    """(literal text, placeholder or None) pairs; an unmatched brace comes back as literal text."""
    position = 0
    for match in _TOKEN.finditer(text):
        literal = text[position : match.start()]
        token = match.group(0)
        if token in ("{{", "}}"):
            yield literal + token[0], None
        elif match.group(1) is not None:
            yield literal, match.group(1)
        else:
            yield literal + token, None
        position = match.end()
    yield text[position:], None


def placeholders(text: str) -> set[str]:
    """The placeholders of a text, e.g. {"badge.name", "user.first_name"} (escaped braces are not ones; a
    fallback is not part of the name)."""
    return {_split(name)[0] for _, name in _tokens(text) if name is not None}


def _split(placeholder: str) -> tuple[str, str]:
    """A placeholder's path and its fallback ("" when it has none): `user.first_name|there`."""
    path, _, fallback = placeholder.partition("|")
    return path, fallback


def _unmatched(text: str) -> bool:
    return any(match.group(0) in ("{", "}") for match in _TOKEN.finditer(text))


def _texts(trigger: Trigger) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """(where in the trigger, text) for every text of a trigger that is sent to a user."""
    for field in ("title", "body", "deep_link"):
        value = getattr(trigger.template, field)
        if value is not None:
            yield ("template", field), value
    for locale, localized in trigger.locales.items():
        for field in ("title", "body", "deep_link"):
            value = getattr(localized, field)
            if value is not None:
                yield ("locales", locale, field), value
    for index, action in enumerate(trigger.actions):
        yield ("actions", index, "title"), action.title
        if action.deep_link is not None:
            yield ("actions", index, "deep_link"), action.deep_link


def _choices(names: set[str]) -> str:
    return ", ".join(sorted(names)) or "(none)"


def check_trigger_templates(trigger: Trigger, available: dict[str, set[str]] | None = None) -> list[str]:
    """Problems with a trigger's placeholders, each with a fix; empty when every text can be rendered.

    `available` maps roots to fields (default: available_for(trigger)). Every text is checked: the
    template, each locale override and each action's title and deep link.
    """
    return [problem for _, problem in template_problems(trigger, available)]


def template_problems(
    trigger: Trigger, available: dict[str, set[str]] | None = None
) -> list[tuple[tuple[str | int, ...], str]]:
    """check_trigger_templates, each problem with where in the trigger it is (`("locales", "de", "body")`)."""
    available = available_for(trigger) if available is None else available
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for where, text in _texts(trigger):
        at = f"trigger {trigger.id!r} {format_path(where)}"
        found: list[str] = []
        if _unmatched(text):
            found.append(f"{at}: {text!r} has an unmatched brace. Fix: write {{{{ or }}}} for a literal brace")
        for path, fallback in _DOUBLED.findall(text):  # {{badge.name}}, the habit of other template languages
            root, _, field = path.partition(".")
            if field in available.get(root, ()):
                name = path + fallback
                found.append(
                    f"{at}: {{{{{name}}}}} shows the text {{{name}}} ({{{{ and }}}} are literal braces). "
                    f"Fix: write {{{name}}} to show the value"
                )
        for name in sorted(placeholders(text)):
            root, _, field = name.partition(".")
            if not _PATH.match(name):
                found.append(
                    f"{at}: {{{name}}} is not a placeholder. Fix: write a dotted name such as {{user.first_name}}"
                )
            elif root not in available:
                found.append(
                    f"{at}: {{{name}}} reads {root!r}, which a {trigger.on} trigger does not have. "
                    f"Fix: use one of {_choices(set(available))}"
                )
            elif not field or "." in field or field not in available[root]:
                found.append(
                    f"{at}: {{{name}}} is not a field of {root!r}. "
                    f"Fix: use one of {_choices({f'{root}.{known}' for known in available[root]})}"
                )
        problems += [(where, problem) for problem in found]
    return problems


# ---------------------------------------------------------------- rendering


@dataclass(frozen=True)
class RenderedAction:
    id: str
    title: str
    deep_link: str | None


@dataclass(frozen=True)
class Rendered:
    """One message's texts in one language; `locale_used` is the override chosen, or the default locale."""

    title: str
    body: str
    deep_link: str | None
    actions: tuple[RenderedAction, ...]
    locale_used: str


def normalise_locale(locale: str) -> str:
    """A language tag as locales are matched: without case, `_` read as `-` (pt_BR is pt-br)."""
    return locale.replace("_", "-").lower()


def pick_locale(trigger: Trigger, locale: str | None) -> str | None:
    """The override for a user's locale: the exact tag, else the tag with its last subtags cut off one by one
    ("pt-BR-u-nu-latn" → "pt-BR-u-nu" → … → "pt-BR" → "pt"), else none."""
    if not locale:
        return None
    by_tag = {normalise_locale(key): key for key in trigger.locales}
    subtags = normalise_locale(locale).split("-")
    return next((by_tag[tag] for n in range(len(subtags), 0, -1) if (tag := "-".join(subtags[:n])) in by_tag), None)


def _value(values: dict[str, dict[str, Any]], placeholder: str) -> str:
    path, fallback = _split(placeholder)
    current: Any = values
    for part in path.split("."):
        if not isinstance(current, dict) or part not in current:
            return fallback
        current = current[part]
    text = "" if current is None or isinstance(current, dict) else str(current)
    return text or fallback


def fill(text: str, values: dict[str, dict[str, Any]]) -> str:
    """Substitute placeholders with str(value); a missing, null or empty value renders as the placeholder's
    fallback (`{user.first_name|there}`), else as nothing, and then the comma or space before it goes too
    where punctuation or the end follows: "Nice work, {user.first_name}!" reads "Nice work!", not "Nice work, !"
    (and "Well done {user.first_name} today" keeps one space).

    Unknown placeholders are forbidden by config validation (check_trigger_templates), so at runtime a
    gap means the value was absent (e.g. a user with no first name): the message still goes out.
    """
    tokens = list(_tokens(text))
    out = ""
    for position, (literal, name) in enumerate(tokens):
        out += literal
        if name is None:
            continue
        value = _value(values, name)
        following = tokens[position + 1][0] if position + 1 < len(tokens) else ""
        if not value and (not following or following[0] in _CLOSING):
            out = out.rstrip(" ,")
        elif not value and following.startswith(" ") and out.endswith(" "):  # "Well done {name} today": one space
            out = out[:-1]
        out += value
    return out


_CLOSING = "!?.,;:)"  # what may follow a name: "Nice work, {user.first_name}!"


def render(trigger: Trigger, locale: str | None, default_locale: str, values: dict[str, dict[str, Any]]) -> Rendered:
    """A trigger's texts for one user: the best locale override (for a user without a locale, the default
    locale's), falling back field by field to the template."""
    chosen = pick_locale(trigger, locale or default_locale)
    override = trigger.locales[chosen] if chosen is not None else None
    template = trigger.template
    title = override.title if override and override.title is not None else template.title
    body = override.body if override and override.body is not None else template.body
    deep_link = override.deep_link if override and override.deep_link is not None else template.deep_link
    return Rendered(
        title=fill(title, values),
        body=fill(body, values),
        deep_link=fill(deep_link, values) if deep_link is not None else None,
        actions=tuple(
            RenderedAction(
                action.id,
                fill(action.title, values),
                fill(action.deep_link, values) if action.deep_link is not None else None,
            )
            for action in trigger.actions
        ),
        locale_used=chosen if chosen is not None else default_locale,
    )

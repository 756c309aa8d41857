"""Load engagement.yaml (or its stored JSON form) into a validated EngagementConfig.

Problems are reported together, each with its YAML path, line and fix: first every problem of shape
(unknown fields, wrong types, bad CEL syntax), then, once the shape is right, every cross-reference problem
(unknown events or currencies, duplicate ids, expressions reading names that do not exist). PyYAML is imported only when YAML text is parsed (the CLI, never a Lambda).
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .issues import Issue, format_path
from .schema import EngagementConfig
from .types import PATTERN_FIXES, format_duration

LineMap = dict[tuple[str | int, ...], int]


class ConfigInvalid(ValueError):
    """The config was rejected; `issues` lists every problem found."""

    def __init__(self, issues: list[Issue], source: str = "engagement.yaml") -> None:
        self.issues = issues
        self.source = source
        super().__init__(self.report())

    def report(self) -> str:
        lines = [f"{self.source}: {len(self.issues)} problem(s)"]
        for issue in self.issues:
            where = f"line {issue.line}, " if issue.line else ""
            lines.append(f"  {where}{issue.where}: {issue.message}")
        return "\n".join(lines)


def load_config_file(path: str | Path) -> EngagementConfig:
    """Read and validate a YAML file."""
    path = Path(path)
    return parse_config_text(read_config_text(path), source=str(path))


def read_config_text(path: Path) -> str:
    """The file's text; a file that is not UTF-8 is a ConfigInvalid, not a crash."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        message = f"not UTF-8 text (byte {exc.start} is {exc.object[exc.start]:#04x}). Fix: save the file as UTF-8"
        raise ConfigInvalid([Issue((), message, None)], str(path)) from None


def parse_config_text(text: str, source: str = "engagement.yaml") -> EngagementConfig:
    """Validate YAML text; raises ConfigInvalid naming the line of every problem."""
    data, lines = parse_yaml(text, source)
    return validate_config_data(data, lines, source)


def validate_config_data(
    data: Any, lines: LineMap | None = None, source: str = "config", *, published: bool = False
) -> EngagementConfig:
    """Validate an already-parsed document (the Lambdas read it as JSON from the config table).

    `published`: the document was accepted when it was published, so only its shape is checked, which the
    code needs; the cross-reference checks, which a newer Engage may have made stricter, are not run again
    (a config that served yesterday keeps serving after an upgrade; `engage config validate` names what to fix).
    """
    lines = lines or {}
    try:
        config = EngagementConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigInvalid(
            [_issue_from_error(err, lines) for err in _pair_misspellings(exc.errors())], source
        ) from None
    if published:
        return config
    from .checks import check_references  # publishing only: the Lambdas never import the checks

    problems = [Issue(i.path, i.message, _line_of(i.path, lines)) for i in check_references(config)]
    if problems:
        raise ConfigInvalid(problems, source)
    return config


def parse_yaml(text: str, source: str) -> tuple[Any, LineMap]:
    """Parse with YAML 1.2's booleans, times and dates (`on:` is a key, not True; 21:30 and 2026-01-01 are text),
    plus the line of every path."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    # YAML 1.1 reads on/off/yes/no as booleans, which would turn `on: workout_completed` into `True: ...`; it
    # reads 21:30 as the number 1290 (base 60) and 2026-01-01 as a date, which no field takes: an unquoted
    # quiet-hours start would be refused as "got 1290". YAML 1.2 reads both as text, as people do.
    Loader.yaml_implicit_resolvers = {
        first: [
            (tag, _without_colons(regexp) if tag in _NUMBERS else regexp)
            for tag, regexp in resolvers
            if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")
        ]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver("tag:yaml.org,2002:bool", _TRUE_FALSE, list("tTfF"))
    try:
        node = yaml.compose(text, Loader=Loader)
        data = yaml.load(text, Loader=Loader)
    except yaml.YAMLError as exc:
        mark, opened = getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        message = f"not valid YAML: {getattr(exc, 'problem', None) or exc}"
        if getattr(exc, "context", None) and opened is not None:
            message += f" ({exc.context} on line {opened.line + 1})"  # type: ignore[attr-defined]
        message += ". Fix: check the indentation, quotes and brackets up to this line"
        raise ConfigInvalid([Issue((), message, line)], source) from None
    except RecursionError:
        message = "the file nests values too deeply to read. Fix: flatten it (a config needs a few levels)"
        raise ConfigInvalid([Issue((), message, None)], source) from None
    if node is None:
        raise ConfigInvalid(
            [Issue((), "the file is empty. Fix: start from examples/fitquest/engagement.yaml", 1)], source
        )
    lines: LineMap = {}
    duplicates: list[Issue] = []
    try:
        _collect_lines(node, (), lines, duplicates, _Budget())
    except _TooBig as exc:
        raise ConfigInvalid([Issue((), str(exc), exc.line)], source) from None
    if duplicates:
        raise ConfigInvalid(duplicates, source)
    return data, lines


# A config is a few thousand values; aliases (`*name`) can make a short file stand for billions of them, or
# for itself (`&r [*r]`), and either would hang or crash everything that reads it.
MAX_VALUES = 100_000


class _TooBig(Exception):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


class _Budget:
    def __init__(self) -> None:
        self.left = MAX_VALUES
        self.open: set[int] = set()  # the nodes being walked: meeting one again is an alias inside itself


_TRUE_FALSE = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_NUMBERS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


def _without_colons(number: re.Pattern[str]) -> re.Pattern[str]:
    """A YAML 1.1 number pattern that leaves values with a colon (base-60 numbers such as 21:30) to text."""
    return re.compile(r"(?=[^:]*\Z)" + number.pattern, number.flags)


def _collect_lines(
    node: Any, path: tuple[str | int, ...], lines: LineMap, duplicates: list[Issue], budget: _Budget
) -> None:
    """Record the line of every path; a key written twice in one mapping is a problem (YAML keeps the last)."""
    line = node.start_mark.line + 1
    if id(node) in budget.open:
        raise _TooBig("an alias here refers to a value that contains it. Fix: copy the values instead", line)
    budget.left -= 1
    if budget.left < 0:
        raise _TooBig(
            f"the file stands for more than {MAX_VALUES:,} values (aliases that repeat aliases). "
            "Fix: write the values out, or use fewer aliases",
            line,
        )
    lines[path] = line
    budget.open.add(id(node))
    try:
        _collect_children(node, path, lines, duplicates, budget)
    finally:
        budget.open.discard(id(node))


def _collect_children(
    node: Any, path: tuple[str | int, ...], lines: LineMap, duplicates: list[Issue], budget: _Budget
) -> None:
    import yaml

    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key, value in node.value:
            child = (*path, key.value)
            if key.value in seen:
                duplicates.append(
                    Issue(child, f"{key.value!r} is written twice here. Fix: keep one of them", key.start_mark.line + 1)
                )
            seen.add(key.value)
            _collect_lines(value, child, lines, duplicates, budget)
            lines[child] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, value in enumerate(node.value):
            _collect_lines(value, (*path, index), lines, duplicates, budget)


def _line_of(path: tuple[str | int, ...], lines: LineMap) -> int | None:
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())


_FIXES = {
    "missing": "add it",
    "extra_forbidden": "remove it or check its spelling",
    "int_type": "write a whole number",
    "int_parsing": "write a whole number",
    "greater_than": "use a larger value",
    "greater_than_equal": "use a larger value",
    "less_than_equal": "use a smaller value",
    "too_short": "add at least one entry",
    "dict_type": "write a mapping (key: value lines)",
    "list_type": "write a list ([a, b] or '- item' lines)",
    "model_type": "write a mapping (key: value lines)",
    "model_attributes_type": "write a mapping (key: value lines)",
    "literal_error": "use one of the values listed",
    "enum": "use one of the values listed",
    "bool_type": "write true or false",
    "bool_parsing": "write true or false",
    "string_type": "write text (quote it if it looks like something else)",
    "float_type": "write a number",
    "float_parsing": "write a number",
    "union_tag_invalid": "use one of the values listed",
}
_GENERAL_FIX = "see docs/config.md for what this field takes"


def fix_for(error: Any) -> str | None:
    """The fix for a pydantic error, where its kind (or, for a pattern, the pattern) says what to write."""
    if error.get("type") == "string_pattern_mismatch":
        return PATTERN_FIXES.get((error.get("ctx") or {}).get("pattern", ""))
    return _FIXES.get(error.get("type", ""))


def _pair_misspellings(errors: list[Any]) -> list[Any]:
    """An unknown field beside a missing one it resembles (`awrd` for `award`) is one problem, not two: the
    unknown one says what it is most likely meant to be, and the missing one is not reported apart."""
    import difflib

    missing = {tuple(e["loc"]): e for e in errors if e["type"] == "missing" and e["loc"]}
    paired: set[tuple[Any, ...]] = set()
    kept = []
    for error in errors:
        loc = tuple(error["loc"])
        if error["type"] == "extra_forbidden" and loc and isinstance(loc[-1], str):
            siblings = [path[-1] for path in missing if path[:-1] == loc[:-1] and path not in paired]
            close = difflib.get_close_matches(loc[-1], [str(name) for name in siblings], n=1, cutoff=0.6)
            if close:
                paired.add((*loc[:-1], close[0]))
                error = {**error, "suggestion": close[0]}
        kept.append(error)
    return [error for error in kept if not (error["type"] == "missing" and tuple(error["loc"]) in paired)]


def _issue_from_error(error: Any, lines: LineMap) -> Issue:
    # Drop pydantic's internal union/validator labels from the path: keep only real YAML keys/indexes.
    path = tuple(part for part in error["loc"] if isinstance(part, int) or "[" not in str(part))
    path = tuple(p for p in path if not (isinstance(p, str) and p.startswith("function-")))
    kind = error["type"]
    message = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "extra_forbidden" and "suggestion" in error:
        message = f"unknown field {path[-1]!r}. Fix: did you mean {error['suggestion']!r}?"
    elif kind == "extra_forbidden":
        message = f"unknown field {path[-1]!r}"
    elif kind == "missing":
        message = f"required field {path[-1]!r} is missing"
    elif "input" in error and kind not in {"value_error", "assertion_error"} and not isinstance(error["input"], dict):
        given = error["input"]  # as written in the file: 60d, not datetime.timedelta(days=60)
        message = f"{message} (got {_as_written(given)})"
    if "Fix:" not in message:
        message = f"{message}. Fix: {fix_for(error) or _GENERAL_FIX}"
    return Issue(path, message, _line_of(path, lines))


def _as_written(value: Any) -> str:
    """A value as the product owner wrote it: a duration of whole days as days (35d, not 5w), true, null."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if not isinstance(value, timedelta):
        return repr(value)
    return f"{value.days}d" if value == timedelta(days=value.days) else format_duration(value)


__all__ = ["ConfigInvalid", "format_path", "load_config_file", "parse_config_text", "validate_config_data"]

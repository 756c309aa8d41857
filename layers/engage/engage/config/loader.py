"""Load engagement.yaml (or its stored JSON form) into a validated EngagementConfig.

Problems are reported together, each with its YAML path, line and fix: first every problem of shape
(unknown fields, wrong types, bad CEL syntax), then, once the shape is right, every cross-reference problem
(unknown events or currencies, duplicate ids, expressions reading names that do not exist). PyYAML is imported only when YAML text is parsed (the CLI, never a Lambda).
"""

from __future__ import annotations

import json
import math
import re
from datetime import timedelta
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from .issues import Issue, format_path
from .schema import EngagementConfig, yaml_number
from .types import PATTERN_FIXES, format_in_days

LineMap = dict[tuple[str | int, ...], int]
# A published version is one DynamoDB item (at most 400 KB) holding the file's text and its JSON form: a real
# app's config is a few KB (FitQuest's is 5).
MAX_FILE_BYTES = 200_000
MAX_DOCUMENT_BYTES = 160_000


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
        config = EngagementConfig.model_validate(data, context={"published": published})
    except ValidationError as exc:
        raise ConfigInvalid(
            [_issue_from_error(err, lines) for err in _pair_misspellings(exc.errors())], source
        ) from None
    if published:
        return config
    size = len(json.dumps(data, separators=(",", ":")).encode())
    if size > MAX_DOCUMENT_BYTES:
        message = (
            f"the config is {size // 1000:,} KB as stored; at most {MAX_DOCUMENT_BYTES // 1000} KB fit in the config "
            "table's item beside the file's text. Fix: remove rules, badges or texts you do not use"
        )
        raise ConfigInvalid([Issue((), message, None)], source)
    from .checks import check_references  # publishing only: the Lambdas never import the checks

    problems = [Issue(i.path, i.message, _line_of(i.path, lines)) for i in check_references(config)]
    if problems:
        raise ConfigInvalid(problems, source)
    return config


def parse_yaml(text: str, source: str) -> tuple[Any, LineMap]:
    """Parse with YAML 1.2's booleans, times and dates (`on:` is a key, not True; 21:30 and 2026-01-01 are text),
    plus the line of every path."""
    import yaml

    if len(text.encode()) > MAX_FILE_BYTES:
        message = (
            f"the file is {len(text.encode()) // 1000:,} KB; at most {MAX_FILE_BYTES // 1000} KB can be published (it "
            "is stored whole, in one DynamoDB item). Fix: remove long comments and what you do not use"
        )
        raise ConfigInvalid([Issue((), message, None)], source)

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
        if "'\\t'" in message:
            message += ". Fix: indent with spaces; YAML does not allow tabs there"
        else:
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
    problems: list[Issue] = []
    try:
        _collect_lines(node, (), lines, problems, _Budget())
    except _TooBig as exc:
        raise ConfigInvalid([Issue((), str(exc), exc.line)], source) from None
    if problems:
        raise ConfigInvalid(problems, source)
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
    node: Any, path: tuple[str | int, ...], lines: LineMap, problems: list[Issue], budget: _Budget
) -> None:
    """Record the line of every path. Problems: a key written twice in one mapping (YAML keeps the last), a key
    that is not text, a value JSON cannot hold."""
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
        _collect_children(node, path, lines, problems, budget)
    finally:
        budget.open.discard(id(node))


_TEXT, _MERGE = "tag:yaml.org,2002:str", "tag:yaml.org,2002:merge"
# What JSON can hold too (the config table stores the file as JSON): no !!binary, !!timestamp or !!set.
_PLAIN_TAGS = {_TEXT, *(f"tag:yaml.org,2002:{kind}" for kind in ("int", "float", "bool", "null", "map", "seq"))}


def _node_line(node: Any) -> int:
    return int(node.start_mark.line) + 1


def _collect_children(
    node: Any, path: tuple[str | int, ...], lines: LineMap, problems: list[Issue], budget: _Budget
) -> None:
    import yaml

    if node.tag not in _PLAIN_TAGS:
        kind = node.tag.rsplit(":", 1)[-1]
        problems.append(
            Issue(
                path,
                f"a YAML !!{kind} value, which a config cannot hold. Fix: write text, a number, a list or a mapping",
                _node_line(node),
            )
        )
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key, value in node.value:
            child = (*path, key.value)
            if key.tag not in (_TEXT, _MERGE):  # `1:`, `true:` and `~:` are read as a number, true and null
                problems.append(
                    Issue(child, f"the key {key.value} is not text. Fix: quote it ('{key.value}')", _node_line(key))
                )
                continue
            if key.value in seen:
                problems.append(
                    Issue(child, f"{key.value!r} is written twice here. Fix: keep one of them", key.start_mark.line + 1)
                )
            seen.add(key.value)
            _collect_lines(value, child, lines, problems, budget)
            lines[child] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, value in enumerate(node.value):
            _collect_lines(value, (*path, index), lines, problems, budget)


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
    "int_from_float": "write a whole number",
    "union_tag_invalid": "use one of the values listed",
    "too_long": "remove some entries",
}
# Kinds whose message already says what was wrong with the value: echoing it (a list of 21 boards) adds noise.
_NO_ECHO = {"too_long", "too_short", "value_error", "assertion_error", "model_type", "model_attributes_type"}
_GENERAL_FIX = "see docs/config.md for what this field takes"


def fix_for(error: Any) -> str | None:
    """The fix for a pydantic error, where its kind (or, for a pattern, the pattern) says what to write."""
    if error.get("type") == "string_pattern_mismatch":
        return PATTERN_FIXES.get((error.get("ctx") or {}).get("pattern", ""))
    return _FIXES.get(error.get("type", ""))


def _pair_misspellings(errors: list[Any]) -> list[Any]:
    """An unknown field names the field it most likely means (`limt` → `limit`, `On` → `on`), and where that one is
    reported missing too (`awrd` for `award`), the two are one problem, not two."""
    missing = {tuple(e["loc"]) for e in errors if e["type"] == "missing" and e["loc"]}
    paired: set[tuple[Any, ...]] = set()
    kept = []
    for error in errors:
        loc = tuple(error["loc"])
        if error["type"] == "extra_forbidden" and loc and isinstance(loc[-1], str):
            siblings = [path[-1] for path in missing if path[:-1] == loc[:-1] and path not in paired]
            # A missing sibling is a likely match even when farther off (`crit` for `criteria`); any other
            # field of the section must be closer (`limt` for `limit`).
            meant = _closest(loc[-1], [str(name) for name in siblings], 0.6) or _closest(
                loc[-1], _fields_at(loc[:-1]), 0.75
            )
            if meant:
                paired.add((*loc[:-1], meant))
                error = {**error, "suggestion": meant}
        kept.append(error)
    return [error for error in kept if not (error["type"] == "missing" and tuple(error["loc"]) in paired)]


def _closest(name: str, candidates: list[str], cutoff: float) -> str | None:
    import difflib

    by_case = {candidate.lower(): candidate for candidate in candidates}
    if name.lower() in by_case:
        return by_case[name.lower()]
    close = difflib.get_close_matches(name.lower(), list(by_case), n=1, cutoff=cutoff)
    return by_case[close[0]] if close else None


def _fields_at(path: tuple[Any, ...]) -> list[str]:
    """The field names (as written in YAML) of the section at a path, or none where that is not one model."""
    model = _model_at(path)
    return [field.alias or name for name, field in model.model_fields.items()] if model else []


def _model_at(path: tuple[Any, ...]) -> type[BaseModel] | None:
    kind: Any = EngagementConfig
    for part in path:
        kind = _unwrapped(kind)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            fields = {field.alias or name: field for name, field in kind.model_fields.items()}
            if part not in fields:
                return None
            kind = fields[part].annotation
        elif get_origin(kind) in (list, dict):
            kind = get_args(kind)[-1]
        else:
            return None
    kind = _unwrapped(kind)
    return kind if isinstance(kind, type) and issubclass(kind, BaseModel) else None


def _unwrapped(kind: Any) -> Any:
    """`Levels` from `Levels | None` or `Annotated[Levels, …]`; a union of several models stays as it is."""
    while True:
        if get_origin(kind) is Annotated:
            kind = get_args(kind)[0]
        elif get_origin(kind) in (Union, UnionType):
            options = [option for option in get_args(kind) if option is not type(None)]
            if len(options) != 1:
                return kind
            kind = options[0]
        else:
            return kind


def _mapping_expected(error: Any) -> str:
    """For a value where a section belongs: the keys that section takes, not pydantic's class name."""
    found = _as_written(error.get("input"))
    model = _model_at(tuple(error["loc"]))
    if model is None or not error["loc"]:
        return (
            f"the file must be a mapping of sections (app:, events:, currencies:, …), not {found}. "
            "Fix: start from examples/fitquest/engagement.yaml"
        )
    fields = {field.alias or name: field.is_required() for name, field in model.model_fields.items()}
    required = [name for name, needed in fields.items() if needed]
    optional = [name for name, needed in fields.items() if not needed]
    if required:
        takes = "a mapping of " + ", ".join(required) + (f" (optional: {', '.join(optional)})" if optional else "")
    else:
        takes = "a mapping with any of " + ", ".join(optional)
    example = "{" + ", ".join(f"{name}: …" for name in required or optional[:1]) + "}"
    return f"expected {takes}, not {found}. Fix: write it as key: value lines, e.g. {example}"


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
    elif kind in ("model_type", "model_attributes_type"):
        message = _mapping_expected(error)
    elif kind == "invalid_key":
        message = f"the key {_as_written(error.get('input'))} is not text. Fix: write a name, e.g. xp"
    elif "input" in error and kind not in _NO_ECHO and not isinstance(error["input"], dict):
        given = error["input"]  # as written in the file: 60d, not datetime.timedelta(days=60)
        message = f"{message} (got {_as_written(given)})"
    if "Fix:" not in message:
        message = f"{message}. Fix: {fix_for(error) or _GENERAL_FIX}"
    return Issue(path, message, _line_of(path, lines))


def _as_written(value: Any) -> str:
    """A value as the product owner wrote it, cut to 100 characters: a duration of whole days as days (35d, not
    5w), true, null, .nan."""
    if value is None:
        return "null"
    if isinstance(value, bool) or (isinstance(value, float) and not math.isfinite(value)):
        return yaml_number(value)
    if isinstance(value, timedelta):
        return format_in_days(value)
    written = repr(value)
    return written if len(written) <= 100 else f"{written[:97]}..."


__all__ = ["ConfigInvalid", "format_path", "load_config_file", "parse_config_text", "validate_config_data"]

"""CEL expressions from the product owner's config, compiled once when the config is loaded."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema


def _cel_core() -> ModuleType:
    """The Rust core of common-expression-language, loaded without the package's __init__.

    That __init__ imports the package's own CLI (typer, rich, prompt_toolkit): about 350 ms of cold
    start a Lambda never uses. The core is registered as `cel.cel`, so a later `import cel` reuses it
    (a PyO3 module cannot be initialised twice in one process).
    """
    if "cel.cel" in sys.modules:
        return sys.modules["cel.cel"]
    spec = importlib.util.find_spec("cel")  # finds the package without importing it
    for directory in (spec.submodule_search_locations or []) if spec else []:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = Path(directory) / f"cel{suffix}"
            if path.exists():
                loader = importlib.machinery.ExtensionFileLoader("cel.cel", str(path))
                core_spec = importlib.util.spec_from_file_location("cel.cel", path, loader=loader)
                assert core_spec is not None
                module = importlib.util.module_from_spec(core_spec)
                sys.modules["cel.cel"] = module
                loader.exec_module(module)
                return module
    import cel  # an unusual install layout: take the slow path

    return cel


cel = _cel_core()

# Macros bind their own loop variables (`[..].exists(k, k == 1)`): those names are not scope variables.
_MACRO_VARIABLE = re.compile(r"\.(?:all|exists|exists_one|map|filter)\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,")
_EVENT_PROPERTY = re.compile(r"\bevent(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*[\"']([^\"']+)[\"']\s*\])")


class ExpressionError(ValueError):
    """Raised when an expression fails to evaluate on real data (bad type, missing field)."""


@dataclass(frozen=True, eq=False)
class Expr:
    """A compiled CEL expression; `source` is what the product owner wrote."""

    source: str
    program: Any

    def evaluate(self, scope: Scope | dict[str, Any]) -> Any:
        """The value of the expression over `scope` (a Scope for many expressions over the same data)."""
        try:
            return self.program.execute(scope)
        except KeyError as exc:  # a field the data does not have: most often an optional property not sent
            raise ExpressionError(
                f"{self.source!r} reads {exc.args[0]!r}, which is absent (an optional value not sent?)"
            ) from exc
        except Exception as exc:  # the Rust binding raises several types; one is enough for callers
            raise ExpressionError(f"{self.source!r} failed: {exc}") from exc

    def unknown_variables(self, allowed: set[str]) -> list[str]:
        """Top-level names the expression reads that the scope will not have."""
        bound = set(_MACRO_VARIABLE.findall(self.source))
        return sorted(set(self.program.variables()) - allowed - bound)

    def event_properties(self) -> set[str]:
        """Names read as `event.<name>`: checked against the event's declared properties."""
        return {dotted or indexed for dotted, indexed in _EVENT_PROPERTY.findall(self.source)}

    def __repr__(self) -> str:
        return f"Expr({self.source!r})"


Scope = Any  # a cel.Context


def make_scope(variables: dict[str, Any]) -> Scope:
    """Variables converted to CEL values once, for evaluating many expressions over them.

    Converting a scope costs about as much as evaluating against a plain dict (which converts it on every
    call), so one scope per event makes each further rule almost free (0.3 µs vs 15 µs here).
    """
    return cel.Context(variables=variables)


def compile_expression(value: Any) -> Expr:
    """Compile a CEL string, turning a syntax error into one readable line with the fix."""
    if isinstance(value, Expr):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValueError(
            f"expected a CEL expression, got {'nothing' if value is None else repr(value)[:100]}. "
            'Fix: write the expression as text, e.g. "event.minutes * 2"'
        )
    try:
        return Expr(value, cel.compile(value))
    except ValueError as exc:
        detail = " ".join(str(exc).split("ERROR: <input>:", 1)[-1].split("\n", 1)[0].split())
        raise ValueError(
            f"CEL syntax error in {value!r} at {detail}. Fix: correct the expression "
            '(CEL syntax, e.g. "event.minutes >= 10")'
        ) from None


CelExpr = Annotated[
    Expr,
    PlainValidator(compile_expression),
    PlainSerializer(lambda expr: expr.source, return_type=str),
    WithJsonSchema({"type": "string", "description": "CEL expression"}),
]

"""CEL expressions from the product owner's config, compiled once when the config is loaded."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

import cel
from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

# Macros bind their own loop variables (`[..].all(x, x > 1)`), which look like unknown names.
_MACROS = {"all", "exists", "exists_one", "map", "filter"}
_EVENT_PROPERTY = re.compile(r"\bevent\.([A-Za-z_][A-Za-z0-9_]*)")


class ExpressionError(ValueError):
    """Raised when an expression fails to evaluate on real data (bad type, missing field)."""


@dataclass(frozen=True, eq=False)
class Expr:
    """A compiled CEL expression; `source` is what the product owner wrote."""

    source: str
    program: Any

    def evaluate(self, scope: dict[str, Any]) -> Any:
        try:
            return self.program.execute(scope)
        except Exception as exc:  # the Rust binding raises several types; one is enough for callers
            raise ExpressionError(f"{self.source!r} failed: {exc}") from exc

    def unknown_variables(self, allowed: set[str]) -> list[str]:
        """Top-level names the expression reads that the scope will not have."""
        if _MACROS.intersection(self.program.functions()):
            return []
        return sorted(set(self.program.variables()) - allowed)

    def event_properties(self) -> set[str]:
        """Names read as `event.<name>`: checked against the event's declared properties."""
        return set(_EVENT_PROPERTY.findall(self.source))

    def __repr__(self) -> str:
        return f"Expr({self.source!r})"


def compile_expression(value: Any) -> Expr:
    """Compile a CEL string, turning a syntax error into one readable line with the fix."""
    if isinstance(value, Expr):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a CEL expression as a string, got {value!r}")
    try:
        return Expr(value, cel.compile(value))
    except ValueError as exc:
        detail = " ".join(str(exc).split("ERROR: <input>:", 1)[-1].split("\n", 1)[0].split())
        raise ValueError(
            f"CEL syntax error in {value!r} at {detail}. Fix: correct the expression "
            "(CEL syntax, e.g. \"event.minutes >= 10\")"
        ) from None


CelExpr = Annotated[
    Expr,
    PlainValidator(compile_expression),
    PlainSerializer(lambda expr: expr.source, return_type=str),
    WithJsonSchema({"type": "string", "description": "CEL expression"}),
]

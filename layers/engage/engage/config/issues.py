"""A problem in a config and where it is: what every check reports, and the loader turns into errors.

Kept apart from the checks so that the Lambdas, which load only published configs, never import those.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Issue:
    """One problem in a config: where (a YAML path such as rules[0].award.xp), what, and the fix."""

    path: tuple[str | int, ...]
    message: str
    line: int | None = None

    @property
    def where(self) -> str:
        return format_path(self.path)


def format_path(path: Iterable[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"

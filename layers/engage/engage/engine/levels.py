"""Levels: which level a lifetime total reaches and how far it is to the next."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from ..config.schema import Levels


@dataclass(frozen=True)
class LevelView:
    number: int  # 1-based, as shown to users
    name: str
    threshold: int  # total at which this level starts
    next_threshold: int | None  # None at the top level
    total: int

    @property
    def to_next(self) -> int | None:
        return None if self.next_threshold is None else self.next_threshold - self.total

    @property
    def progress(self) -> float:
        """0.0 → 1.0 through the current level; 1.0 at the top level."""
        if self.next_threshold is None:
            return 1.0
        return round((self.total - self.threshold) / (self.next_threshold - self.threshold), 4)


def level_index(levels: Levels, total: int) -> int:
    """Index of the highest threshold reached (thresholds start at 0, so never negative)."""
    return max(bisect_right(levels.thresholds, total) - 1, 0)


def level_view(levels: Levels, total: int) -> LevelView:
    index = level_index(levels, total)
    thresholds = levels.thresholds
    return LevelView(
        number=index + 1,
        name=levels.name_of(index),
        threshold=thresholds[index],
        next_threshold=thresholds[index + 1] if index + 1 < len(thresholds) else None,
        total=total,
    )

"""Shapes shared by several responses."""

from __future__ import annotations

from ..api.common import LevelOut
from ..config import EngagementConfig
from ..engine.levels import level_view


def level_out(config: EngagementConfig, total: int) -> LevelOut:
    """The level a lifetime total reaches, with progress to the next (config.levels must be set)."""
    assert config.levels is not None
    view = level_view(config.levels, total)
    return LevelOut(
        number=view.number,
        name=view.name,
        total=total,
        threshold=view.threshold,
        next_threshold=view.next_threshold,
        to_next=view.to_next,
        progress=view.progress,
    )

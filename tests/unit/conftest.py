"""Fixtures for the unit tests of engage.config and engage.engine (pure code: no AWS, no env, no network)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engage.config import EngagementConfig, load_config_file, validate_config_data

REPO_ROOT = Path(__file__).resolve().parents[2]
FITQUEST_PATH = REPO_ROOT / "examples" / "fitquest" / "engagement.yaml"


@pytest.fixture(scope="session")
def fitquest_path() -> Path:
    return FITQUEST_PATH


@pytest.fixture(scope="session")
def fitquest_text() -> str:
    """The product owner's reference file, as written."""
    return FITQUEST_PATH.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def fitquest() -> EngagementConfig:
    """The reference config, loaded the way the CLI loads it (frozen, so safe to share)."""
    return load_config_file(FITQUEST_PATH)


@pytest.fixture(scope="session")
def fitquest_rules_only(fitquest: EngagementConfig) -> EngagementConfig:
    """The reference config without badges, streaks and quests: for tests about rules, limits and levels."""
    data = fitquest.model_dump(mode="json", exclude={"badges", "streaks", "quests", "leaderboards", "notifications"})
    return validate_config_data(data)


@pytest.fixture(scope="session")
def _fitquest_json(fitquest: EngagementConfig) -> dict[str, Any]:
    return fitquest.model_dump(mode="json", exclude_unset=True)


@pytest.fixture
def fitquest_data(_fitquest_json: dict[str, Any]) -> dict[str, Any]:
    """A fresh plain-dict copy of the reference config (the JSON form the Lambdas read), free to edit."""
    return copy.deepcopy(_fitquest_json)


@pytest.fixture
def make_config(_fitquest_json: dict[str, Any]) -> Callable[[Callable[[dict[str, Any]], None]], EngagementConfig]:
    """Build a variant of the reference config: `make_config(lambda d: d.update(default_timezone=...))`."""

    def build(edit: Callable[[dict[str, Any]], None]) -> EngagementConfig:
        data = copy.deepcopy(_fitquest_json)
        edit(data)
        return validate_config_data(data)

    return build

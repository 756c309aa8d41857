"""Typed settings, read once from the environment (names match template.yaml's Globals).

A plain pydantic model over os.environ rather than pydantic-settings: same typing and the same
start-up failure naming the missing variable, without pydantic-settings' imports at every cold start.
"""

import os
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class Settings(BaseModel):
    """Where the Lambdas find their tables and which app config they serve."""

    model_config = ConfigDict(frozen=True)

    users_table: str = Field(alias="USERS_TABLE", min_length=3)
    ledger_table: str = Field(alias="LEDGER_TABLE", min_length=3)
    config_table: str = Field(alias="CONFIG_TABLE", min_length=3)
    leaderboards_table: str = Field(alias="LEADERBOARDS_TABLE", min_length=3)
    devices_table: str = Field(alias="DEVICES_TABLE", min_length=3)
    inbox_table: str = Field(alias="INBOX_TABLE", min_length=3)
    app_id: str = Field(alias="ENGAGE_APP_ID", min_length=1)
    region: str = Field(alias="AWS_REGION", min_length=1)  # Lambda sets it; elsewhere AWS_DEFAULT_REGION serves
    # How long a Lambda keeps the active config before reading it again.
    config_cache_seconds: float = Field(60.0, ge=0, le=60, alias="ENGAGE_CONFIG_CACHE_SECONDS")


class SettingsMissing(RuntimeError):
    """An environment variable the functions need is missing or invalid."""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; a missing variable fails here, naming it."""
    env = dict(os.environ)
    env.setdefault("AWS_REGION", env.get("AWS_DEFAULT_REGION", ""))
    try:
        return Settings.model_validate(env)
    except ValidationError as exc:
        problems = "; ".join(f"{err['loc'][0]}: {err['msg']}" for err in exc.errors())
        raise SettingsMissing(f"invalid or missing environment: {problems}") from None

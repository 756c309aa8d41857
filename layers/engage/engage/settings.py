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
    # Notifications (template.yaml gives each function those it uses; a function that lacks one never needs it).
    delivery_queue_url: str | None = Field(None, alias="DELIVERY_QUEUE_URL")
    deferred_queue_url: str | None = Field(None, alias="DEFERRED_QUEUE_URL")
    dead_letter_queue_url: str | None = Field(None, alias="DEAD_LETTER_QUEUE_URL")  # delivery jobs set aside
    deferred_dead_letter_queue_url: str | None = Field(None, alias="DEFERRED_DEAD_LETTER_QUEUE_URL")  # held ones
    # Stream batches notify and boards gave up on (only the CLI's replay commands read them).
    failed_batches_queue_url: str | None = Field(None, alias="FAILED_BATCHES_QUEUE_URL")
    boards_failed_batches_queue_url: str | None = Field(None, alias="BOARDS_FAILED_BATCHES_QUEUE_URL")
    idempotency_table: str | None = Field(None, alias="IDEMPOTENCY_TABLE")
    fcm_credentials_secret: str | None = Field(None, alias="FCM_CREDENTIALS_SECRET")
    fcm_endpoint: str | None = Field(None, alias="FCM_ENDPOINT")  # the FCM emulator (local stack, tests) instead of FCM
    delivery_retry_base_seconds: float = Field(30.0, gt=0, le=900, alias="DELIVERY_RETRY_BASE_SECONDS")

    def required(self, name: str) -> str:
        """A setting this function cannot work without, or SettingsMissing naming its variable and the fix."""
        value = getattr(self, name)
        if not value:
            variable = type(self).model_fields[name].alias
            raise SettingsMissing(f"{variable} is not set. Fix: deploy with template.yaml, which sets it")
        return str(value)


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

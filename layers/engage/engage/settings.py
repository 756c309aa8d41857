"""Typed settings, read once from the environment (names match template.yaml's Globals)."""

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where the Lambdas find their tables and which app config they serve."""

    model_config = SettingsConfigDict(frozen=True)

    users_table: str = Field(validation_alias="USERS_TABLE")
    ledger_table: str = Field(validation_alias="LEDGER_TABLE")
    config_table: str = Field(validation_alias="CONFIG_TABLE")
    app_id: str = Field(validation_alias="ENGAGE_APP_ID")
    region: str = Field(default="us-east-1", validation_alias="AWS_REGION")
    # How long a Lambda keeps the active config before reading it again.
    config_cache_seconds: float = Field(default=60.0, ge=0, le=60, validation_alias="ENGAGE_CONFIG_CACHE_SECONDS")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; a missing variable fails here, naming it."""
    return Settings()  # type: ignore[call-arg]

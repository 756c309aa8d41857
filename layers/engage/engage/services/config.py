"""The active engagement config, read from the config table and kept for at most 60 seconds."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..config import ConfigInvalid, EngagementConfig, validate_config_data
from ..observability import logger
from ..settings import get_settings
from ..store import config_store
from .errors import ConfigUnavailable


@dataclass(frozen=True)
class ActiveConfig:
    config: EngagementConfig
    version: str
    loaded_at: float  # time.monotonic()


_cache: dict[str, ActiveConfig] = {}


def active_config() -> ActiveConfig:
    """The app's active config; re-read when older than the cache age, stale copy kept if the read fails."""
    settings = get_settings()
    cached = _cache.get(settings.app_id)
    if cached and time.monotonic() - cached.loaded_at < settings.config_cache_seconds:
        return cached
    try:
        stored = config_store.read_active(settings.app_id)
        if cached and cached.version == stored.version:
            fresh = ActiveConfig(cached.config, cached.version, time.monotonic())
        else:
            config = validate_config_data(stored.document, source=f"{settings.app_id} {stored.version}", published=True)
            fresh = ActiveConfig(config, stored.version, time.monotonic())
    except config_store.NoActiveConfig as exc:
        raise ConfigUnavailable(str(exc)) from None
    except ConfigInvalid as exc:
        logger.error("active config no longer validates", extra={"report": exc.report()})
        if cached:
            return _keep(cached)
        raise ConfigUnavailable(f"the active config does not validate: {exc.report()}") from None
    except Exception:
        if cached:  # keep serving the last good config through a passing DynamoDB error
            logger.exception("config read failed; serving the cached version", extra={"version": cached.version})
            return _keep(cached)
        raise
    _cache[settings.app_id] = fresh
    return fresh


def _keep(cached: ActiveConfig) -> ActiveConfig:
    """Serve the last good config for another cache period rather than retrying the read on every request."""
    kept = ActiveConfig(cached.config, cached.version, time.monotonic())
    _cache[get_settings().app_id] = kept
    return kept


def forget_cached_config() -> None:
    """Drop the cache (tests and the local stack call this after publishing)."""
    _cache.clear()

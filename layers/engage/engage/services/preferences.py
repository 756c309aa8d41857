"""GET/PUT /v1/me/preferences: what the user wants from notifications, stated by the user.

Stored in the user item, written like every other change to it (services.users.change_user): a preference
saved while events are ingested is never lost, and never loses them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from ..api.models import PreferencesIn, PreferencesOut, QuietHoursIn, QuietHoursOut
from ..config import EngagementConfig
from ..engine.ingest import with_choices
from ..engine.model import UserState
from ..store.progress import load_user
from .config import active_config
from .errors import InvalidField, signed_in_user
from .users import change_user


def my_preferences(claims: Mapping[str, Any]) -> PreferencesOut:
    config = active_config().config
    return _view(config, load_user(signed_in_user(claims)))


def update_preferences(claims: Mapping[str, Any], change: PreferencesIn, now: datetime | None = None) -> PreferencesOut:
    """Apply the fields sent (the others stay) and return the preferences now in force."""
    config = active_config().config
    _check(config, change)
    sent = change.model_dump(mode="json", exclude_unset=True)
    after = change_user(signed_in_user(claims), lambda state: _apply(state, sent), now or datetime.now(UTC))
    return _view(config, after)


def _apply(state: UserState, sent: dict[str, Any]) -> UserState:
    preferences = dict(state.preferences)
    for key in ("quiet_hours", "paused_until", "weekly_budget", "timezone", "locale"):
        if key in sent:  # null resets to the default (zone and locale: those the app's events send, else the config's)
            preferences[key] = sent[key]
    if "categories" in sent:
        chosen = sent["categories"]
        preferences["categories"] = {**preferences.get("categories", {}), **chosen} if chosen is not None else {}
    return replace(state, preferences=preferences, profile=with_choices(state.profile, preferences, state.preferences))


def _check(config: EngagementConfig, change: PreferencesIn) -> None:
    known = set(config.notifications.categories) if config.notifications else set()
    unknown = sorted(set(change.categories or {}) - known)
    if unknown:
        raise InvalidField(
            f"categories.{unknown[0]}",
            f"not a notification category of this app. Fix: use one of {', '.join(sorted(known)) or '(none)'}",
            unknown[0],
        )
    cap = config.notifications.defaults.caps.per_week if config.notifications else None
    if change.weekly_budget is not None and cap is not None and change.weekly_budget > cap:
        raise InvalidField(
            "weekly_budget", f"is above the app's cap of {cap} pushes a week. Fix: choose 0–{cap}", change.weekly_budget
        )


def _quiet_hours(stored: dict[str, Any]) -> QuietHoursOut:
    """Quiet hours as stored, in today's spelling (07:00 for 7:00); a window stored before empty ones were
    refused is shown as it was (the policy reads it as no quiet hours), not a 500."""
    try:
        return QuietHoursOut(**QuietHoursIn(**stored).model_dump())
    except ValidationError:
        return QuietHoursOut(**stored)


def _view(config: EngagementConfig, state: UserState) -> PreferencesOut:
    notifications = config.notifications
    chosen = state.preferences.get("categories", {})
    categories = {
        category: chosen.get(category, True) for category in (notifications.categories if notifications else {})
    }
    quiet = state.preferences.get("quiet_hours") if "quiet_hours" in state.preferences else None
    if quiet is None and notifications and notifications.defaults.quiet_hours:
        quiet = notifications.defaults.quiet_hours.model_dump()
    budget = state.preferences.get("weekly_budget")
    if budget is None and notifications:
        budget = notifications.defaults.caps.per_week
    paused = state.preferences.get("paused_until")
    return PreferencesOut(
        categories=categories,
        quiet_hours=False if quiet is False else _quiet_hours(quiet) if quiet else None,
        timezone=state.profile.timezone or config.default_timezone,
        locale=state.profile.locale or config.default_locale,
        paused_until=datetime.fromisoformat(paused) if paused else None,
        weekly_budget=budget,
    )

"""A user's push devices: registered (and refreshed) by the app, removed by the app or by FCM's answer."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from .models import DeviceItem
from .writes import written

# FCM: tokens are stale after about a month without refresh; Android expires them after 270 days.
STALE_AFTER = timedelta(days=30)
EXPIRE_AFTER = timedelta(days=270)


@dataclass(frozen=True)
class Device:
    device_id: str
    token_kind: str
    platform: str
    app_version: str | None
    locale: str | None
    timezone: str | None
    created_at: datetime
    refreshed_at: datetime

    def targetable(self, now: datetime) -> bool:
        """Whether a push may go to it: refreshed within the last 30 days."""
        return now - self.refreshed_at <= STALE_AFTER


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def register(
    user_id: str,
    device_id: str,
    token: str,
    token_kind: str,
    platform: str,
    now: datetime,
    app_version: str | None = None,
    locale: str | None = None,
    timezone: str | None = None,
) -> Device:
    """Create or refresh a device in one UpdateItem (the first registration's date is kept).

    A token belongs to one phone: if another user (or another installation) had it, that registration is
    removed, so after an account switch the previous account's pushes stop reaching this phone.
    """
    for other in DeviceItem.by_token.query(token_hash(token)):
        if (other.user_id, other.device_id) != (user_id, device_id):
            DeviceItem(other.user_id, other.device_id).delete()
    item = DeviceItem(user_id, device_id)
    item.update(
        actions=[
            DeviceItem.token.set(token),
            DeviceItem.token_kind.set(token_kind),
            DeviceItem.token_hash.set(token_hash(token)),
            DeviceItem.platform.set(platform),
            DeviceItem.app_version.set(app_version) if app_version else DeviceItem.app_version.remove(),
            DeviceItem.locale.set(locale) if locale else DeviceItem.locale.remove(),
            DeviceItem.timezone.set(timezone) if timezone else DeviceItem.timezone.remove(),
            DeviceItem.created_at.set(DeviceItem.created_at | now),  # if_not_exists: kept on refresh
            DeviceItem.refreshed_at.set(now),
            DeviceItem.expires_at.set(now + EXPIRE_AFTER),
        ]
    )
    return Device(device_id, token_kind, platform, app_version, locale, timezone, item.created_at, now)


def remove(user_id: str, device_id: str) -> None:
    """Forget a device (idempotent)."""
    DeviceItem(user_id, device_id).delete()


def remove_dead(user_id: str, target: Target) -> bool:
    """Forget a device FCM said is gone, unless the app re-registered it with a new token meanwhile."""
    item = DeviceItem(user_id, target.device_id)
    return written(lambda: item.delete(condition=DeviceItem.token_hash == token_hash(target.token)))


@dataclass(frozen=True)
class Target:
    """Where a push goes: one targetable device's token (never logged)."""

    device_id: str
    token: str
    fid: bool
    platform: str


def targets(user_id: str, now: datetime) -> list[Target]:
    """The user's devices refreshed within the last 30 days (one query)."""
    return [
        Target(item.device_id, item.token, item.token_kind == "fid", item.platform)
        for item in DeviceItem.query(user_id, filter_condition=DeviceItem.refreshed_at >= now - STALE_AFTER)
    ]

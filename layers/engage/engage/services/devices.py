"""POST /v1/me/devices and DELETE /v1/me/devices/{id}: where the user's pushes can go."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Literal

from ..api.models import DeviceIn, DeviceOut
from ..config.types import CLIENT_ID
from ..engine.ingest import merge_profile
from ..engine.model import Profile, UserState
from ..store import devices as store
from .errors import InvalidInput, signed_in_user
from .users import change_user

log = logging.getLogger(__name__)
_DEVICE_ID = re.compile(CLIENT_ID)


def register_device(claims: Mapping[str, Any], device: DeviceIn, now: datetime | None = None) -> DeviceOut:
    """Register or refresh the device (apps call this at every start: a device not refreshed for 30 days gets no push)."""
    user_id = signed_in_user(claims)
    now = now or datetime.now(UTC)
    kind: Literal["fcm_token", "fid"] = "fcm_token" if device.fcm_token else "fid"
    token = device.fcm_token or device.fid or ""
    saved = store.register(
        user_id, device.device_id, token, kind, device.platform, now,
        device.app_version, device.locale, device.timezone,
    )  # fmt: skip
    if device.timezone or device.locale:
        reported = Profile(timezone=device.timezone, locale=device.locale)
        try:  # as an events request's context: quiet hours, caps and texts follow the user's clock and language
            change_user(user_id, lambda state: _with_profile(state, reported), now)
        except Exception:  # the device is registered; the profile catches up at the next start or events request
            log.exception("could not keep the device's zone and locale in the user's profile")
    return DeviceOut(
        device_id=saved.device_id,
        token_kind=kind,
        platform=saved.platform,
        refreshed_at=saved.refreshed_at,
        targetable_until=saved.refreshed_at + store.STALE_AFTER,
    )


def _with_profile(state: UserState, reported: Profile) -> UserState:
    """The device's zone and locale become the user's, unless the user chose their own in the preferences
    (change_user writes only when they change: apps register at every start)."""
    return replace(state, profile=merge_profile(state.profile, reported, state.preferences))


def remove_device(claims: Mapping[str, Any], device_id: str) -> None:
    """Forget the device (sign-out, notifications turned off in the OS); removing an unknown one is fine."""
    if len(device_id) > 128 or not _DEVICE_ID.match(device_id):  # as DeviceIn.device_id
        raise InvalidInput("not a device id. Fix: use the device_id the device was registered with")
    store.remove(signed_in_user(claims), device_id)

"""POST /v1/me/devices and DELETE /v1/me/devices/{id}: where the user's pushes can go."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Literal

from ..api.models import DeviceIn, DeviceOut
from ..engine.ingest import merge_profile
from ..engine.model import Outcome, Profile
from ..retries import MAX_ATTEMPTS, back_off
from ..store import devices as store
from ..store.progress import CommitConflict, commit, load_user
from .errors import Busy, InvalidInput, signed_in_user

log = logging.getLogger(__name__)
_DEVICE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


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
        try:
            _keep_in_profile(user_id, Profile(timezone=device.timezone, locale=device.locale), now)
        except Exception:  # the device is registered; the profile catches up at the next start or events request
            log.exception("could not keep the device's zone and locale in the user's profile")
    return DeviceOut(
        device_id=saved.device_id,
        token_kind=kind,
        platform=saved.platform,
        refreshed_at=saved.refreshed_at,
        targetable_until=saved.refreshed_at + store.STALE_AFTER,
    )


def _keep_in_profile(user_id: str, reported: Profile, now: datetime) -> None:
    """The device's zone and locale become the user's, as an events request's context does: quiet hours, caps
    and texts follow the user's clock and language even when the app sends no context with its events. A zone
    or locale the user chose in the preferences stays. Written only when it changes (apps register at every
    start), like every change to the user item: on its version, retried on a conflict."""
    for attempt in range(MAX_ATTEMPTS):
        before = load_user(user_id)
        profile = merge_profile(before.profile, reported, before.preferences)
        if profile == before.profile:
            return
        try:
            commit(
                Outcome(before=before, after=replace(before, profile=profile), results=[], applied=[]), "client", now
            )
            return
        except CommitConflict:
            back_off(attempt)
    raise Busy("too many concurrent writes for this user; retry the request")


def remove_device(claims: Mapping[str, Any], device_id: str) -> None:
    """Forget the device (sign-out, notifications turned off in the OS); removing an unknown one is fine."""
    if not _DEVICE_ID.match(device_id):
        raise InvalidInput("not a device id. Fix: use the device_id the device was registered with")
    store.remove(signed_in_user(claims), device_id)

"""Small value types of the config: durations, local times, time zones, identifiers."""

from __future__ import annotations

import re
from datetime import timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo, available_timezones

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, StringConstraints, WithJsonSchema

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_LONGEST = timedelta(days=999_999_999)  # what a timedelta holds: a longer one is a crash, not a value


def parse_duration(value: Any) -> timedelta:
    """'30m', '2h', '7d', '1w' → timedelta."""
    if isinstance(value, timedelta):
        return value
    match = _DURATION.match(str(value)) if isinstance(value, str) else None
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{value!r} is not a duration. Fix: write a positive number and a unit, e.g. 30m, 2h, 7d, 1w")
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > _LONGEST.total_seconds():  # publishing refuses more than 10 years (config.checks)
        raise ValueError(f"{value!r} is longer than any duration can be. Fix: write a shorter one, e.g. 52w")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


def format_in_days(value: timedelta) -> str:
    """A duration as the docs and configs write it: whole days in days (7d, 35d, not 1w, 5w)."""
    return f"{value.days}d" if value == timedelta(days=value.days) and value.days else format_duration(value)


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    # Only real zones: not directories ("America"), nor the system's aliases ("localtime", "posixrules").
    return frozenset(available_timezones() - {"localtime", "posixrules", "Factory"})


# A fixed offset, as a device reports a zone set by hand: Android "GMT+05:30", iOS "GMT+0530", also "UTC-3".
_OFFSET = re.compile(r"^(?:GMT|UTC)([+-])(\d{1,2})(?::?(\d{2}))?$")


def _offset_minutes(value: str) -> int | None:
    match = _OFFSET.match(value)
    if not match:
        return None
    hours, minutes = int(match.group(2)), int(match.group(3) or 0)
    if hours > 14 or minutes >= 60:  # the Earth's offsets run from -12:00 to +14:00
        return None
    return (hours * 60 + minutes) * (-1 if match.group(1) == "-" else 1)


def check_timezone(value: str) -> str:
    """An IANA zone name such as 'Europe/Berlin', or a fixed offset a device reports for a zone set by hand
    ('GMT+05:30'), written 'UTC+05:30' (an offset of 0 is 'UTC')."""
    if value in _zone_names():
        return value
    minutes = _offset_minutes(value)
    if minutes is None:
        raise ValueError(
            f"unknown time zone {value!r}. Fix: use an IANA zone name such as 'UTC', 'Europe/Berlin' or "
            "'America/New_York', or a fixed offset such as 'UTC+05:30'"
        )
    if minutes == 0:
        return "UTC"
    return f"UTC{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


@lru_cache(maxsize=512)
def tzinfo_of(name: str) -> tzinfo:
    """The clock of a zone name check_timezone accepted: an IANA zone, or a fixed offset ('UTC+05:30')."""
    minutes = _offset_minutes(name)
    return timezone(timedelta(minutes=minutes)) if minutes is not None else ZoneInfo(name)


def _check_local_time(value: str) -> str:
    hours, _, minutes = value.partition(":")
    if not (hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60 and len(minutes) == 2):
        raise ValueError(f"{value!r} is not a local time. Fix: write HH:MM in 24-hour form, e.g. 21:30")
    return f"{int(hours):02d}:{minutes}"  # 7:00 as 07:00: one spelling per time


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^\d+[smhdw]$", "examples": ["30m", "2h", "7d"]}),
]
TimeZoneName = Annotated[str, AfterValidator(check_timezone), WithJsonSchema({"type": "string", "examples": ["UTC"]})]
LocalTime = Annotated[
    str, AfterValidator(_check_local_time), WithJsonSchema({"type": "string", "pattern": r"^\d\d:\d\d$"})
]
IDENTIFIER = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"
Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER)]
# An event property's name, in the config as in the API: CEL reads it as `event.<name>`, so no '-' or '.'.
PROPERTY_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
PropertyName = Annotated[str, StringConstraints(pattern=PROPERTY_NAME)]
# What a config's property keys may look like at all (the publish checks hold them to PROPERTY_NAME): broad
# enough for every config ever published, so that a stricter check never stops an active one from loading.
PROPERTY_KEY = r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$"
PropertyKey = Annotated[str, StringConstraints(pattern=PROPERTY_KEY)]
# A BCP 47 tag as devices send it, extensions included (Android: ja-JP-u-ca-japanese, th-TH-u-nu-thai).
LOCALE = r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8}){0,10}$"
Locale = Annotated[str, StringConstraints(max_length=64, pattern=LOCALE)]
# Ids the apps choose (events, devices): what a retry can resend unchanged in a URL or a key.
CLIENT_ID = r"^[A-Za-z0-9._:\-]+$"

# A Firebase installation id (FID), as the Firebase SDKs hand it to the app.
FID = r"^[A-Za-z0-9_\-]{22}$"

# The fix for a text that does not match one of the patterns above (config files and request bodies alike).
PATTERN_FIXES = {
    IDENTIFIER: "use letters, digits, '_', '-' or '.', starting with a letter (at most 64)",
    PROPERTY_NAME: "use letters, digits and '_', not starting with a digit (at most 64)",
    PROPERTY_KEY: "use letters, digits, '_', '-' or '.', starting with a letter or '_' (at most 64)",
    LOCALE: "write a language tag such as en, de-DE or pt-BR",
    CLIENT_ID: "use letters, digits and . _ : - only",
    FID: "send the Firebase installation id as the SDK gives it (22 letters, digits, '-' or '_')",
}

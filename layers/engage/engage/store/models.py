"""PynamoDB models: the only place that knows table names and key shapes (tables: template.yaml)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pynamodb.attributes import (
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)
from pynamodb.connection import Connection
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from ..settings import get_settings

_settings = get_settings()


# Connections each model's client keeps: deliver queries devices this many at a time (its DynamoDB calls wait
# on the network, so they go out together; services/deliver.py).
POOLED_CONNECTIONS = 16


class _Meta:
    region = _settings.region
    connect_timeout_seconds = 2
    read_timeout_seconds = 5
    max_retry_attempts = 3
    max_pool_connections = POOLED_CONNECTIONS


@lru_cache(maxsize=1)
def connection() -> Connection:
    """The connection transactions go through (models keep their own, with the same settings)."""
    return Connection(
        region=_Meta.region,
        connect_timeout_seconds=_Meta.connect_timeout_seconds,
        read_timeout_seconds=_Meta.read_timeout_seconds,
        max_retry_attempts=_Meta.max_retry_attempts,
        max_pool_connections=_Meta.max_pool_connections,
    )


class UserItem(Model):
    """One item per user: balances, level, limit counters, profile; `version` guards every write."""

    class Meta(_Meta):
        table_name = _settings.users_table

    user_id = UnicodeAttribute(hash_key=True)
    version = VersionAttribute()
    balances = MapAttribute[str, Any](default=dict)
    earned = MapAttribute[str, Any](default=dict)
    level = NumberAttribute(default=0)
    counters = MapAttribute[str, Any](default=dict)
    timezone = UnicodeAttribute(null=True)
    locale = UnicodeAttribute(null=True)
    app_version = UnicodeAttribute(null=True)
    display_name = UnicodeAttribute(null=True)
    # What the app last reported, kept while the user's chosen zone or locale (above) is in force.
    reported_timezone = UnicodeAttribute(null=True)
    reported_locale = UnicodeAttribute(null=True)
    # Badge, streak and quest progress as one JSON document: the engine owns its shape, and a JSON string
    # keeps fractional sums exact and costs no per-attribute type mapping.
    progress = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()


class LedgerByTime(GlobalSecondaryIndex["LedgerItem"]):
    """A user's ledger rows in the order they were written (GET /v1/me/history)."""

    class Meta:
        index_name = "ByTime"
        projection = AllProjection()

    user_id = UnicodeAttribute(hash_key=True)
    ts = UnicodeAttribute(range_key=True)


class LedgerItem(Model):
    """One row per applied event (sk 'evt#<source>#<event id>'): its dedupe marker and the facts it caused.

    Rows whose event caused facts are kept as history; rows without facts expire after the dedupe
    window. The table's stream carries new rows to the notifier.
    """

    class Meta(_Meta):
        table_name = _settings.ledger_table

    user_id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    ts = UnicodeAttribute()  # ULID of the write: time-ordered and unique; the ByTime index sorts on it
    event_type = UnicodeAttribute()
    source = UnicodeAttribute()
    occurred_at = UTCDateTimeAttribute()
    received_at = UTCDateTimeAttribute()
    properties = MapAttribute[str, Any](default=dict)
    facts = ListAttribute[Any](default=list)
    expires_at = TTLAttribute(null=True)
    by_time = LedgerByTime()


class LeaderboardByScore(GlobalSecondaryIndex["LeaderboardItem"]):
    """One write shard of a board period, best first when read descending."""

    class Meta:
        index_name = "ByScore"
        projection = AllProjection()

    shard = UnicodeAttribute(hash_key=True)  # "<board>#<period>#<n>"
    rank_key = UnicodeAttribute(range_key=True)


class LeaderboardItem(Model):
    """A user's score on one board period (pk '<board>#<period>')."""

    class Meta(_Meta):
        table_name = _settings.leaderboards_table

    board = UnicodeAttribute(hash_key=True)
    user_id = UnicodeAttribute(range_key=True)
    shard = UnicodeAttribute()
    rank_key = UnicodeAttribute()
    score = NumberAttribute()
    reached_ms = NumberAttribute()
    name = UnicodeAttribute(null=True)  # display name when the score was written
    expires_at = TTLAttribute(null=True)
    by_score = LeaderboardByScore()


class HistogramItem(Model):
    """Score histogram of one write shard of a board period (pk '<board>#<period>#histogram', sk the shard).

    Buckets are top-level number attributes b0, b1, … (DynamoDB's ADD works on top-level attributes only);
    the boards function, fed by the leaderboards stream, moves a user from the old bucket to the new one.
    """

    class Meta(_Meta):
        table_name = _settings.leaderboards_table

    board = UnicodeAttribute(hash_key=True)
    user_id = UnicodeAttribute(range_key=True)  # the shard number, as text (the table's sort key)


class DevicesByToken(GlobalSecondaryIndex["DeviceItem"]):
    """Which registration holds a token (FCM answers about tokens, and a token moves between accounts)."""

    class Meta:
        index_name = "ByToken"
        projection = KeysOnlyProjection()

    token_hash = UnicodeAttribute(hash_key=True)


class DeviceItem(Model):
    """A device the user can get pushes on (pk user, sk the app's installation id)."""

    class Meta(_Meta):
        table_name = _settings.devices_table

    user_id = UnicodeAttribute(hash_key=True)
    device_id = UnicodeAttribute(range_key=True)
    token = UnicodeAttribute()  # FCM registration token or Firebase installation id: never logged
    token_kind = UnicodeAttribute()  # "fcm_token" | "fid"
    token_hash = UnicodeAttribute()  # sha256 of the token: the ByToken index finds which account holds a token
    platform = UnicodeAttribute()
    app_version = UnicodeAttribute(null=True)
    locale = UnicodeAttribute(null=True)
    timezone = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    refreshed_at = UTCDateTimeAttribute()
    expires_at = TTLAttribute()
    by_token = DevicesByToken()


class InboxItem(Model):
    """One message in a user's inbox (sk: the message id, a ULID shared with its push), and one row per user
    logging their recent pushes (sk "~push-log", which sorts after every ULID)."""

    class Meta(_Meta):
        table_name = _settings.inbox_table

    user_id = UnicodeAttribute(hash_key=True)
    message_id = UnicodeAttribute(range_key=True)
    trigger = UnicodeAttribute()
    category = UnicodeAttribute()
    title = UnicodeAttribute()
    body = UnicodeAttribute()
    deep_link = UnicodeAttribute(null=True)
    actions = ListAttribute[Any](default=list)
    push = MapAttribute[str, Any](default=dict)  # {"decision": push|inbox|defer|drop, "reason": …}
    created_at = UTCDateTimeAttribute()
    read_at = UTCDateTimeAttribute(null=True)
    archived_at = UTCDateTimeAttribute(null=True)
    opened_at = UTCDateTimeAttribute(null=True)  # from a notification_opened event
    expires_at = TTLAttribute()
    # Only on the user's push-log row (sk store.inbox.PUSH_LOG): recent pushes {message id: ISO time}, and the
    # version its conditional writes check.
    pushed = MapAttribute[str, Any](null=True)
    log_version = NumberAttribute(null=True)


class ConfigItem(Model):
    """Published config versions (sk 'v000001', …) and the 'active' item holding a copy of the live one."""

    class Meta(_Meta):
        table_name = _settings.config_table

    app = UnicodeAttribute(hash_key=True)
    version = UnicodeAttribute(range_key=True)
    document = UnicodeAttribute()  # the YAML as parsed, in JSON: re-validated by every reader
    source_text = UnicodeAttribute(null=True)
    sha256 = UnicodeAttribute()
    active_version = UnicodeAttribute(null=True)  # only on the 'active' item
    published_at = UTCDateTimeAttribute()
    published_by = UnicodeAttribute(null=True)

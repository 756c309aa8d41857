"""Versioned configs: publish a new version and mark it active; read the active one."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pynamodb.exceptions import DoesNotExist
from pynamodb.transactions import TransactWrite
from ulid import ULID

from .models import ConfigItem, connection

ACTIVE = "active"


class NoActiveConfig(LookupError):
    """Nothing has been published for this app yet."""


@dataclass(frozen=True)
class StoredConfig:
    app: str
    version: str
    document: dict[str, Any]
    sha256: str
    published_at: datetime


def publish(app: str, document: dict[str, Any], source_text: str | None = None, by: str | None = None) -> str:
    """Store `document` (already validated) as the next version and make it active, atomically."""
    payload = json.dumps(document, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(payload.encode()).hexdigest()
    now = datetime.now(UTC)
    latest = next(ConfigItem.query(app, ConfigItem.version.startswith("v"), scan_index_forward=False, limit=1), None)
    version = f"v{(int(latest.version[1:]) if latest else 0) + 1:06d}"

    def item(sort_key: str, active_version: str | None = None) -> ConfigItem:
        return ConfigItem(
            app,
            sort_key,
            document=payload,
            source_text=source_text,
            sha256=digest,
            published_at=now,
            published_by=by,
            active_version=active_version,
        )

    with TransactWrite(connection=connection(), client_request_token=str(ULID())) as transaction:
        # Two publishers racing for the same version number: one wins, the other gets an error to retry.
        transaction.save(item(version), condition=ConfigItem.version.does_not_exist())
        transaction.save(item(ACTIVE, active_version=version))
    return version


def read_active(app: str) -> StoredConfig:
    """The active config (one GetItem: the 'active' item carries a copy of the document)."""
    try:
        item = ConfigItem.get(app, ACTIVE, consistent_read=True)
    except DoesNotExist:
        raise NoActiveConfig(f"no config is published for app {app!r}; run `engage config publish`") from None
    return StoredConfig(app, item.active_version or "", json.loads(item.document), item.sha256, item.published_at)


def list_versions(app: str) -> list[StoredConfig]:
    """Every published version, newest first."""
    items = ConfigItem.query(app, ConfigItem.version.startswith("v"), scan_index_forward=False)
    return [StoredConfig(app, i.version, json.loads(i.document), i.sha256, i.published_at) for i in items]

"""Quiet-hour releases decided again against the present (services.notify.release_deferred), on DynamoDB Local."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ulid import ULID

from engage.api.models import PreferencesIn
from engage.notify.jobs import DeferredRelease
from engage.services.notify import release_deferred
from engage.services.preferences import update_preferences
from engage.store import inbox

FACT = {"type": "badge_awarded", "event_id": "e1", "badge": "first-workout", "name": "First Step", "tier": None}


def held(user_id: str, created: datetime, deliver_at: datetime) -> DeferredRelease:
    """A badge message held by quiet hours until `deliver_at`, as notify stores and queues it."""
    message_id = str(ULID.from_datetime(created))
    inbox.add(user_id, inbox.Message(
        message_id=message_id, trigger="badge-earned", category="progress", title="New badge: First Step",
        body="Nice work!", deep_link=None, actions=[], created_at=created, read_at=None, archived_at=None,
        opened_at=None, push={"decision": "defer", "reason": "quiet_hours", "deliver_at": deliver_at.isoformat()},
    ))  # fmt: skip
    return DeferredRelease(message_id=message_id, user_id=user_id, trigger="badge-earned", fact_key="evt#client#e1#0",
                           fact=FACT, created_at=created, valid_until=created + timedelta(hours=2),
                           deliver_at=deliver_at)  # fmt: skip


def test_given_a_held_message_past_its_validity_when_released_then_it_drops_as_expired_and_stays_in_the_inbox(
    user_id,
):
    created = datetime.now(UTC) - timedelta(hours=3)
    job = held(user_id, created, created + timedelta(hours=1))
    tally = release_deferred([job], now=datetime.now(UTC))
    assert tally.decisions == {"drop:expired": 1}
    row = inbox.get(user_id, job.message_id)
    assert row is not None and row.push["decision"] == "drop" and row.archived_at is None


def test_given_the_user_moved_their_quiet_hours_when_released_then_it_is_held_again_until_the_new_end(user_id):
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    end = now + timedelta(minutes=30)
    window = {"start": (now - timedelta(hours=1)).strftime("%H:%M"), "end": end.strftime("%H:%M")}
    update_preferences({"sub": user_id}, PreferencesIn(timezone="UTC", quiet_hours=window))
    job = held(user_id, now - timedelta(minutes=10), now - timedelta(minutes=1))
    assert release_deferred([job], now=now).decisions == {"defer:quiet_hours": 1}
    row = inbox.get(user_id, job.message_id)
    assert row is not None and row.push["decision"] == "defer"
    assert datetime.fromisoformat(row.push["deliver_at"]) == end  # the inbox's held_until follows


def test_given_a_release_already_settled_when_the_job_comes_again_then_nothing_happens(user_id):
    now = datetime.now(UTC)
    update_preferences({"sub": user_id}, PreferencesIn(timezone="UTC", quiet_hours={"start": (now + timedelta(hours=2)).strftime("%H:%M"), "end": (now + timedelta(hours=3)).strftime("%H:%M")}))  # fmt: skip
    job = held(user_id, now - timedelta(minutes=10), now - timedelta(minutes=1))
    assert release_deferred([job], now=now).decisions == {"push:ok": 1}
    assert release_deferred([job], now=now).decisions == {}  # an SQS redelivery of the same job
    row = inbox.get(user_id, job.message_id)
    assert row is not None and row.push["decision"] == "push"


def test_given_a_held_message_the_user_already_read_when_released_then_it_is_not_pushed(user_id):
    now = datetime.now(UTC)
    update_preferences({"sub": user_id}, PreferencesIn(timezone="UTC", quiet_hours={"start": (now + timedelta(hours=2)).strftime("%H:%M"), "end": (now + timedelta(hours=3)).strftime("%H:%M")}))  # fmt: skip
    job = held(user_id, now - timedelta(minutes=10), now - timedelta(minutes=1))
    inbox.mark(user_id, job.message_id, "read", now - timedelta(minutes=5))  # seen in the app during the night

    assert release_deferred([job], now=now).decisions == {"inbox:seen": 1}
    row = inbox.get(user_id, job.message_id)
    assert row is not None and row.push["decision"] == "inbox" and row.read_at is not None

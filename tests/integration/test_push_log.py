"""The push log: decisions racing for one user cannot together exceed a cap (services.notify, on DynamoDB Local).

FitQuest's caps allow one push per 2 hours (min_gap). Each test makes two or more decisions meet for the same
user — a stream batch, another stream batch, a quiet-hours release — and checks that only one of them pushes.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from engage.api.models import PreferencesIn
from engage.notify.triggers import FactSeen, Prepared, prepare
from engage.services import notify
from engage.services.config import active_config
from engage.services.notify import Tally, decide_and_store, release_deferred
from engage.services.preferences import update_preferences
from engage.store import inbox
from engage.store.progress import load_user

from .test_notify_release import held


@pytest.fixture
def now(user_id) -> datetime:
    """Now, with the user's quiet hours well away from it (pushes are decided, not held)."""
    now = datetime.now(UTC)
    quiet = {"start": (now + timedelta(hours=6)).strftime("%H:%M"), "end": (now + timedelta(hours=7)).strftime("%H:%M")}
    update_preferences({"sub": user_id}, PreferencesIn(timezone="UTC", quiet_hours=quiet))
    return now


def badge_message(user_id: str, event: str, now: datetime) -> list[Prepared]:
    """The badge-earned message of a badge_awarded fact from event `event`, as the stream handler prepares it."""
    fact = {"type": "badge_awarded", "event_id": event, "badge": "first-workout", "name": "First Step", "tier": None}
    seen = FactSeen(f"evt#client#{event}#0", now, fact)
    return prepare(active_config().config, load_user(user_id), [seen], now)


def decide(user_id: str, prepared: list[Prepared], now: datetime) -> Tally:
    tally = Tally()
    decide_and_store(active_config().config, load_user(user_id), prepared, now, tally)
    return tally


def pushed(user_id: str) -> list[str]:
    messages, _ = inbox.page(user_id, 50, None)
    return [m.message_id for m in messages if m.push["decision"] == "push"]


def race_on_first_lookup(monkeypatch: pytest.MonkeyPatch, other_decision) -> None:
    """Run `other_decision` right after the next push-log read, before the decision that read it acts."""
    real_lookup, raced = inbox.lookup, []

    def lookup_then_race(user_id: str, message_ids: list[str]):
        found = real_lookup(user_id, message_ids)
        if not raced:
            raced.append(True)
            other_decision()
        return found

    monkeypatch.setattr(inbox, "lookup", lookup_then_race)


def test_given_another_decision_pushes_between_read_and_claim_then_this_one_decides_again_and_keeps_the_gap(
    user_id, now, monkeypatch
):
    first, second = badge_message(user_id, "e1", now), badge_message(user_id, "e2", now)
    race_on_first_lookup(monkeypatch, lambda: decide(user_id, second, now))

    assert decide(user_id, first, now).decisions == {"inbox:min_gap": 1}
    assert pushed(user_id) == [second[0].candidate.message_id]
    _, log = inbox.lookup(user_id, [])
    assert list(log.pushed) == [second[0].candidate.message_id]
    messages, _ = inbox.page(user_id, 50, None)  # the log row is not a message
    assert len(messages) == 2 and inbox.unread_count(user_id) == 2
    assert not inbox.mark_opened(user_id, inbox.PUSH_LOG, now)


def test_given_a_release_and_a_stream_decision_meet_then_only_one_pushes(user_id, now, monkeypatch):
    job = held(user_id, now - timedelta(minutes=10), now - timedelta(minutes=1))
    fresh = badge_message(user_id, "e2", now)
    race_on_first_lookup(monkeypatch, lambda: decide(user_id, fresh, now))

    assert release_deferred([job], now=now).decisions == {"inbox:min_gap": 1}
    assert pushed(user_id) == [fresh[0].candidate.message_id]
    row = inbox.get(user_id, job.message_id)
    assert row is not None and row.push["decision"] == "inbox"


def test_given_eight_decisions_at_once_for_one_user_then_exactly_one_pushes(user_id, now):
    messages = [badge_message(user_id, f"e{i}", now) for i in range(8)]
    start, errors = threading.Barrier(len(messages)), []

    def run(prepared: list[Prepared]) -> None:
        start.wait()
        try:
            decide(user_id, prepared, now)
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(prepared,)) for prepared in messages]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(pushed(user_id)) == 1
    stored = inbox.lookup(user_id, [m[0].candidate.message_id for m in messages])[0]
    assert sorted(row.push["reason"] for row in stored.values()) == ["min_gap"] * 7 + ["ok"]


def test_given_a_crash_after_the_claim_when_retried_then_the_claimed_message_is_pushed_once(user_id, now, monkeypatch):
    prepared = badge_message(user_id, "e1", now)
    real_add = inbox.add

    def crash(*_args):
        monkeypatch.setattr(inbox, "add", real_add)
        raise ConnectionError("the Lambda died after claiming the push")

    monkeypatch.setattr(inbox, "add", crash)
    with pytest.raises(ConnectionError):
        decide(user_id, prepared, now)

    assert decide(user_id, prepared, now).decisions == {"push:ok": 1}  # the stream record, retried
    row = inbox.get(user_id, prepared[0].candidate.message_id)
    assert row is not None and row.push["detail"] == "claimed by an earlier attempt"
    assert len(inbox.lookup(user_id, [])[1].pushed) == 1


def test_given_the_log_keeps_changing_then_the_batch_fails_to_be_retried(user_id, now, monkeypatch):
    monkeypatch.setattr(inbox, "claim_push", lambda *_args: False)
    with pytest.raises(notify.PushLogBusy, match=user_id):
        decide(user_id, badge_message(user_id, "e1", now), now)
    assert pushed(user_id) == []  # nothing stored: the retry decides afresh

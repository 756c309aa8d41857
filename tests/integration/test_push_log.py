"""The push log: decisions racing for one user cannot together exceed a cap (services.notify, on DynamoDB Local).

FitQuest's caps allow one push per 2 hours (min_gap). Most tests make two or more decisions meet for the same
user — a stream batch, another stream batch, a quiet-hours release — and check that only one of them pushes;
the others check what a crash or a retry leaves behind.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from engage.api.models import PreferencesIn
from engage.config.schema import Caps
from engage.notify.triggers import FactSeen, Prepared, prepare
from engage.services import notify
from engage.services.config import active_config
from engage.services.notify import Tally, decide_and_store, release_deferred, run_schedule
from engage.services.preferences import update_preferences
from engage.store import inbox, queues
from engage.store.history import encode_cursor
from engage.store.progress import load_user

from .test_notify_release import held

# The tests patch the notifier's queues, inbox and config, which the local stack's pollers run too.
pytestmark = pytest.mark.usefixtures("held_pollers")


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
    messages, _ = inbox.page(user_id, 50, None, datetime.now(UTC))
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


def test_given_another_decision_pushes_between_read_and_write_then_this_one_decides_again_and_keeps_the_gap(
    user_id, now, monkeypatch
):
    yesterday = now - timedelta(hours=25)
    decide(user_id, badge_message(user_id, "e0", yesterday), yesterday)  # the log exists: version 1
    first, second = badge_message(user_id, "e1", now), badge_message(user_id, "e2", now)
    race_on_first_lookup(monkeypatch, lambda: decide(user_id, second, now))

    assert decide(user_id, first, now).decisions == {"inbox:min_gap": 1}
    assert pushed(user_id)[0] == second[0].candidate.message_id  # newest first: then yesterday's
    _, log = inbox.lookup(user_id, [])
    assert log.version == 2 and second[0].candidate.message_id in log.pushed
    messages, _ = inbox.page(user_id, 50, None, datetime.now(UTC))  # the log row is not a message
    assert len(messages) == 3 and inbox.unread_count(user_id, datetime.now(UTC)) == 3
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


def test_given_pushes_hours_apart_then_each_is_logged_on_the_version_the_last_one_wrote(user_id, now):
    earlier = now - timedelta(hours=3)
    assert decide(user_id, badge_message(user_id, "e1", earlier), earlier).decisions == {"push:ok": 1}
    assert decide(user_id, badge_message(user_id, "e2", now), now).decisions == {"push:ok": 1}  # 3 h > min_gap
    (third,) = decide(user_id, badge_message(user_id, "e3", now), now).decisions
    assert third in ("inbox:min_gap", "inbox:cap_per_day")  # per_day is 2: which applies depends on the hour
    _, log = inbox.lookup(user_id, [])
    assert log.version == 2 and sorted(log.pushed.values()) == [earlier, now]


def test_given_a_crash_after_the_push_was_stored_when_retried_then_it_is_queued_again_and_logged_once(
    user_id, now, monkeypatch
):
    prepared = badge_message(user_id, "e1", now)
    real_send, sent = queues.send, []

    def crash_once(queue, messages):
        monkeypatch.setattr(queues, "send", lambda q, m: sent.extend(m) or real_send(q, m))
        raise ConnectionError("the Lambda died before queueing the push")

    monkeypatch.setattr(queues, "send", crash_once)
    with pytest.raises(ConnectionError):
        decide(user_id, prepared, now)

    assert decide(user_id, prepared, now).decisions == {"push:ok": 1}  # the stream record, retried
    assert [prepared[0].candidate.message_id in m.body for m in sent] == [True]
    row = inbox.get(user_id, prepared[0].candidate.message_id)
    assert row is not None and row.push["decision"] == "push"
    assert len(inbox.lookup(user_id, [])[1].pushed) == 1


def test_given_a_release_that_died_after_settling_when_its_job_comes_again_then_the_push_is_queued_again(
    user_id, now, monkeypatch
):
    job = held(user_id, now - timedelta(minutes=10), now - timedelta(minutes=1))
    monkeypatch.setattr(queues, "send", lambda *_: (_ for _ in ()).throw(ConnectionError("died")))
    with pytest.raises(ConnectionError):
        release_deferred([job], now=now)
    row = inbox.get(user_id, job.message_id)
    assert row is not None and row.push["decision"] == "push"  # settled together with its log entry

    sent: list[queues.Outgoing] = []
    monkeypatch.setattr(queues, "send", lambda queue, messages: sent.extend(messages))
    assert release_deferred([job], now=now).decisions == {}  # decided once
    assert [job.message_id in m.body for m in sent] == [True]  # and queued again; deliver sends it once


def test_given_a_push_whose_row_a_concurrent_attempt_stored_then_nothing_is_logged_for_it(user_id, now, monkeypatch):
    prepared = badge_message(user_id, "e1", now)
    other = inbox.Message(**{**notify._row(prepared[0], _inbox_decision(prepared, now)).__dict__})
    race_on_first_lookup(monkeypatch, lambda: inbox.add(user_id, other))  # stored as "inbox" meanwhile

    assert decide(user_id, prepared, now).decisions == {"inbox:min_gap": 1}  # the stored decision stands
    assert inbox.lookup(user_id, [])[1].pushed == {}  # no push logged without its message


def test_given_two_deliveries_of_one_held_message_race_then_it_is_pushed_once(user_id, now, monkeypatch):
    config = active_config().config
    assert config.notifications is not None
    defaults = config.notifications.defaults.model_copy(update={"caps": Caps(per_day=5)})  # no min_gap
    no_gap = config.model_copy(update={"notifications": config.notifications.model_copy(update={"defaults": defaults})})
    monkeypatch.setattr(notify, "active_config", lambda: SimpleNamespace(config=no_gap))
    x = held(user_id, now - timedelta(minutes=20), now - timedelta(minutes=1))
    y = held(user_id, now - timedelta(minutes=10), now - timedelta(minutes=1))
    race_on_first_lookup(monkeypatch, lambda: release_deferred([x, y], now=now))  # both, from another batch

    release_deferred([y], now=now)  # a duplicate of y's job, which lost the race

    rows = inbox.lookup(user_id, [x.message_id, y.message_id])[0]
    assert sorted(row.push["decision"] for row in rows.values()) == ["inbox", "push"]
    assert len(inbox.lookup(user_id, [])[1].pushed) == 1


def test_given_the_log_keeps_changing_then_the_batch_fails_to_be_retried(user_id, now, monkeypatch):
    monkeypatch.setattr(inbox, "add_pushed", lambda *_args: False)
    with pytest.raises(notify.PushLogBusy, match=user_id):
        decide(user_id, badge_message(user_id, "e1", now), now)
    assert pushed(user_id) == []  # nothing stored: the retry decides afresh


def test_given_a_schedule_run_fails_for_one_user_then_it_goes_on_with_the_others_and_names_them(
    user_id, now, monkeypatch
):
    other = f"{user_id}-other"
    update_preferences({"sub": other}, PreferencesIn(timezone="UTC", quiet_hours={"start": "00:00", "end": "00:01"}))
    real_add_pushed = inbox.add_pushed
    monkeypatch.setattr(inbox, "add_pushed", lambda uid, *rest: uid != user_id and real_add_pushed(uid, *rest))
    monkeypatch.setattr(notify, "holds", lambda *_args: True)  # as if both streaks were at risk

    tally = run_schedule("streak-at-risk", [user_id, other], now)

    assert tally.failed_users == [user_id]
    assert tally.decisions == {"push:ok": 1} and pushed(other) != []


def test_the_log_keeps_the_newest_pushes_within_its_window(user_id, now):
    prepared = badge_message(user_id, "e1", now)
    for i in range(inbox.PUSH_LOG_SIZE + 5):
        _, log = inbox.lookup(user_id, [])
        at = now - timedelta(days=9) + timedelta(minutes=i)  # the first 5 beyond any cap's window
        row = notify._row(prepared[0], notify.Decision(f"m{i:03d}", "push", "ok", None, _inputs(at), ""))
        assert inbox.add_pushed(user_id, log, inbox.Message(**{**row.__dict__, "message_id": f"m{i:03d}"}),
                                timedelta(days=8))  # fmt: skip
    _, log = inbox.lookup(user_id, [])
    assert len(log.pushed) == inbox.PUSH_LOG_SIZE and min(log.pushed) == "m005"


@pytest.mark.parametrize("message_id", [{"S": inbox.PUSH_LOG}, "not-a-key-value"])
def test_a_cursor_pointing_at_the_log_or_malformed_is_refused(user_id, message_id):
    cursor = encode_cursor({"user_id": {"S": user_id}, "message_id": message_id})
    with pytest.raises(inbox.BadCursor):
        inbox.page(user_id, 10, cursor, datetime.now(UTC))


@pytest.mark.parametrize(
    "crafted",
    [{}, {"message_id": {"N": "1"}}, {"message_id": {"S": "01JDA9X1Z5K3W8N4P6Q7R2S3T4"}, "extra": {"S": "x"}},
     {"message_id": {"S": "é" * 600}}, {"message_id": {"S": "01JDA9X1Z5K3W8N4P6Q7R2S3T4", "N": "1"}}],
    ids=["no-message-id", "number", "extra-key", "over-1024-bytes", "two-types"],
)  # fmt: skip
def test_a_crafted_cursor_is_refused_before_it_reaches_dynamodb(user_id, crafted):
    cursor = encode_cursor({"user_id": {"S": user_id}, **crafted})
    with pytest.raises(inbox.BadCursor):
        inbox.page(user_id, 10, cursor, datetime.now(UTC))


def test_an_open_naming_no_message_id_changes_nothing_and_does_not_fail(user_id):
    # An app's notification_opened carries whatever message_id it was given, up to 1024 characters
    assert not inbox.mark_opened(user_id, "é" * 600, datetime.now(UTC))
    assert not inbox.mark_opened(user_id, inbox.PUSH_LOG, datetime.now(UTC))


def _inputs(at: datetime) -> notify.Inputs:
    return notify._bare_inputs(at)


def _inbox_decision(prepared: list[Prepared], now: datetime) -> notify.Decision:
    return notify.Decision(prepared[0].candidate.message_id, "inbox", "min_gap", None, _inputs(now), "")

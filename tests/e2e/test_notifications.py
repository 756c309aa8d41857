"""Notifications end to end, as an app and a phone see them: events over HTTP → ledger stream → notify →
delivery queue → deliver → firebase-admin → the FCM emulator, with every message also in the inbox.

The local stack polls the ledger stream and the queues in the background, like Lambda's event source
mappings; these tests wait for what a user would observe (a phone's pushes, the inbox), never for internals.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from ulid import ULID

from engage.local import tokens
from engage.local.demo import http
from engage.store.models import DeviceItem

from .conftest import assert_granted, recorded_aws_calls

T = TypeVar("T")
_events = itertools.count()


def wait_for(what: str, check: Callable[[], T], timeout: float = 30.0) -> T:
    """Poll until `check()` is truthy (returning it) or fail naming what did not happen."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {value!r})")
        time.sleep(0.1)


class Phone:
    """A user's app on one phone: signs in, registers its FCM token, sends events, reads its inbox."""

    def __init__(self, stack: Any, user: str, device: str = "phone") -> None:
        self.stack, self.user = stack, user
        self.token = f"{user}-{device}:APA91b".replace(" ", "-")[:60] + "x" * 100
        self.headers = {"authorization": f"Bearer {tokens.mint(user, name='Ada Lovelace')}"}
        self.device = device

    def register(self, **extra: Any) -> Phone:
        body = {"device_id": self.device, "fcm_token": self.token, "platform": "android", **extra}
        status, answer = http("POST", f"{self.stack.api_url}/v1/me/devices", body, self.headers)
        assert status == 200, answer
        return self

    def preferences(self, **changes: Any) -> dict[str, Any]:
        status, answer = http("PUT", f"{self.stack.api_url}/v1/me/preferences", changes, self.headers)
        assert status == 200, answer
        return answer

    def no_quiet_hours_now(self) -> Phone:
        """Quiet hours that do not cover the next hour on the user's (UTC) clock, whatever time the suite runs."""
        later = datetime.now(UTC) + timedelta(hours=2)
        self.preferences(timezone="UTC", quiet_hours=_window(later, later + timedelta(hours=1)))
        return self

    def send(self, type_: str = "workout_completed", occurred_at: datetime | None = None, **properties: Any) -> dict:
        event = {"id": f"{self.user}-{next(_events)}", "type": type_,
                 "occurred_at": (occurred_at or datetime.now(UTC)).isoformat(), "properties": properties}  # fmt: skip
        status, answer = http("POST", f"{self.stack.api_url}/v1/events", {"events": [event]}, self.headers)
        assert status == 200 and answer["results"][0]["status"] == "accepted", answer
        return answer

    def inbox(self) -> list[dict[str, Any]]:
        status, answer = http("GET", f"{self.stack.api_url}/v1/me/inbox", headers=self.headers)
        assert status == 200, answer
        return answer["messages"]

    def pushes(self) -> list[dict[str, Any]]:
        """What FCM accepted for this phone (the emulator's record of each send)."""
        return [record["message"] for record in self.stack.fcm.received_by(self.token)]

    def tray(self) -> dict[str, dict[str, Any]]:
        """What the phone shows: one notification per tag."""
        return self.stack.fcm.tray(self.token)


def _window(start: datetime, end: datetime) -> dict[str, str]:
    return {"start": start.strftime("%H:%M"), "end": end.strftime("%H:%M")}


def _tag(message: dict[str, Any]) -> str:
    return message["android"]["notification"]["tag"]


@pytest.fixture(autouse=True)
def _healthy_fcm(stack):
    stack.fcm.fail_share(0)
    yield
    stack.fcm.fail_share(0)


def test_a_badge_is_pushed_to_the_phone_and_the_same_message_waits_in_the_inbox(stack, user):
    phone = Phone(stack, user).register().no_quiet_hours_now()
    phone.send(minutes=20, kind="run")  # first workout: the First Step badge, 40 XP (no level yet)

    [push] = wait_for("the badge push", phone.pushes)
    assert push["notification"] == {"title": "New badge: First Step", "body": "Nice work, Ada! You earned First Step."}
    assert push["data"]["deep_link"] == "fitquest://badges/first-workout"
    assert push["fcm_options"]["analytics_label"] == "badge-earned"
    [message] = wait_for("the inbox row", phone.inbox)
    assert (
        message["message_id"] == push["data"]["message_id"] == _tag(push) == push["apns"]["headers"]["apns-collapse-id"]
    )
    assert (message["title"], message["pushed"], message["push_reason"]) == ("New badge: First Step", True, None)


def test_two_triggers_at_once_yield_one_push_the_higher_priority_and_both_are_in_the_inbox(stack, user):
    phone = Phone(stack, user).register().no_quiet_hours_now()
    phone.send(minutes=60, kind="ride")  # 120 XP: level 2 (priority 6) and the First Step badge (priority 5)

    wait_for("both messages in the inbox", lambda: len(phone.inbox()) == 2)
    [push] = wait_for("one push", phone.pushes)
    assert push["notification"]["title"] == "Level up: Mover"
    by_title = {m["title"]: m for m in phone.inbox()}
    assert by_title["Level up: Mover"]["pushed"] is True
    assert (by_title["New badge: First Step"]["pushed"], by_title["New badge: First Step"]["push_reason"]) == (
        False, "lower_priority",
    )  # fmt: skip
    time.sleep(1.0)
    assert len(phone.pushes()) == 1


def test_an_opted_out_category_and_the_min_gap_downgrade_to_the_inbox(stack, user):
    opted_out = Phone(stack, user).register().no_quiet_hours_now()
    # Off: progress (the badge) and competition (being passed on the board by the capped user below).
    opted_out.preferences(categories={"progress": False, "competition": False})
    opted_out.send(minutes=20, kind="run")
    [message] = wait_for("the inbox row", opted_out.inbox)
    assert (message["pushed"], message["push_reason"]) == (False, "opted_out")

    capped = Phone(stack, f"{user}-capped").register().no_quiet_hours_now()
    capped.send(minutes=20, kind="run")  # First Step: pushed
    wait_for("the first push", capped.pushes)
    for kind in ("ride", "yoga", "strength"):  # the fourth kind earns All-Rounder, within min_gap (2h)
        capped.send(minutes=10, kind=kind)
    wait_for("All-Rounder in the inbox", lambda: any(m["title"] == "New badge: All-Rounder" for m in capped.inbox()))
    all_rounder = next(m for m in capped.inbox() if m["title"] == "New badge: All-Rounder")
    assert (all_rounder["pushed"], all_rounder["push_reason"]) == (False, "min_gap")
    assert len(capped.pushes()) == 1
    assert opted_out.pushes() == []
    assert all((m["pushed"], m["push_reason"]) == (False, "opted_out") for m in opted_out.inbox())


def test_an_unregistered_token_deletes_the_device(stack, user):
    phone = Phone(stack, user).register().no_quiet_hours_now()
    stack.fcm.unregister(phone.token)
    phone.send(minutes=20, kind="run")
    wait_for("the device to be deleted", lambda: not list(DeviceItem.query(user)))
    assert phone.pushes() == []
    assert wait_for("the message in the inbox", phone.inbox)[0]["pushed"] is True  # decided; the phone was gone


def test_with_30_percent_of_fcm_calls_failing_every_message_is_delivered_exactly_once(stack, user):
    phones = [Phone(stack, f"{user}-{n}").register().no_quiet_hours_now() for n in range(20)]
    stack.fcm.fail_share(0.3, statuses=(503, 429), retry_after=1, seed=7)
    for phone in phones:
        phone.send(minutes=20, kind="run")
    wait_for("every phone's push", lambda: all(phone.pushes() for phone in phones), timeout=90)
    time.sleep(2.0)  # room for a duplicate to show up, were there one
    assert stack.fcm.injected, "the emulator failed no calls: the test proves nothing"
    assert all(len(phone.pushes()) == 1 for phone in phones), [len(phone.pushes()) for phone in phones]


def test_reading_a_pushed_message_sends_a_silent_clear_and_an_open_is_attributed(stack, user):
    phone = Phone(stack, user).register().no_quiet_hours_now()
    browser = Phone(stack, user, device="browser").register(platform="web")
    phone.send(minutes=20, kind="run")
    [push] = wait_for("the push", phone.pushes)
    wait_for("the push in the browser", browser.pushes)
    message_id = push["data"]["message_id"]

    phone.send("notification_opened", message_id=message_id)
    opened = wait_for("the open on the inbox row", lambda: phone.inbox()[0]["opened_at"])
    assert opened

    status, _ = http("POST", f"{stack.api_url}/v1/me/inbox/{message_id}/read", None, phone.headers)
    assert status == 204
    clear = wait_for("the clear message", lambda: [p for p in phone.pushes() if p["data"].get("engage") == "clear"])
    assert clear[0]["data"] == {"engage": "clear", "message_id": message_id} and "notification" not in clear[0]
    assert list(phone.tray()) == [message_id]  # a data message shows nothing
    # A browser gets no clear: Chrome would show a notice of its own for a push that shows nothing. Its push
    # carries Web Push options (the tag, so a resend shows once), a phone's does not
    assert [p["data"].get("engage") for p in browser.pushes()] == [None]
    assert browser.pushes()[0]["webpush"]["notification"]["tag"] == message_id and "webpush" not in push


@pytest.mark.parametrize("attempt", [0, 1], ids=["waiting-in-the-queue", "retried"])
def test_a_push_the_user_read_in_the_inbox_meanwhile_is_not_sent(stack, user, attempt):
    # The push waited in the queue, or FCM said "later" to it; the user read the message in the app's inbox
    # before it went out. The clear went out when they read it, so the push, sent now, would sit in the tray
    # for good. (The push is handed to deliver directly: a failure injected into the shared emulator could be
    # taken by another test's push.)
    from engage.notify.jobs import DeliveryJob

    phone = Phone(stack, user).register()
    phone.preferences(paused_until=(datetime.now(UTC) + timedelta(hours=1)).isoformat())  # inbox only for now
    phone.send(minutes=20, kind="run")
    [message] = wait_for("the inbox row", phone.inbox)
    status, _ = http("POST", f"{stack.api_url}/v1/me/inbox/{message['message_id']}/read", None, phone.headers)
    assert status == 204

    retry = DeliveryJob(message_id=message["message_id"], user_id=user, trigger=message["trigger"],
                        title=message["title"], body=message["body"], attempt=attempt,
                        valid_until=datetime.now(UTC) + timedelta(hours=1))  # fmt: skip
    clear = retry.model_copy(update={"kind": "clear"})  # a clear of the same message, in the same batch
    records = [{"messageId": name, "receiptHandle": "r", "body": job.model_dump_json(), "eventSource": "aws:sqs",
                "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}}
               for name, job in (("retry", retry), ("clear", clear))]  # fmt: skip
    with stack.paused(), recorded_aws_calls() as calls:
        assert _invoke(stack, "DeliverFunction", {"Records": records}) == {"batchItemFailures": []}
    assert [p["data"].get("engage") for p in phone.pushes()] == ["clear"]  # the clear went out, the push did not
    assert ("dynamodb:BatchGetItem", stack.tables["InboxTable"]) in calls
    assert_granted(stack, "DeliverFunction", calls)


def test_quiet_hours_defer_a_push_to_their_end_and_a_reminder_that_went_stale_is_cancelled(stack, user):
    """One wait (under 90 s) serves both: the window ends at the same minute for both users."""
    from engage.services.notify import run_schedule

    now = datetime.now(UTC)
    end = (now + timedelta(seconds=90)).replace(second=0, microsecond=0)
    quiet = _window(now - timedelta(hours=1), end)

    deferred = Phone(stack, user).register()
    # Off: other tests' users passing this one on the shared weekly board make `overtaken` messages, held and
    # released alike, and one released apart from the badge would take the push (and its min_gap).
    deferred.preferences(timezone="UTC", quiet_hours=quiet, categories={"competition": False})
    deferred.send(minutes=20, kind="run")
    [held] = wait_for("the deferred badge in the inbox", deferred.inbox)
    assert (held["pushed"], held["push_reason"]) == (False, "quiet_hours")
    assert datetime.fromisoformat(held["held_until"]) == end

    reminded = Phone(stack, f"{user}-streak").register()
    reminded.preferences(timezone="UTC", quiet_hours=quiet)
    for days_ago in (3, 2, 1):  # a 3-day streak, not yet done today: streak-at-risk holds
        reminded.send(minutes=10, kind="yoga", occurred_at=now - timedelta(days=days_ago))
    stack.drain(delayed=False)  # the deferred badge waits on the queue: do not wait for it here
    tally = run_schedule("streak-at-risk", [reminded.user])
    assert tally.decisions == {"defer:quiet_hours": 1}
    assert run_schedule("streak-at-risk", [reminded.user]).decisions == {"defer:quiet_hours": 1}  # a second run…
    assert [m["title"] for m in reminded.inbox()].count("Keep your 3-day streak") == 1  # …is the same message
    reminded.send(minutes=10, kind="yoga")  # today's workout: the reminder is no longer true

    [push] = wait_for("the released badge push", deferred.pushes, timeout=150)
    assert push["data"]["message_id"] == held["message_id"], (push, deferred.inbox())
    assert datetime.now(UTC) >= end
    released = lambda: next(m for m in deferred.inbox() if m["message_id"] == held["message_id"])  # noqa: E731
    assert wait_for("the inbox to show it pushed", lambda: released()["pushed"])
    wait_for("the stale reminder to leave the inbox", lambda: all("streak" not in m["title"] for m in reminded.inbox()))
    assert all(p["notification"]["title"] != "Keep your 3-day streak" for p in reminded.pushes())


def test_delivery_killed_after_fcm_took_part_of_a_batch_resends_with_the_same_tag_and_shows_once(
    stack, user, monkeypatch
):
    import engage.services.deliver as deliver

    real = deliver.send_batch
    phones = [Phone(stack, f"{user}-{n}").register().no_quiet_hours_now() for n in range(4)]
    ours, crashed = {phone.token for phone in phones}, []

    async def crash_after_half(app, pushes, now):
        mine = [push for push in pushes if push.token in ours]
        if mine and not crashed:  # the first batch holding our phones' pushes (not a straggler of another test)
            crashed.append(True)
            await real(app, mine[: max(1, len(mine) // 2)], now)  # FCM accepts these…
            raise RuntimeError("killed midway")  # …and the function dies before it can record anything
        return await real(app, pushes, now)

    monkeypatch.setattr(deliver, "send_batch", crash_after_half)
    for phone in phones:
        phone.send(minutes=20, kind="run")
    wait_for("every phone's push", lambda: all(phone.pushes() for phone in phones), timeout=60)
    time.sleep(2.0)
    resent = [phone for phone in phones if len(phone.pushes()) == 2]
    assert resent, "no message was sent twice: the crash did not happen after FCM accepted"
    for phone in phones:
        tags = {_tag(p) for p in phone.pushes()}
        assert len(tags) == 1 and len(phone.tray()) == 1  # the resend carries the same tag: shown once
        assert phone.inbox()[0]["message_id"] in tags


def test_delivery_that_keeps_failing_ends_in_the_dead_letter_queue_with_its_reason_and_a_redrive_sends_it(
    stack, user, monkeypatch
):
    import engage.services.deliver as deliver
    from engage.push.sender import send_batch

    async def always_crash(app, pushes, now):
        raise RuntimeError("FCM client exploded")

    monkeypatch.setattr(deliver, "send_batch", always_crash)
    monkeypatch.setattr(deliver, "MAX_ATTEMPTS", 2)
    phone = Phone(stack, user).register().no_quiet_hours_now()
    phone.send(minutes=20, kind="run")
    [message] = wait_for("the inbox row", phone.inbox)

    def dead() -> list[dict[str, Any]]:
        return [d for d in stack.dead_letters() if message["message_id"] in d["body"]]

    [letter] = wait_for("the job in the dead-letter queue", dead, timeout=30)
    assert "gave up after 2 attempts" in letter["attributes"]["reason"]
    assert "FCM client exploded" in letter["attributes"]["reason"]
    assert phone.pushes() == []

    # Once the cause is fixed, the operator redrives the dead letters to DeliveryQueue: the job is sent
    # (it used to be skipped as already done, its attempt having been marked done before it was set aside).
    monkeypatch.setattr(deliver, "send_batch", send_batch)
    record = {"messageId": "redriven", "receiptHandle": "r", "body": letter["body"], "eventSource": "aws:sqs",
              "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}}  # fmt: skip
    assert _invoke(stack, "DeliverFunction", {"Records": [record]}) == {"batchItemFailures": []}
    assert [p["data"]["message_id"] for p in phone.pushes()] == [message["message_id"]]


def _invoke(stack: Any, function: str, event: dict[str, Any]) -> Any:
    from engage.local.server import HandlerPool, LambdaContext

    context = LambdaContext(function, "test", deadline=time.monotonic() + 30)
    return HandlerPool(stack.template.functions[function]).invoke(event, context)


def test_a_ledger_record_delivered_twice_stores_one_message_and_pushes_once(stack, user):
    from engage.store.models import LedgerItem

    phone = Phone(stack, user).register().no_quiet_hours_now()
    phone.send(minutes=20, kind="run")
    wait_for("the push", phone.pushes)
    [row] = [item for item in LedgerItem.query(user) if item.facts]
    record = {"eventName": "INSERT", "eventSource": "aws:dynamodb",
              "dynamodb": {"NewImage": row.serialize(), "SequenceNumber": "1"}}  # fmt: skip

    assert _invoke(stack, "NotifyFunction", {"Records": [record, record]}) == {"batchItemFailures": []}
    time.sleep(2.0)  # the re-queued job, if any, has been through deliver
    assert len(phone.inbox()) == 1 and len(phone.pushes()) == 1


def test_an_sqs_job_delivered_twice_is_sent_once(stack, user):
    from engage.notify.jobs import DeliveryJob

    phone = Phone(stack, user).register()
    job = DeliveryJob(message_id="01KAS5N3J1X5Q7Y0D6Z8W9V4T2", user_id=user, trigger="badge-earned", title="Hi",
                      body="Once", valid_until=datetime.now(UTC) + timedelta(hours=1))  # fmt: skip
    record = {"messageId": "m-1", "receiptHandle": "r", "body": job.model_dump_json(), "eventSource": "aws:sqs",
              "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}}  # fmt: skip
    assert _invoke(stack, "DeliverFunction", {"Records": [record]}) == {"batchItemFailures": []}
    again = {**record, "messageId": "m-2"}  # SQS's at-least-once: the same job again
    assert _invoke(stack, "DeliverFunction", {"Records": [again]}) == {"batchItemFailures": []}
    assert [p["notification"]["body"] for p in phone.pushes()] == ["Once"]


def test_the_same_job_twice_in_one_batch_is_sent_once_and_neither_copy_is_left_waiting(stack, user):
    """A release that comes again re-queues its push (it may have died before queueing it): both copies can
    arrive in one batch. The second one handed back would wait out the queue's 6-minute visibility timeout."""
    from engage.notify.jobs import DeliveryJob

    phone = Phone(stack, user).register()
    job = DeliveryJob(message_id=str(ULID()), user_id=user, trigger="badge-earned", title="Hi", body="Twice queued",
                      valid_until=datetime.now(UTC) + timedelta(hours=1))  # fmt: skip
    records = [{"messageId": f"m-{n}", "receiptHandle": "r", "body": job.model_dump_json(), "eventSource": "aws:sqs",
                "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}} for n in (1, 2)]  # fmt: skip
    assert _invoke(stack, "DeliverFunction", {"Records": records}) == {"batchItemFailures": []}
    assert [p["notification"]["body"] for p in phone.pushes()] == ["Twice queued"]


def test_a_job_sent_but_not_recorded_as_done_fails_nothing_and_is_not_sent_again(stack, user, monkeypatch):
    import engage.services.deliver as deliver
    from engage.notify.jobs import DeliveryJob

    # Given an idempotency table that refuses to record the first job of a batch as done
    real, refused = deliver._idempotency, []
    jobs = [DeliveryJob(message_id=str(ULID()), user_id=user, trigger="badge-earned", title="Hi", body=f"Job {n}",
                        valid_until=datetime.now(UTC) + timedelta(hours=1)) for n in range(3)]  # fmt: skip

    class Flaky:
        def __init__(self) -> None:
            self.layer = real()

        def __getattr__(self, name: str) -> Any:
            return getattr(self.layer, name)

        def save_success(self, data: dict, result: dict) -> None:
            if data["key"] == jobs[0].idempotency_key:  # (the done marks go out together, in no set order)
                refused.append(data)
                raise RuntimeError("DynamoDB said no")
            self.layer.save_success(data, result)

    monkeypatch.setattr(deliver, "_idempotency", Flaky)
    phone = Phone(stack, user).register()
    records = [{"messageId": f"m-{n}", "receiptHandle": "r", "body": job.model_dump_json(), "eventSource": "aws:sqs",
                "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}} for n, job in enumerate(jobs)]  # fmt: skip

    # When the batch is delivered, and then SQS hands out the same messages again
    first = _invoke(stack, "DeliverFunction", {"Records": records})
    again = _invoke(
        stack, "DeliverFunction", {"Records": [{**r, "messageId": f"{r['messageId']}-again"} for r in records]}
    )

    # Then the batch did not fail (which would have made SQS resend all three), and each job went out once
    assert first == {"batchItemFailures": []} and refused
    assert sorted(p["notification"]["body"] for p in phone.pushes()) == ["Job 0", "Job 1", "Job 2"]
    assert again["batchItemFailures"] == [{"itemIdentifier": "m-0-again"}]  # still claimed: left for later


def _a_job_each(stack: Any, prefix: str, users: int, body: str) -> tuple[list[Phone], list[dict[str, Any]]]:
    """New users with a registered phone each, and the SQS records of one delivery job for each of them."""
    from engage.notify.jobs import DeliveryJob

    phones = [Phone(stack, f"{prefix}-{ULID()}").register() for _ in range(users)]
    jobs = [DeliveryJob(message_id=str(ULID()), user_id=phone.user, trigger="badge-earned", title="Hi", body=body,
                        valid_until=datetime.now(UTC) + timedelta(hours=1)) for phone in phones]  # fmt: skip
    records = [{"messageId": f"m-{n}", "receiptHandle": "r", "body": job.model_dump_json(), "eventSource": "aws:sqs",
                "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}} for n, job in enumerate(jobs)]  # fmt: skip
    return phones, records


def test_a_batchs_claims_device_queries_and_done_marks_go_out_together_not_one_after_the_other(stack, monkeypatch):
    """A batch of 500 jobs makes about 1,500 DynamoDB calls; one after the other, at a few ms each in AWS,
    they took seconds."""
    import threading

    import engage.services.deliver as deliver
    from engage.store import devices

    # Given DynamoDB calls that each take 100 ms, and five users with a job each
    in_flight, most = Counter[str](), Counter[str]()
    lock = threading.Lock()

    def slow(kind: str, call: Callable[..., T]) -> Callable[..., T]:
        def timed(*args: Any, **kwargs: Any) -> T:
            with lock:
                in_flight[kind] += 1
                most[kind] = max(most[kind], in_flight[kind])
            time.sleep(0.1)
            try:
                return call(*args, **kwargs)
            finally:
                with lock:
                    in_flight[kind] -= 1

        return timed

    real = deliver._idempotency()

    class Slow:
        save_inprogress = staticmethod(slow("claim", real.save_inprogress))
        save_success = staticmethod(slow("done", real.save_success))

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    monkeypatch.setattr(deliver, "_idempotency", Slow)
    monkeypatch.setattr(devices, "targets", slow("devices", devices.targets))
    phones, records = _a_job_each(stack, "together", 5, "Together")

    # When deliver handles the batch
    assert _invoke(stack, "DeliverFunction", {"Records": records}) == {"batchItemFailures": []}

    # Then the claims and device queries went out for the first job alone (it builds the clients), then for the
    # other four at once; the done marks for all five (each as soon as its job is settled); every phone got its push
    assert most == Counter(claim=4, devices=4, done=5)
    assert all([p["notification"]["body"] for p in phone.pushes()] == ["Together"] for phone in phones)


def test_a_cold_deliver_builds_its_idempotency_client_once_not_once_per_worker(stack, monkeypatch):
    import botocore.session

    import engage.services.deliver as deliver

    # Given a deliver whose idempotency layer (and its DynamoDB client) is not built yet, as at a cold start
    deliver._idempotency.cache_clear()
    built: list[str] = []
    create_client = botocore.session.Session.create_client

    def counted(self: Any, service: str, *args: Any, **kwargs: Any) -> Any:
        built.append(service)
        return create_client(self, service, *args, **kwargs)

    monkeypatch.setattr(botocore.session.Session, "create_client", counted)
    phones, records = _a_job_each(stack, "cold", 8, "Cold")

    # When its first batch is claimed by the workers together
    assert _invoke(stack, "DeliverFunction", {"Records": records}) == {"batchItemFailures": []}

    # Then the client was built once, by the first claim, before the workers started
    assert built == ["dynamodb"]
    assert all(len(phone.pushes()) == 1 for phone in phones)


def test_what_deliver_workers_print_goes_to_the_function_log_like_the_handler_itself(tmp_path, monkeypatch):
    import io
    import sys

    import engage.services.deliver as deliver
    from engage.local.server import _FunctionOutput

    # Given the local stack's stdout, which sends what a running handler prints to its log file
    terminal = io.StringIO()
    monkeypatch.setattr(sys, "stdout", _FunctionOutput(tmp_path / "functions.log", terminal))

    # When a handler's work runs on deliver's workers and prints (a log line)
    with _FunctionOutput.capturing():
        deliver._together(lambda n: print(f"worker line {n}"), [0, 1, 2])

    # Then every line is in the log, none on the console
    assert sorted((tmp_path / "functions.log").read_text().splitlines()) == [f"worker line {n}" for n in range(3)]
    assert terminal.getvalue() == ""


def test_a_malformed_delivery_job_is_dead_lettered_with_the_field_named(stack, user):
    record = {"messageId": f"bad-{user}", "receiptHandle": "r", "body": '{"kind": "push", "user_id": "' + user + '"}',
              "eventSource": "aws:sqs", "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}}  # fmt: skip
    assert _invoke(stack, "DeliverFunction", {"Records": [record]}) == {"batchItemFailures": []}
    [letter] = wait_for("the dead letter", lambda: [d for d in stack.dead_letters() if user in d["body"]])
    assert "malformed delivery job" in letter["attributes"]["reason"] and "message_id" in letter["attributes"]["reason"]


def test_every_aws_call_notify_and_deliver_make_is_granted_by_their_iam_policy(stack, user):
    """Least privilege, checked against what the code does: each call, by action and resource, in the template."""
    import json

    import boto3

    from engage.store.models import LedgerItem

    phone = Phone(stack, user).register().no_quiet_hours_now()
    sqs = boto3.client("sqs", endpoint_url=stack.sqs.endpoint, region_name="us-east-1")
    with stack.paused():  # the pollers wait: this test invokes the functions itself, on this thread
        phone.send(minutes=20, kind="run")
        [row] = [item for item in LedgerItem.query(user) if item.facts]
        record = {"eventName": "INSERT", "eventSource": "aws:dynamodb",
                  "dynamodb": {"NewImage": row.serialize(), "SequenceNumber": "1"}}  # fmt: skip
        with recorded_aws_calls() as by_notify:
            _invoke(stack, "NotifyFunction", {"Records": [record]})
        queued = sqs.receive_message(QueueUrl=stack.queue_urls["DeliveryQueue"], MaxNumberOfMessages=10)
        jobs = [m for m in queued.get("Messages", []) if user in m["Body"]]
        for message in queued.get("Messages", []):
            sqs.delete_message(QueueUrl=stack.queue_urls["DeliveryQueue"], ReceiptHandle=message["ReceiptHandle"])
        records = [{"messageId": m["MessageId"], "receiptHandle": "r", "body": m["Body"], "eventSource": "aws:sqs",
                    "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}} for m in jobs]  # fmt: skip
        stack.fcm.unregister(phone.token)  # so deliver also removes a device
        with recorded_aws_calls() as by_deliver:
            _invoke(stack, "DeliverFunction", {"Records": records})
    assert jobs and json.loads(jobs[0]["Body"])["user_id"] == user
    assert_granted(stack, "NotifyFunction", by_notify)
    assert_granted(stack, "DeliverFunction", by_deliver)


def test_deferred_releases_report_failures_per_user_and_dead_letter_malformed_jobs(stack, user, monkeypatch):
    import engage.services.notify as notify
    from engage.notify.jobs import DeferredRelease

    now = datetime.now(UTC)

    def job(user_id: str) -> str:
        return DeferredRelease(message_id="01KAS5N3J1X5Q7Y0D6Z8W9V4T2", user_id=user_id, trigger="badge-earned",
                               fact_key="k", fact={"type": "badge_awarded"}, created_at=now,
                               valid_until=now + timedelta(hours=1), deliver_at=now).model_dump_json()  # fmt: skip

    real = notify._release_user

    def failing_for_one(user_id, jobs, now, tally):
        if user_id.endswith("-broken"):
            raise RuntimeError("DynamoDB hiccup")
        return real(user_id, jobs, now, tally)

    monkeypatch.setattr(notify, "_release_user", failing_for_one)
    bodies = {"ok": job(user), "broken": job(f"{user}-broken"), "bad": '{"message_id": "' + user + '"}'}
    records = [{"messageId": name, "receiptHandle": "r", "body": body, "eventSource": "aws:sqs",
                "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}}
               for name, body in bodies.items()]  # fmt: skip
    assert _invoke(stack, "NotifyFunction", {"Records": records}) == {
        "batchItemFailures": [{"itemIdentifier": "broken"}]
    }
    held_dead_letters = "DeferredDeadLetterQueue"  # not the delivery jobs' queue: each redrives to its source
    [letter] = wait_for(
        "the malformed job's dead letter",
        lambda: [d for d in stack.dead_letters(held_dead_letters) if user in d["body"]],
    )
    assert "malformed deferred release" in letter["attributes"]["reason"]


def test_a_retry_fcm_asked_to_wait_long_for_is_not_sent_before_its_time(stack, user):
    from engage.notify.jobs import DeliveryJob
    from engage.push.firebase import firebase_app, run
    from engage.services.deliver import Received, deliver

    phone = Phone(stack, user).register()
    now = datetime.now(UTC)
    job = DeliveryJob(message_id="01KAS5N3J1X5Q7Y0D6Z8W9V4T3", user_id=user, trigger="badge-earned", title="Hi",
                      body="Later", valid_until=now + timedelta(hours=3), attempt=1,
                      not_before=now + timedelta(hours=1))  # fmt: skip
    early = deliver([Received("r-1", job.model_dump_json())], firebase_app(), run, now=now)
    assert not early.retry_records and not early.outcomes and phone.pushes() == []  # another hop, unsent
    due = deliver(
        [Received("r-2", job.model_dump_json())], firebase_app(), run, now=now + timedelta(hours=1, seconds=1)
    )
    assert due.outcomes == {"sent": 1}
    assert [p["notification"]["body"] for p in phone.pushes()] == ["Later"]

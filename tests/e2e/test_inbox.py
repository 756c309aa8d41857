"""The inbox over HTTP: newest first, unread count, read/unread/archive, someone else's message is not found."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from ulid import ULID

from engage.local import tokens
from engage.local.demo import http
from engage.store import inbox as store


def message(n: int, decision: str = "push", reason: str = "ok") -> store.Message:
    created = datetime.now(UTC) - timedelta(minutes=10 - n)
    return store.Message(
        message_id=str(ULID.from_datetime(created)), trigger="badge-earned", category="progress",
        title=f"New badge {n}", body="Nice work!", deep_link="fitquest://badges/first-workout",
        actions=[], push={"decision": decision, "reason": reason}, created_at=created,
        read_at=None, archived_at=None, opened_at=None,
    )  # fmt: skip


def post(url: str, headers: dict[str, str]) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST", headers=headers)) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def test_the_inbox_lists_every_message_and_marks_them(stack, user):
    sent = [message(0), message(1, "inbox", "quiet_hours"), message(2)]
    for m in sent:
        assert store.add(user, m)
    assert not store.add(user, sent[0])  # the notifier retrying stores nothing twice
    headers = {"authorization": f"Bearer {tokens.mint(user)}"}
    base = f"{stack.api_url}/v1/me/inbox"

    _, first = http("GET", f"{base}?limit=2", headers=headers)
    assert [m["title"] for m in first["messages"]] == ["New badge 2", "New badge 1"]
    assert first["unread"] == 3 and first["next_cursor"]
    assert (first["messages"][1]["pushed"], first["messages"][1]["push_reason"]) == (False, "quiet_hours")

    assert post(f"{base}/{sent[2].message_id}/read", headers) == 204
    assert post(f"{base}/{sent[1].message_id}/archive", headers) == 204
    _, after = http("GET", base, headers=headers)
    assert [m["title"] for m in after["messages"]] == ["New badge 2", "New badge 0"]
    assert after["unread"] == 1 and after["messages"][0]["read"] is True

    assert post(f"{base}/{sent[2].message_id}/unread", headers) == 204
    assert http("GET", base, headers=headers)[1]["unread"] == 2
    _, rest = http("GET", f"{base}?limit=1&cursor={http('GET', f'{base}?limit=1', headers=headers)[1]['next_cursor']}",
                   headers=headers)  # fmt: skip
    assert [m["title"] for m in rest["messages"]] == ["New badge 0"] and rest["unread"] is None  # counted once
    assert rest["next_cursor"] is None  # the last page says so, though it ended exactly at its limit
    assert http("GET", f"{base}?cursor=", headers=headers)[1]["unread"] == 2  # an empty cursor: the first page


def test_marking_a_message_that_is_not_yours_or_an_unknown_action(stack, user):
    theirs = message(0)
    store.add("someone-else", theirs)
    headers = {"authorization": f"Bearer {tokens.mint(user)}"}

    assert post(f"{stack.api_url}/v1/me/inbox/{theirs.message_id}/read", headers) == 404
    assert post(f"{stack.api_url}/v1/me/inbox/{theirs.message_id}/delete", headers) == 400
    assert post(f"{stack.api_url}/v1/me/inbox/{'x' * 2000}/read", headers) == 404


def test_archived_messages_do_not_make_a_listing_cost_more_queries_and_expired_ones_are_not_shown(stack, user):
    from engage.local.bench import count_dynamodb_calls
    from engage.services.inbox import mark_message, my_inbox

    live = message(9)
    for n in range(30):  # archived ones, newer than the live one
        archived = replace(  # not pushed: archiving it queues no "clear" for the shared stack
            message(0, "inbox", "quiet_hours"),
            message_id=str(ULID.from_datetime(datetime.now(UTC) - timedelta(seconds=n))),
        )
        store.add(user, archived)
        mark_message({"sub": user}, archived.message_id, "archive")
    store.add(user, replace(live, message_id=str(ULID.from_datetime(datetime.now(UTC) - timedelta(hours=1)))))
    old = datetime.now(UTC) - timedelta(days=31)  # past its 30 days, but DynamoDB's TTL has not removed it yet
    expired = replace(message(1), message_id=str(ULID.from_datetime(old)), created_at=old)
    store.add(user, expired)

    with stack.paused(), count_dynamodb_calls() as calls:
        answer = my_inbox({"sub": user}, limit=1, cursor=None)
    assert [m.title for m in answer.messages] == ["New badge 9"] and answer.unread == 1
    assert calls.operations["Query"] <= 2  # the page and the unread count, not a query per archived message

    headers = {"authorization": f"Bearer {tokens.mint(user)}"}
    assert post(f"{stack.api_url}/v1/me/inbox/{expired.message_id}/read", headers) == 404


def test_reading_then_archiving_a_pushed_message_clears_it_from_the_tray_once(stack, user, monkeypatch):
    import engage.services.inbox as inbox_service

    cleared: list[str] = []
    monkeypatch.setattr(inbox_service, "_clear_from_tray", lambda user_id, message_id, now: cleared.append(message_id))
    pushed = message(0)
    store.add(user, pushed)
    for action in ("read", "read", "archive"):
        inbox_service.mark_message({"sub": user}, pushed.message_id, action)
    assert cleared == [pushed.message_id]


def test_marking_a_seen_message_again_is_one_write_and_keeps_the_first_date(stack, user):
    from engage.local.bench import count_dynamodb_calls

    kept = message(0, "inbox", "quiet_hours")  # not pushed: marking it queues no "clear" for the shared stack
    message_id = kept.message_id
    store.add(user, kept)
    first = datetime.now(UTC) - timedelta(minutes=1)
    assert store.mark(user, message_id, "read", first)[1] is True
    with stack.paused(), count_dynamodb_calls() as calls:
        again, first_seen = store.mark(user, message_id, "read", first + timedelta(seconds=30))
        archived, archived_first = store.mark(user, message_id, "archive", first + timedelta(seconds=40))
    assert (first_seen, archived_first) == (False, False)  # seen already: no second "clear" for the tray
    assert again.read_at == first and archived.read_at == first and archived.archived_at is not None
    assert calls.operations == {"UpdateItem": 2}

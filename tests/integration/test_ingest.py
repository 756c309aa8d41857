"""Ingest against DynamoDB Local: exactly-once, concurrency, limits in local time, cost per request."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from engage.api.events import EventsRequest, ServerEventsRequest
from engage.config.loader import parse_yaml
from engage.services.config import forget_cached_config
from engage.services.ingest import ingest_client_events, ingest_server_events
from engage.services.me import my_progress
from engage.store import config_store
from engage.store.models import LedgerItem
from engage.store.progress import ledger_key, load_user

from ..conftest import FITQUEST


@pytest.fixture(scope="module", autouse=True)
def _rules_only(stack):
    """These tests are about exactly-once, limits and levels. Badges, streaks and quests add awards of their
    own (some only on weekends), so this module runs on the FitQuest config without them."""
    document, _ = parse_yaml(FITQUEST.read_text(), str(FITQUEST))
    rules_only = {k: v for k, v in document.items() if k not in ("badges", "streaks", "quests", "notifications")}
    config_store.publish("fitquest", rules_only)
    forget_cached_config()
    yield
    config_store.publish("fitquest", document)
    forget_cached_config()


def workout(event_id: str, at: datetime, minutes: int = 30, kind: str = "run") -> dict:
    return {"id": event_id, "type": "workout_completed", "occurred_at": at.isoformat(),
            "properties": {"minutes": minutes, "kind": kind}}  # fmt: skip


def send(user_id: str, events: list[dict], timezone: str | None = None, name: str | None = None):
    context = {"timezone": timezone} if timezone else None
    request = EventsRequest.model_validate({"events": events, "context": context})
    claims = {"sub": user_id, **({"name": name} if name else {})}
    return ingest_client_events(request, claims)


def test_replayed_batch_awards_nothing(user_id):
    now = datetime.now(UTC)
    batch = [workout(f"{user_id}-a", now - timedelta(minutes=3)), workout(f"{user_id}-b", now - timedelta(minutes=2))]
    first = send(user_id, batch)

    replay = send(user_id, batch)

    assert first.accepted == 2 and first.progress.gained == {"xp": 120, "coins": 10}
    assert replay.accepted == 0 and replay.duplicates == 2
    assert replay.progress.gained == {}
    assert load_user(user_id).balances == {"xp": 120, "coins": 10}


def test_a_retry_after_the_late_window_closed_reports_the_applied_event_as_duplicate(user_id, dynamodb_calls):
    # Accepted one minute inside the 7-day window; the answer was lost and the app retries ten minutes later.
    now = datetime.now(UTC)
    batch = [workout(f"{user_id}-old", now - timedelta(days=7) + timedelta(minutes=1))]
    first = send(user_id, batch)
    request = EventsRequest.model_validate({"events": [*batch, workout(f"{user_id}-older", now - timedelta(days=8))]})

    retry = ingest_client_events(request, {"sub": user_id}, now=now + timedelta(minutes=10))

    assert first.accepted == 1
    assert [(r.status, r.code) for r in retry.results] == [("duplicate", "duplicate"), ("rejected", "too_late")]
    assert dynamodb_calls.operations["BatchGetItem"] == 1  # only because the request had rejected events


def test_a_rejected_event_stays_rejected_when_a_later_one_with_its_id_is_applied_in_the_same_request(user_id):
    now = datetime.now(UTC)
    bad, good = workout(f"{user_id}-r1", now, minutes=-5), workout(f"{user_id}-r1", now, minutes=20)

    answer = send(user_id, [bad, good])

    assert [(r.status, r.code) for r in answer.results] == [("rejected", "bad_property"), ("accepted", None)]


def test_replay_inside_a_larger_batch_applies_only_the_new_events(user_id):
    now = datetime.now(UTC)
    send(user_id, [workout(f"{user_id}-a", now - timedelta(minutes=5))])

    answer = send(user_id, [workout(f"{user_id}-a", now - timedelta(minutes=5)), workout(f"{user_id}-b", now)])

    assert [r.status for r in answer.results] == ["duplicate", "accepted"]
    assert load_user(user_id).balances["xp"] == 120


def _both_read_before_either_writes(monkeypatch, parties: int) -> None:
    """Make the race real: every request reads the user before any of them commits."""
    import engage.services.ingest as service

    barrier = threading.Barrier(parties, timeout=10)
    first_read = threading.local()

    def load_then_wait(user_id):
        state = load_user(user_id)
        if not getattr(first_read, "done", False):
            first_read.done = True
            barrier.wait()
        return state

    monkeypatch.setattr(service, "load_user", load_then_wait)


def test_two_concurrent_identical_requests_apply_once(user_id, monkeypatch):
    now = datetime.now(UTC)
    batch = [workout(f"{user_id}-{i}", now - timedelta(minutes=i)) for i in range(3)]
    _both_read_before_either_writes(monkeypatch, 2)
    answers = []

    def post():
        answers.append(send(user_id, batch))

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(a.accepted for a in answers) == [0, 3]
    assert sorted(a.duplicates for a in answers) == [0, 3]
    assert load_user(user_id).balances == {"xp": 180, "coins": 15}
    rows = list(LedgerItem.query(user_id))
    assert len(rows) == 3


def test_concurrent_different_events_lose_no_update(user_id, monkeypatch):
    now = datetime.now(UTC)
    _both_read_before_either_writes(monkeypatch, 4)

    def post(n: int):
        send(user_id, [workout(f"{user_id}-{n}", now - timedelta(seconds=n), minutes=10 + n)])

    threads = [threading.Thread(target=post, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    state = load_user(user_id)
    assert state.balances["xp"] == sum(2 * (10 + n) for n in range(4))
    assert state.version == 4


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (42, "the event: is not an object (got 42). Fix: send an object with its fields"),
        ({"occurred_at": "2026-11-23"}, "occurred_at: has no UTC offset (got '2026-11-23'). Fix: add one"),
        ({"occurred_at": "yesterday"}, "occurred_at: is not a date-time (got 'yesterday'). Fix: send ISO 8601"),
        (
            {"properties": {f"p{n}": 1 for n in range(51)}},
            "properties: has 51 items, more than 50. Fix: send at most 50",
        ),
        ({"user_id": "eve"}, "user_id: unknown field. Fix: remove it or check its spelling"),
    ],
    ids=["not-an-object", "a-date", "not-a-time", "too-many-properties", "user-id-from-an-app"],
)
def test_a_malformed_event_is_told_what_to_send_in_words_not_pydantics(user_id, raw, reason):
    # Before: "Input should be a valid dictionary or instance of EventIn", "Input should have timezone info",
    # "Extra inputs are not permitted (got 'eve')", with the user_id echoed back on the app's own route
    event = {**workout(f"{user_id}-1", datetime.now(UTC)), **raw} if isinstance(raw, dict) else raw

    [result] = send(user_id, [event]).results

    assert (result.status, result.code) == ("rejected", "invalid_event")
    assert (result.reason or "").startswith(reason), result.reason
    assert result.user_id is None


def test_mixed_valid_and_invalid_events_in_one_batch(user_id):
    now = datetime.now(UTC)
    events = [
        workout(f"{user_id}-ok", now),
        {"id": f"{user_id}-type", "type": "teleported", "occurred_at": now.isoformat()},
        workout(f"{user_id}-kind", now, kind="swim"),
        {"id": f"{user_id}-no-time", "type": "app_opened"},
        workout(f"{user_id}-future", now + timedelta(hours=1)),
        workout(f"{user_id}-old", now - timedelta(days=8)),
        {"id": f"{user_id}-buy", "type": "purchase_completed", "occurred_at": now.isoformat(),
         "properties": {"sku": "x", "amount": 5}},
        {"id": f"{user_id}-open", "type": "app_opened", "occurred_at": now.isoformat()},
    ]  # fmt: skip

    answer = send(user_id, events)

    codes = [(r.status, r.code) for r in answer.results]
    assert codes == [
        ("accepted", None),
        ("rejected", "unknown_type"),
        ("rejected", "bad_property"),
        ("rejected", "invalid_event"),
        ("rejected", "in_future"),
        ("rejected", "too_late"),
        ("rejected", "server_only"),
        ("accepted", None),
    ]
    assert "occurred_at" in answer.results[3].reason
    assert answer.progress.gained == {"xp": 65, "coins": 5}
    assert load_user(user_id).balances == {"xp": 65, "coins": 5}


def test_daily_limit_resets_at_the_users_local_midnight(user_id):
    # Given a user in Auckland and the last local midnight there that lies a few hours back
    zone = ZoneInfo("Pacific/Auckland")
    now = datetime.now(UTC)
    midnight = (now - timedelta(hours=3)).astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    before = [workout(f"{user_id}-d1-{i}", midnight - timedelta(minutes=10 + i)) for i in range(6)]
    after = [workout(f"{user_id}-d2-{i}", midnight + timedelta(minutes=1 + i)) for i in range(6)]

    # When six workouts land on each side of that midnight
    answer = send(user_id, before + after, timezone="Pacific/Auckland")

    # Then five are paid on each local day
    paid = [r.id for r in answer.results if r.awards]
    assert len(paid) == 10
    assert {p.rsplit("-", 2)[1] for p in paid} == {"d1", "d2"}
    assert answer.progress.gained["coins"] == 50


def test_same_instants_fall_on_one_local_day_for_a_utc_user(user_id):
    # Auckland's midnight is 11:00 or 12:00 UTC: mid-day for a UTC user, so one local day.
    zone = ZoneInfo("Pacific/Auckland")
    midnight = (
        (datetime.now(UTC) - timedelta(hours=3)).astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    )
    events = [workout(f"{user_id}-{i}", midnight + timedelta(minutes=i - 6)) for i in range(12)]

    answer = send(user_id, events, timezone="UTC")

    assert sum(1 for r in answer.results if r.awards) == 5


def test_request_costs_one_read_and_one_transaction_whatever_its_size(user_id, dynamodb_calls):
    now = datetime.now(UTC)
    send(f"{user_id}-warm", [workout(f"{user_id}-warm", now)])  # config is read once per 60 s, not per request
    for size in (1, 50):
        dynamodb_calls.operations.clear()
        events = [workout(f"{user_id}-{size}-{i}", now - timedelta(seconds=i)) for i in range(size)]

        send(f"{user_id}-{size}", events)

        assert dict(dynamodb_calls.operations) == {"GetItem": 1, "TransactWriteItems": 1}


def test_hundred_events_of_one_user_fit_dynamodbs_transaction_limit(user_id, dynamodb_calls):
    now = datetime.now(UTC)
    events = [{"id": f"{user_id}-{i}", "type": "app_opened", "occurred_at": (now - timedelta(seconds=i)).isoformat()}
              for i in range(100)]  # fmt: skip

    answer = send(user_id, events)

    assert answer.accepted == 100
    assert dynamodb_calls.operations["TransactWriteItems"] == 2  # 1 user item + 99 rows, then the 100th
    assert len(list(LedgerItem.query(user_id))) == 100
    assert send(user_id, events).duplicates == 100


def test_ledger_rows_name_rule_and_event_and_expire_only_without_facts(user_id):
    now = datetime.now(UTC)
    send(user_id, [workout(f"{user_id}-paid", now), workout(f"{user_id}-short", now, minutes=5)])

    paid = LedgerItem.get(user_id, ledger_key("client", f"{user_id}-paid"))
    short = LedgerItem.get(user_id, ledger_key("client", f"{user_id}-short"))

    assert {(f["type"], f["rule"], f["event_id"]) for f in paid.facts} == {
        ("points_awarded", "workout-xp", f"{user_id}-paid")
    }
    assert paid.expires_at is None  # history is kept
    assert short.facts == [] and short.expires_at is not None  # a pure dedupe marker, kept 35 days
    assert short.expires_at - now >= timedelta(days=35) - timedelta(minutes=1)


def test_level_up_fact_and_profile_from_context_and_jwt(user_id):
    now = datetime.now(UTC)
    answer = send(user_id, [workout(f"{user_id}-long", now, minutes=60)], timezone="Europe/Berlin", name="Ada")

    assert answer.progress.level.before.number == 1
    assert answer.progress.level.after.name == "Mover"
    assert any(f["type"] == "level_up" and f["level"] == 2 for f in answer.results[0].facts)
    me = my_progress({"sub": user_id})
    assert (me.display_name, me.timezone, me.level.number, me.currencies["xp"].balance) == (
        "Ada",
        "Europe/Berlin",
        2,
        120,
    )


def test_server_events_group_by_user_and_accept_server_only_types(user_id):
    now = datetime.now(UTC).isoformat()
    request = ServerEventsRequest.model_validate({"events": [
        {"id": f"{user_id}-o1", "user_id": f"{user_id}-a", "type": "purchase_completed", "occurred_at": now,
         "properties": {"sku": "pro", "amount": 12.5}},
        {"id": f"{user_id}-o2", "user_id": f"{user_id}-b", "type": "purchase_completed", "occurred_at": now,
         "properties": {"sku": "pro", "amount": 3}},
        {"id": f"{user_id}-w", "user_id": f"{user_id}-a", "type": "app_opened", "occurred_at": now},
    ]})  # fmt: skip

    answer = ingest_server_events(request)

    assert answer.accepted == 3
    assert answer.progress[f"{user_id}-a"].balances == {"xp": 5, "coins": 12}
    assert answer.progress[f"{user_id}-b"].balances == {"xp": 0, "coins": 3}
    assert [r.user_id for r in answer.results] == [f"{user_id}-a", f"{user_id}-b", f"{user_id}-a"]


@pytest.mark.parametrize("bad_zone", ["Mars/Olympus", "GMT+25"])
def test_unknown_time_zone_in_context_is_refused(bad_zone):
    with pytest.raises(ValueError, match="unknown time zone"):
        EventsRequest.model_validate({"events": [{}], "context": {"timezone": bad_zone}})


def test_an_app_cannot_claim_the_id_of_a_backend_event(user_id):
    # Given the app sends an event with the id the backend will give a purchase
    now = datetime.now(UTC).isoformat()
    send(user_id, [{"id": "order-7", "type": "app_opened", "occurred_at": now}])

    # When the backend reports that purchase
    purchase = {"id": "order-7", "user_id": user_id, "type": "purchase_completed", "occurred_at": now,
                "properties": {"sku": "pro", "amount": 20}}  # fmt: skip
    answer = ingest_server_events(ServerEventsRequest.model_validate({"events": [purchase]}))

    # Then it is applied: app and backend ids live apart
    assert answer.accepted == 1
    assert load_user(user_id).balances["coins"] == 20


@pytest.mark.parametrize(
    ("properties", "code", "problem"),
    [
        ({"": 1}, "invalid_event", "properties"),
        ({"bad name": 1}, "invalid_event", "properties"),
        ({"minutes": float("nan"), "kind": "run"}, "invalid_event", "finite"),
        ({"extra": 1e300, "minutes": 20, "kind": "run"}, "invalid_event", "properties.extra"),
        ({"blob": "x" * 1000, **{f"p{i}": "y" * 1000 for i in range(20)}}, "invalid_event", "bytes"),
        ({"minutes": 10**40, "kind": "run"}, "invalid_event", "more than 38 digits"),
        ({"extra": 1e-131, "minutes": 20, "kind": "run"}, "invalid_event", "between 1e-130 and 1e125"),
        (
            {"extra": {"nested": 1}, "minutes": 20, "kind": "run"},
            "invalid_event",
            "is an object (got {'nested': 1}). Fix:",
        ),
    ],
    ids=["empty-name", "space-in-name", "nan", "out-of-range", "too-large", "too-many-digits", "underflow", "object"],
)
def test_values_dynamodb_cannot_store_are_rejected_per_event_not_a_500(user_id, properties, code, problem):
    now = datetime.now(UTC)
    bad = {
        "id": f"{user_id}-bad",
        "type": "workout_completed",
        "occurred_at": now.isoformat(),
        "properties": properties,
    }

    answer = send(user_id, [bad, workout(f"{user_id}-ok", now)])

    assert [(r.status, r.code) for r in answer.results] == [("rejected", code), ("accepted", None)]
    assert problem in answer.results[0].reason


def test_the_properties_limit_counts_utf8_bytes_so_non_latin_text_gets_the_same_16_kb(user_id):
    now = datetime.now(UTC)
    japanese = {"minutes": 20, "kind": "run", **{f"note{i}": "走" * 980 for i in range(5)}}  # ~14.7 KB as UTF-8
    too_much = {"minutes": 20, "kind": "run", **{f"note{i}": "走" * 980 for i in range(6)}}  # ~17.7 KB

    answer = send(user_id, [workout(f"{user_id}-ja", now) | {"properties": japanese},
                            workout(f"{user_id}-big", now) | {"properties": too_much}])  # fmt: skip

    assert [r.status for r in answer.results] == ["accepted", "rejected"]
    assert "17,7" in answer.results[1].reason and "UTF-8" in answer.results[1].reason


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_time_outside_the_calendar_in_utc_is_one_rejected_event(user_id, moment):
    # .NET and Unity write DateTimeOffset.MinValue for "no date"; in UTC it falls before year 1
    bad = {**workout(f"{user_id}-bad", datetime.now(UTC)), "occurred_at": moment}

    answer = send(user_id, [bad, workout(f"{user_id}-ok", datetime.now(UTC))])

    assert [(r.status, r.code) for r in answer.results] == [("rejected", "invalid_event"), ("accepted", None)]
    assert "occurred_at: is before year 1 or after 9999 in UTC" in answer.results[0].reason


def test_an_award_too_large_to_keep_pays_nothing_and_says_so_instead_of_failing(user_id):
    # Given a purchase whose amount makes `int(event.amount)` coins more than one award may pay
    now = datetime.now(UTC).isoformat()
    events = [{"id": f"{user_id}-{n}", "user_id": user_id, "type": "purchase_completed", "occurred_at": now,
               "properties": {"sku": "a", "amount": amount}} for n, amount in enumerate((1e12, 5))]  # fmt: skip

    answer = ingest_server_events(ServerEventsRequest.model_validate({"events": events}))

    assert [r.status for r in answer.results] == ["accepted", "accepted"]
    assert answer.results[0].awards == {} and "more than one award may pay" in answer.results[0].warnings[0]
    assert load_user(user_id).balances["coins"] == 5


def test_a_non_object_entry_is_one_rejected_event(user_id):
    answer = send(user_id, [None, workout(f"{user_id}-ok", datetime.now(UTC))])  # type: ignore[list-item]

    assert [(r.index, r.status, r.code) for r in answer.results] == [
        (0, "rejected", "invalid_event"),
        (1, "accepted", None),
    ]


def test_number_properties_are_doubles_in_expressions_whatever_the_json(user_id, monkeypatch):
    # 10 and 10.0 are the same amount: int(event.amount) must see the same value for both.
    now = datetime.now(UTC).isoformat()
    events = [{"id": f"{user_id}-{n}", "user_id": user_id, "type": "purchase_completed", "occurred_at": now,
               "properties": {"sku": "a", "amount": amount}} for n, amount in enumerate((10, 10.0, 10.9))]  # fmt: skip

    answer = ingest_server_events(ServerEventsRequest.model_validate({"events": events}))

    assert [r.awards for r in answer.results] == [{"coins": 10}] * 3


def test_a_transaction_dynamodb_keeps_throttling_ends_in_503_busy_with_retry_after(stack, user_id, monkeypatch):
    import json

    from pynamodb.exceptions import TransactWriteError, VerboseClientError

    import engage.services.ingest as ingest
    import engage.store.progress as progress
    from engage.local.server import HandlerPool, LambdaContext, http_api_event

    # Given DynamoDB throttling every transaction of the request (the whole request, not one item)
    def throttled(outcome, source, now):
        cause = VerboseClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "x")
        raise progress._conflict(TransactWriteError("refused", cause), outcome.applied)

    monkeypatch.setattr(ingest, "commit", throttled)
    monkeypatch.setattr(ingest, "back_off", lambda attempt: None)
    route = next(r for r in stack.template.routes if r.path == "/v1/events")
    body = json.dumps({"events": [workout(f"{user_id}-w", datetime.now(UTC))]}).encode()
    event = http_api_event(route, "POST", route.path, "", {"content-type": "application/json"}, body, {},
                           {"jwt": {"claims": {"sub": user_id}, "scopes": None}})  # fmt: skip

    # When the app sends an event
    answer = HandlerPool(stack.template.functions["IngestFunction"]).invoke(event, LambdaContext("IngestFunction", "t"))

    # Then it is told to come back (its events are safe to resend), not that the server failed
    assert answer["statusCode"] == 503 and answer["headers"]["Retry-After"] == "1"
    assert json.loads(answer["body"])["error"] == "busy"


def test_an_id_too_long_to_be_one_is_not_echoed_back(user_id):
    # 100 such events echoed whole could push the answer past Lambda's 6 MB; the reason names the field
    now = datetime.now(UTC).isoformat()
    huge = "u" * 100_000
    request = ServerEventsRequest.model_validate(
        {
            "events": [
                {"id": f"{user_id}-1", "user_id": huge, "type": "app_opened", "occurred_at": now},
                {"id": huge, "user_id": user_id, "type": "app_opened", "occurred_at": now},
            ]
        }
    )

    first, second = ingest_server_events(request).results

    assert (first.status, first.id, first.user_id) == ("rejected", f"{user_id}-1", None)
    assert (second.status, second.id, second.user_id) == ("rejected", None, user_id)
    assert len(first.reason or "") < 300 and len(second.reason or "") < 300

"""Through the local stack over HTTP, as an app and a backend would call it."""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from engage.local import tokens
from engage.local.demo import http
from engage.local.server import SERVER_KEY_HEADER

from .conftest import assert_granted, recorded_aws_calls


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def event(event_id: str, type_: str = "workout_completed", **properties) -> dict:
    if type_ == "workout_completed" and not properties:
        properties = {"minutes": 20, "kind": "run"}
    return {"id": event_id, "type": type_, "occurred_at": datetime.now(UTC).isoformat(), "properties": properties}


def test_app_posts_events_and_reads_its_progress(stack, user):
    token = tokens.mint(user, name="Ada Lovelace")
    body = {"events": [event(f"{user}-1"), event(f"{user}-2", "app_opened")],
            "context": {"timezone": "Europe/Berlin", "locale": "de-DE", "app_version": "2.3.0"}}  # fmt: skip

    status, answer = http("POST", f"{stack.api_url}/v1/events", body, bearer(token))
    me_status, me = http("GET", f"{stack.api_url}/v1/me", headers=bearer(token))

    assert status == 200 and answer["accepted"] == 2
    assert answer["progress"]["gained"] == {"xp": 45, "coins": 5}
    assert me_status == 200
    assert me["user_id"] == user and me["display_name"] == "Ada Lovelace"
    assert (me["timezone"], me["locale"]) == ("Europe/Berlin", "de-DE")
    assert me["currencies"]["xp"] == {"name": "Experience", "balance": 45, "earned": 45}
    assert me["level"]["number"] == 1 and me["level"]["to_next"] == 55


def test_every_aws_call_ingest_and_the_read_api_make_is_granted_by_their_iam_policy(stack, user, monkeypatch):
    """Least privilege, checked against what the code does (DynamoDB Local does not enforce IAM)."""
    import engage.services.rank_estimates as rank_estimates

    monkeypatch.setattr(rank_estimates, "_stats_cache", {})  # so the ingest reads a histogram, as a cold one does
    auth = bearer(tokens.mint(user))
    with stack.paused():  # only the HTTP server's calls are recorded
        with recorded_aws_calls() as by_ingest:
            rejected = event(f"{user}-2", "no_such_type")  # a rejected event: were they applied before?
            body = {"events": [event(f"{user}-1"), rejected]}
            status, answer = http("POST", f"{stack.api_url}/v1/events", body, auth)
        assert status == 200 and answer["progress"]["leaderboards"]
        assert ("dynamodb:BatchGetItem", stack.tables["LedgerTable"]) in by_ingest
        with recorded_aws_calls() as by_api:
            for method, path, body in (
                ("GET", "/v1/me", None),
                ("GET", "/v1/me/history", None),
                ("GET", "/v1/leaderboards/weekly-xp?around=me", None),
                (
                    "POST",
                    "/v1/me/devices",
                    {"device_id": "d1", "fid": "c" * 22, "platform": "ios", "timezone": "Asia/Tokyo"},
                ),
                ("PUT", "/v1/me/preferences", {"locale": "en-GB"}),
                ("GET", "/v1/me/inbox", None),
            ):
                status, answer = http(method, f"{stack.api_url}{path}", body, auth)
                assert status == 200, (path, answer)
    assert_granted(stack, "IngestFunction", by_ingest)
    assert_granted(stack, "ApiFunction", by_api)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer not-a-jwt"},
        {"authorization": "Basic dXNlcjpwYXNz"},
    ],
    ids=["missing", "garbage", "wrong-scheme"],
)
def test_requests_without_a_valid_jwt_get_401(stack, headers):
    for method, path in (("POST", "/v1/events"), ("GET", "/v1/me")):
        status, answer = http(method, f"{stack.api_url}{path}", {"events": [event("x")]}, headers)
        assert (status, answer) == (401, {"message": "Unauthorized"})


def test_a_token_sent_without_the_bearer_prefix_is_accepted_as_api_gateway_does(stack, user):
    # AWS's JWT authorizer takes the token alone or after "Bearer "; the local stack refused the bare token
    status, answer = http("GET", f"{stack.api_url}/v1/me", headers={"authorization": tokens.mint(user)})
    assert (status, answer["user_id"]) == (200, user)


def test_expired_jwt_gets_401(stack, user):
    token = tokens.mint(user, ttl_seconds=-1)
    status, _ = http("GET", f"{stack.api_url}/v1/me", headers=bearer(token))
    assert status == 401


def test_jwt_signed_by_another_key_or_for_another_audience_gets_401(stack, user):
    forged = jwt.encode({"sub": user, "iss": tokens.ISSUER, "aud": tokens.AUDIENCE, "iat": int(time.time()),
                         "exp": int(time.time()) + 60}, "a-secret-that-is-not-the-local-signing-key", algorithm="HS256")  # fmt: skip
    other_audience = tokens.mint(user, aud="someone-else")
    for token in (forged, other_audience):
        status, _ = http("GET", f"{stack.api_url}/v1/me", headers=bearer(token))
        assert status == 401


def test_server_only_event_from_a_client_token_is_rejected(stack, user):
    body = {"events": [event(f"{user}-buy", "purchase_completed", sku="pro", amount=999)]}

    status, answer = http("POST", f"{stack.api_url}/v1/events", body, bearer(tokens.mint(user)))

    assert status == 200
    assert answer["results"][0]["status"] == "rejected"
    assert answer["results"][0]["code"] == "server_only"
    assert answer["progress"]["balances"]["coins"] == 0


def test_server_route_needs_the_server_key_not_a_user_token(stack, user):
    body = {"events": [{**event(f"{user}-buy", "purchase_completed", sku="pro", amount=20), "user_id": user}]}
    url = f"{stack.api_url}/v1/server/events"

    assert http("POST", url, body, bearer(tokens.mint(user)))[0] == 403
    assert http("POST", url, body, {SERVER_KEY_HEADER: "wrong"})[0] == 403
    status, answer = http("POST", url, body, {SERVER_KEY_HEADER: stack.server_key})

    assert status == 200 and answer["accepted"] == 1
    assert answer["progress"][user]["balances"]["coins"] == 20


def test_user_id_in_a_client_body_is_refused_not_trusted(stack, user):
    body = {"events": [{**event(f"{user}-1"), "user_id": "someone-else"}]}

    status, answer = http("POST", f"{stack.api_url}/v1/events", body, bearer(tokens.mint(user)))

    assert status == 200
    assert answer["results"][0]["code"] == "invalid_event"
    assert "user_id" in answer["results"][0]["reason"]


@pytest.mark.parametrize(
    ("raw", "status", "error"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"[]", 400, "invalid_json"),
        (b'{"events": []}', 422, "invalid_request"),
        (json.dumps({"events": [{}] * 101}).encode(), 422, "invalid_request"),
        (b'{"events": [{}], "context": {"timezone": "Mars/Olympus"}}', 422, "invalid_request"),
        (b'{"events": [{}], "context": {"timezone": "America"}}', 422, "invalid_request"),
        (b'{"events": [{}], "context": {"timezone": "localtime"}}', 422, "invalid_request"),
        (b'{"events": [{}], "extra": 1}', 422, "invalid_request"),
    ],
    ids=["not-json", "array", "empty", "too-many", "bad-zone", "zone-directory", "zone-alias", "unknown-field"],
)
def test_malformed_bodies_get_a_clear_error(stack, user, raw, status, error):
    request = urllib.request.Request(
        f"{stack.api_url}/v1/events", data=raw, method="POST",
        headers={"content-type": "application/json", **bearer(tokens.mint(user))},
    )  # fmt: skip
    try:
        urllib.request.urlopen(request)
        pytest.fail("expected an error status")
    except urllib.error.HTTPError as answer:
        body = json.loads(answer.read())
        assert answer.code == status
        assert body["error"] == error and body["message"]


def post_raw(stack, user: str, raw: bytes, content_type: str | None) -> tuple[int, dict]:
    headers = {**bearer(tokens.mint(user)), **({"content-type": content_type} if content_type else {})}
    request = urllib.request.Request(f"{stack.api_url}/v1/events", data=raw, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as answer:
        return answer.code, json.loads(answer.read())


@pytest.mark.parametrize(
    "content_type",
    ["Application/JSON; charset=UTF-8", "application/vnd.api+json", "text/plain;charset=UTF-8",
     "application/x-www-form-urlencoded"],
    ids=["upper-case", "json-family", "fetch-default", "curl-default"],
)  # fmt: skip
def test_a_json_body_is_read_as_json_whatever_content_type_it_declares(stack, user, content_type):
    raw = json.dumps({"events": [event(f"{user}-1")]}).encode()

    status, answer = post_raw(stack, user, raw, content_type)

    assert (status, answer.get("accepted")) == (200, 1), answer


@pytest.mark.parametrize(
    ("raw", "content_type", "says"),
    [
        (b"events=1", "application/x-www-form-urlencoded", "not valid JSON"),
        ('{"events": [{"id": "é"}]}'.encode("latin-1"), "application/json", "UTF-8"),
        (b"", "application/json", "empty"),
        (b"null", "application/json", "not a JSON object"),
        (b'"hi"', "application/json", "the body is text, not a JSON object"),
        (b"[1, 2]", "application/json", "the body is an array, not a JSON object"),
        (b'{"events": [{"id": "e1", "properties": {"n": ' + b"1" * 4301 + b"}}]}", "application/json", "38 digits"),
        (b'{"events": [{"properties": {"a": ' + b"[" * 3000 + b"]" * 3000 + b"}}]}", "application/json", "too deeply"),
    ],
    ids=["form", "latin-1", "empty", "null", "text", "array", "4301-digit-number", "nested-3000-deep"],
)
def test_a_body_that_is_not_json_text_is_a_400_with_its_fix_not_a_500(stack, user, raw, content_type, says):
    status, answer = post_raw(stack, user, raw, content_type)

    assert (status, answer.get("error")) == (400, "invalid_json"), answer
    assert says in answer["message"] and "Fix:" in answer["message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/events"), ("POST", "/v1/me/devices"), ("PUT", "/v1/me/preferences")],
    ids=["events", "devices", "preferences"],
)
def test_a_body_that_is_an_array_of_objects_is_refused_not_cut_to_its_first(stack, user, method, path):
    # Before: Powertools read an array's first element as the body and dropped the rest, answering 200
    first = {"events": [event(f"{user}-1")], "device_id": "first", "weekly_budget": 2}
    status, answer = http(method, f"{stack.api_url}{path}", [first, first], bearer(tokens.mint(user)))

    assert (status, answer.get("error")) == (400, "invalid_json"), answer
    assert answer["message"] == "the body is an array, not a JSON object. Fix: send one JSON object"


def test_an_oversized_batch_is_named_in_the_error_not_echoed(stack, user):
    raw = json.dumps({"events": [event(f"{user}-{n}") for n in range(101)]}).encode()

    status, answer = post_raw(stack, user, raw, "application/json")

    assert status == 422 and answer["details"][0]["field"] == "events"
    assert "value" not in answer["details"][0] and "100" in answer["details"][0]["message"]


def test_half_a_character_is_read_as_the_replacement_character_not_a_500(stack, user):
    # An app that cuts a text inside an emoji sends JSON's "\ud83c" without its second half: json.loads
    # takes it, DynamoDB and CEL do not. Before, every retry of such a batch was a 500.
    token = tokens.mint(user)
    cut = event(f"{user}-1", "app_opened", note="Morning run \ud83c")
    body = {"events": [cut, event(f"{user}-2")], "context": {"app_version": "2.3\udfff"}}

    status, answer = http("POST", f"{stack.api_url}/v1/events", body, bearer(token))
    _, history = http("GET", f"{stack.api_url}/v1/me/history", headers=bearer(token))
    cursor = base64.urlsafe_b64encode(json.dumps({"user_id": {"S": "\ud800"}, "sk": {"S": "x"}}).encode()).decode()
    bad_cursor, refusal = http("GET", f"{stack.api_url}/v1/me/history?cursor={cursor}", headers=bearer(token))

    assert status == 200 and answer["accepted"] == 2
    notes = [entry["properties"].get("note") for entry in history["entries"]]
    assert "Morning run \ufffd" in notes
    assert bad_cursor == 400 and refusal["error"] == "invalid_input"


def test_an_id_or_locale_in_the_wrong_form_is_refused_with_the_fix_not_a_regular_expression(stack, user):
    bad_id = {**event(f"{user}-1"), "id": "my event"}
    body = {"events": [bad_id, event(f"{user}-2")]}
    headers = bearer(tokens.mint(user))

    status, answer = http("POST", f"{stack.api_url}/v1/events", body, headers)
    refused, error = http("POST", f"{stack.api_url}/v1/events", {**body, "context": {"locale": "de DE"}}, headers)

    assert status == 200 and answer["results"][0]["reason"] == (
        "id: is not in the expected form (got 'my event'). Fix: use letters, digits and . _ : - only"
    )
    assert refused == 422 and error["details"][0]["field"] == "context.locale"
    assert (
        error["details"][0]["message"]
        == "is not in the expected form. Fix: write a language tag such as en, de-DE or pt-BR"
    )


def test_unknown_zone_error_names_the_field_and_the_fix(stack, user):
    body = {"events": [event(f"{user}-1")], "context": {"timezone": "Mars/Olympus"}}

    status, answer = http("POST", f"{stack.api_url}/v1/events", body, bearer(tokens.mint(user)))

    assert status == 422
    assert answer["details"][0]["field"] == "context.timezone"
    assert answer["details"][0]["value"] == "Mars/Olympus"
    assert "IANA" in answer["details"][0]["message"]


def test_concurrent_identical_http_requests_apply_once(stack, user):
    token = tokens.mint(user)
    body = {"events": [event(f"{user}-{i}") for i in range(5)]}
    answers: list = []
    start = threading.Barrier(4)

    def post():
        start.wait()
        status, answer = http("POST", f"{stack.api_url}/v1/events", body, bearer(token))
        answers.append(answer if status == 200 else {"accepted": 0, "status": status})

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert all("status" not in a for a in answers), answers
    assert sum(a["accepted"] for a in answers) == 5
    assert http("GET", f"{stack.api_url}/v1/me", headers=bearer(token))[1]["currencies"]["xp"]["balance"] == 200


def test_unknown_route_is_404(stack):
    assert http("GET", f"{stack.api_url}/v1/nothing-here")[0] == 404


def test_late_event_within_window_counts_and_older_is_refused(stack, user):
    token = tokens.mint(user)
    late = {**event(f"{user}-late"), "occurred_at": (datetime.now(UTC) - timedelta(days=6)).isoformat()}
    too_old = {**event(f"{user}-old"), "occurred_at": (datetime.now(UTC) - timedelta(days=8)).isoformat()}

    _, answer = http("POST", f"{stack.api_url}/v1/events", {"events": [late, too_old]}, bearer(token))

    assert [r["status"] for r in answer["results"]] == ["accepted", "rejected"]
    assert "late window" in answer["results"][1]["reason"]


def test_a_zone_set_by_hand_on_an_android_device_is_kept_as_its_offset_and_the_batch_counts(stack, user):
    # Android reports a manually set zone as "GMT+05:30": refusing it refused the whole batch, on every retry
    body = {"events": [event(f"{user}-1")], "context": {"timezone": "GMT+05:30"}}

    status, answer = http("POST", f"{stack.api_url}/v1/events", body, bearer(tokens.mint(user)))
    _, me = http("GET", f"{stack.api_url}/v1/me", headers=bearer(tokens.mint(user)))

    assert (status, answer["accepted"]) == (200, 1)
    assert me["timezone"] == "UTC+05:30"

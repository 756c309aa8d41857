"""The resolver every HTTP handler uses: validation on, and every error mapped to one JSON shape."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.utilities.typing import LambdaContext

from ..config.issues import format_path
from ..observability import logger, metrics
from ..services.errors import Forbidden, InvalidField, ServiceError
from .common import ErrorDetail, ErrorResponse, explain


class _JsonApiResolver(APIGatewayHttpResolver):
    """Powertools' resolver, reading every body as JSON whatever Content-Type it declares: Engage's routes take
    JSON only. Powertools reads only a lowercase `application/json` as JSON, parses forms into fields and
    refuses other types with a 500; clients send `Application/JSON`, `application/vnd.api+json`, `text/plain`
    (fetch() with a string body) or a form type (curl -d) with a JSON body."""

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        headers = event.get("headers") or {}
        if not headers.get("content-type", content_types.APPLICATION_JSON).startswith(content_types.APPLICATION_JSON):
            event = {**event, "headers": {**headers, "content-type": content_types.APPLICATION_JSON}}
        return super().resolve(event, context)


def make_resolver() -> APIGatewayHttpResolver:
    """An HTTP API v2 resolver with pydantic validation and Engage's error responses."""
    app = _JsonApiResolver(enable_validation=True, json_body_deserializer=read_json)

    @app.exception_handler(RequestValidationError)
    def _invalid(exc: RequestValidationError) -> Response:
        errors = list(exc.errors())
        if any(err.get("type") == "json_invalid" for err in errors):
            return _error(400, "invalid_json", "the body is not valid JSON. Fix: send a JSON object")
        if any(err.get("type") == "missing" and tuple(err.get("loc", ())) == ("body",) for err in errors):
            what = "not a JSON object" if (app.current_event.body or "").strip() else "empty"  # `null`, or nothing
            return _error(400, "invalid_json", f"the body is {what}. Fix: send a JSON object")
        details = [
            ErrorDetail(
                field=_field(err["loc"]) if err.get("loc") else "body",
                message=explain(err),
                value=_shown_value(err),
            )
            for err in errors
        ]
        summary = "; ".join(f"{d.field}: {d.message}" for d in details[:5])
        where = {err["loc"][0] for err in errors if err.get("loc")}
        what = "request body" if where <= {"body"} else "query string" if where == {"query"} else "request"
        return _error(422, "invalid_request", f"the {what} is not valid: {summary}", details)

    @app.exception_handler(InvalidJson)
    def _not_an_object(exc: InvalidJson) -> Response:
        return _error(400, "invalid_json", str(exc))

    @app.exception_handler(ServiceError)
    def _service(exc: ServiceError) -> Response:
        headers = {"Retry-After": "1"} if exc.status == 503 else None
        details = (
            [ErrorDetail(field=exc.field, message=exc.problem, value=exc.value)]
            if isinstance(exc, InvalidField)
            else None
        )
        return _error(exc.status, exc.code, exc.message, details, headers=headers)

    @app.exception_handler(UnicodeDecodeError)
    def _not_utf8(exc: UnicodeDecodeError) -> Response:
        if not _body_is_utf8(app.current_event.body, bool(app.current_event.is_base64_encoded)):
            return _error(400, "invalid_json", "the body is not UTF-8 text. Fix: send JSON encoded as UTF-8")
        return _unexpected(exc)

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response:
        logger.exception("unhandled error")
        return _error(500, "internal", "something went wrong on our side; retrying the request is safe")

    return app


def _body_is_utf8(body: str | None, base64_encoded: bool) -> bool:
    """Whether the request's body decodes as UTF-8 (API Gateway base64-encodes a body that is not UTF-8)."""
    if not body or not base64_encoded:
        return True
    try:
        base64.b64decode(body).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return False
    return True


# A lone surrogate: JSON's `\ud83d` without its second half (a client cut an emoji in two), or such a
# code point already in the text.
_SURROGATE_IN_JSON = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}|[\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class InvalidJson(Exception):
    """A body that is JSON but no object (every route's body is one), or JSON Python will not read."""


_KINDS = {list: "an array", str: "text", int: "a number", float: "a number", bool: "true or false"}


def read_json(text: str) -> Any:
    """A request body: json.loads, with each lone surrogate read as U+FFFD (�), as browsers read such text.

    JSON lets a string hold half of a character; DynamoDB, CEL and FCM take only Unicode text and would
    refuse it deep inside the request, a 500 on every retry. Paired halves are one character after json.loads;
    only unpaired ones remain, and only texts that escape a surrogate at all are walked.
    A body that is no object is refused here: Powertools would read an array's first element as the body and
    drop the rest.
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise  # Powertools answers it as json_invalid
    except ValueError as exc:  # an integer of over 4,300 digits
        raise InvalidJson(
            f"the body holds a number JSON readers refuse ({str(exc)[:80]}). Fix: send at most 38 digits"
        ) from None
    except RecursionError:
        raise InvalidJson("the body nests arrays or objects too deeply to read. Fix: flatten it") from None
    if value is not None and not isinstance(value, dict):
        raise InvalidJson(
            f"the body is {_KINDS.get(type(value), 'no object')}, not a JSON object. Fix: send one JSON object"
        )
    return usv(value) if _SURROGATE_IN_JSON.search(text) else value


def usv(value: Any) -> Any:
    """`value` with lone surrogates in its strings (keys included) replaced by U+FFFD."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {usv(key): usv(item) for key, item in value.items()}
    if isinstance(value, list):
        return [usv(item) for item in value]
    return value


def _field(loc: Sequence[str | int]) -> str:
    """An error's path in the request, without "body" and pydantic's labels of union branches and validators
    (`function-after[…]`, `literal[False]`)."""
    return format_path(
        p for p in loc if p != "body" and not (isinstance(p, str) and ("[" in p or p.startswith("function-")))
    )


def _shown_value(error: dict[str, Any]) -> Any:
    """The offending value, echoed to help the caller, except push tokens, which are never echoed or logged,
    and values too long to be worth sending back. An unknown field's value is not echoed either: it may be a
    token under a misspelled name (`fcmToken`)."""
    secret = {"fcm_token", "fid"}
    if error.get("type") in ("missing", "extra_forbidden") or any(str(p) in secret for p in error.get("loc", ())):
        return None
    value = error.get("input")
    shown = {k: v for k, v in value.items() if k not in secret} if isinstance(value, dict) else value
    return shown if len(json.dumps(shown, default=str)) <= _ECHO_LIMIT else None


# The longest value an error echoes, in JSON characters: a 101-event batch is named, not sent back.
_ECHO_LIMIT = 1000


def jwt_claims(app: APIGatewayHttpResolver) -> dict[str, Any]:
    """Claims the JWT authorizer verified (API Gateway in AWS, the local stack here)."""
    return app.current_event.request_context.authorizer.jwt_claim or {}


def require_iam_caller(app: APIGatewayHttpResolver) -> None:
    """The server route is IAM-authorised; refuse if the request somehow arrived without a signer."""
    if not app.current_event.request_context.authorizer.iam.user_arn:
        raise Forbidden("this route takes IAM-signed requests from your backend only")


def _error(
    status: int,
    code: str,
    message: str,
    details: list[ErrorDetail] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    metrics.add_metric(name=f"Http{status // 100}xx", unit="Count", value=1)  # refused requests, by class
    body = ErrorResponse(error=code, message=message, details=details or [])
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=body.model_dump_json(exclude_none=True),
        headers=headers,
    )

"""Errors the use cases raise (api/http.py maps each to one HTTP status in one place), and who is asking."""

from collections.abc import Mapping
from typing import Any


class ServiceError(Exception):
    status = 500
    code = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unauthorized(ServiceError):
    status = 401
    code = "unauthorized"


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


class ConfigUnavailable(ServiceError):
    status = 503
    code = "config_unavailable"


class Busy(ServiceError):
    """Writes for one user kept colliding; the client retries (its events are deduplicated)."""

    status = 503
    code = "busy"


class InvalidInput(ServiceError):
    status = 400
    code = "invalid_input"


class InvalidField(ServiceError):
    """A body field the request models accept but the app's config does not (an unknown category, a budget over
    the cap): answered as the models' own refusals are, a 422 naming the field and the value."""

    status = 422
    code = "invalid_request"

    def __init__(self, field: str, problem: str, value: Any = None) -> None:
        super().__init__(f"the request body is not valid: {field}: {problem}")
        self.field, self.problem, self.value = field, problem, value


class NotFound(ServiceError):
    status = 404
    code = "not_found"


def signed_in_user(claims: Mapping[str, Any]) -> str:
    """The user a request acts for: the verified JWT's `sub`, never a field of the body."""
    user_id = str(claims.get("sub") or "")
    if not user_id:
        raise Unauthorized("the token has no 'sub' claim")
    return user_id

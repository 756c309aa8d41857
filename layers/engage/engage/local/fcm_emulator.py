"""FCM HTTP v1 emulator: `POST /v1/projects/{project}/messages:send` on 127.0.0.1, for tests and the local stack.

FCM has no official emulator, and a mock that accepts anything would hide the mistakes that matter in
production (a non-string data value, a 5 KB payload, a 30-day TTL). So every request is checked against
Google's own published schema — the `fcm.v1.json` discovery document bundled in google-api-python-client —
plus the limits FCM enforces beyond the schema, and every answer uses FCM's real status codes and error
bodies, which is what firebase-admin parses into `UnregisteredError`, `QuotaExceededError`, ….

The seam (firebase-admin has no emulator variable for messaging): `fcm_app()` / `point_app_at()` set the
private attribute `_fcm_url` of the app's `_MessagingService` (obtained with
`messaging._get_messaging_service(app)`) to this server's send URL, and give the app a credential whose
google-auth credentials are anonymous (no token is fetched; the emulator ignores Authorization). Because
it relies on a private attribute, firebase-admin is pinned (==7.7.0); `test_fcm_emulator.py` fails loudly
if an upgrade moves it. The emulator itself is plain HTTP/1.1: `send_each` (requests) and
`send_each_async` (httpx with `http2=True`, which only negotiates HTTP/2 through TLS ALPN, so it speaks
HTTP/1.1 to an `http://` URL) both work against it unchanged.

Run it alone with `python -m engage.local.fcm_emulator --port 8090`.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import firebase_admin

SEND_PATH = re.compile(r"^/v1/projects/([^/]+)/messages:send$")
MAX_PAYLOAD_BYTES = 4096
MAX_TTL_SECONDS = 28 * 24 * 3600  # 2419200 s, FCM's maximum time to live
ANALYTICS_LABEL = re.compile(r"^[a-zA-Z0-9\-_.~%]{1,50}$")
TOPIC_NAME = re.compile(r"^[a-zA-Z0-9\-_.~%]+$")
DURATION = re.compile(r"^-?(\d+)(\.\d{1,9})?s$")
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
INTEGER = re.compile(r"^-?\d+$")
RESERVED_DATA_KEYS = ("from", "message_type")
RESERVED_DATA_PREFIXES = ("google.", "gcm.")
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
INVALID_TOKEN = "The registration token is not a valid FCM registration token"
ANALYTICS_LABEL_PATHS = (
    ("fcm_options",),
    ("android", "fcm_options"),
    ("android_v2", "fcm_options"),
    ("apns", "fcm_options"),
    ("webpush", "fcm_options"),
)

# HTTP status → (google.rpc status, FCM errorCode, message), as FCM answers them. firebase-admin maps
# errorCode first (QUOTA_EXCEEDED, UNREGISTERED, SENDER_ID_MISMATCH, THIRD_PARTY_AUTH_ERROR) and falls
# back to the rpc status (UNAVAILABLE → UnavailableError, INTERNAL → InternalError).
INJECTABLE: dict[int, tuple[str, str, str]] = {
    429: ("RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded for quota metric 'Send messages'."),
    503: ("UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable."),
    500: ("INTERNAL", "INTERNAL", "Internal error encountered."),
    403: ("PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch"),
    401: ("UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR", "Auth error from APNS or Web Push Service"),
}


@cache
def discovery_document() -> dict[str, Any]:
    """Google's FCM v1 discovery document, read from the installed google-api-python-client (not vendored)."""
    path = resources.files("googleapiclient") / "discovery_cache" / "documents" / "fcm.v1.json"
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


@dataclass(frozen=True)
class FieldViolation:
    """One entry of google.rpc.BadRequest.fieldViolations."""

    field: str
    description: str


class FcmError(Exception):
    """An FCM error answer: HTTP status, rpc status, FCM errorCode, message and field violations."""

    def __init__(
        self,
        http_status: int,
        status: str,
        error_code: str | None,
        message: str,
        violations: Sequence[FieldViolation] = (),
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.status = status
        self.error_code = error_code
        self.message = message
        self.violations = list(violations)
        self.retry_after = retry_after

    @classmethod
    def invalid(cls, violations: Sequence[FieldViolation], message: str | None = None) -> FcmError:
        text = message or "\n".join(v.description for v in violations) or "Request contains an invalid argument."
        return cls(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", text, violations)

    def body(self) -> dict[str, Any]:
        """The JSON body FCM sends: a google.rpc.Status with FcmError (and BadRequest) details."""
        details: list[dict[str, Any]] = []
        if self.error_code:
            details.append({"@type": FCM_ERROR, "errorCode": self.error_code})
        if self.violations:
            violations = [{"field": v.field, "description": v.description} for v in self.violations]
            details.append({"@type": BAD_REQUEST, "fieldViolations": violations})
        error: dict[str, Any] = {"code": self.http_status, "message": self.message, "status": self.status}
        if details:
            error["details"] = details
        return {"error": error}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _field(obj: Any, name: str) -> Any:
    """A field by its proto name or its lowerCamel JSON name: proto3 JSON accepts both, the SDK sends snake_case."""
    if not isinstance(obj, dict):
        return None
    return obj[name] if name in obj else obj.get(_camel(name))


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def _duration_seconds(text: str) -> float:
    return float(text[:-1])


class SchemaValidator:
    """Checks a send request against the discovery document's schemas, the way Google's JSON parser does.

    Names may be lowerCamel or snake_case; unknown names are errors; `null` means "unset" for singular
    fields; enums are matched case-insensitively (the SDK sends "high" for HIGH and FCM accepts it) or by
    number; 64-bit integers may be strings (discovery marks them type string, format int64).
    """

    def __init__(self, document: dict[str, Any] | None = None) -> None:
        doc = document if document is not None else discovery_document()
        self._schemas: dict[str, Any] = doc["schemas"]
        send = doc["resources"]["projects"]["resources"]["messages"]["methods"]["send"]
        self._request_ref: str = send["request"]["$ref"]

    def violations(self, body: Any) -> list[FieldViolation]:
        out: list[FieldViolation] = []
        if not isinstance(body, dict):
            return [FieldViolation("", f"Invalid JSON payload received. Expected an object, got {_shown(body)}.")]
        self._check_object(body, self._schemas[self._request_ref], self._request_ref, "", out)
        if not out and _field(body, "message") is None:
            out.append(FieldViolation("message", "Required field message is missing."))
        return out

    def _check(self, value: Any, spec: dict[str, Any], path: str, out: list[FieldViolation]) -> None:
        if value is None:
            return
        ref = spec.get("$ref")
        if ref:
            self._check_object(value, self._schemas[ref], ref, path, out)
            return
        kind = spec.get("type")
        if kind == "any":
            return
        if kind == "object":
            if "additionalProperties" in spec:
                self._check_map(value, spec["additionalProperties"], path, out)
            else:
                self._check_object(value, spec, None, path, out)
        elif kind == "array":
            self._check_array(value, spec["items"], path, out)
        elif kind == "string":
            self._check_string(value, spec, path, out)
        elif kind == "boolean":
            if not isinstance(value, bool):
                out.append(self._bad(path, "TYPE_BOOL", value))
        elif kind == "integer":
            self._check_integer(value, spec.get("format", "int32"), path, out)
        elif kind == "number":
            if not self._is_number(value):
                out.append(self._bad(path, f"TYPE_{spec.get('format', 'double').upper()}", value))
        else:  # a type this walker does not know yet: say so rather than silently accept
            out.append(FieldViolation(path, f"Emulator cannot check type {kind!r} at '{path}'."))

    def _check_object(
        self, value: Any, schema: dict[str, Any], ref: str | None, path: str, out: list[FieldViolation]
    ) -> None:
        if not isinstance(value, dict):
            out.append(self._bad(path, f"type.googleapis.com/google.firebase.fcm.v1.{ref or 'Object'}", value))
            return
        properties: dict[str, Any] = schema.get("properties", {})
        for key, item in value.items():
            spec = properties.get(key) or properties.get(_camel(key))
            if spec is None:
                where = f" at '{path}'" if path else ""
                out.append(
                    FieldViolation(
                        path, f'Invalid JSON payload received. Unknown name "{key}"{where}: Cannot find field.'
                    )
                )
                continue
            self._check(item, spec, f"{path}.{key}" if path else key, out)

    def _check_map(self, value: Any, spec: dict[str, Any], path: str, out: list[FieldViolation]) -> None:
        if not isinstance(value, dict):
            out.append(self._bad(path, "map", value))
            return
        for index, item in enumerate(value.values()):  # FCM names map entries by position: data[0].value
            entry = f"{path}[{index}].value"
            if item is None and spec.get("type") != "any":
                out.append(self._bad(entry, self._label(spec), item))
            else:
                self._check(item, spec, entry, out)

    def _check_array(self, value: Any, spec: dict[str, Any], path: str, out: list[FieldViolation]) -> None:
        if not isinstance(value, list):
            out.append(self._bad(path, f"repeated {self._label(spec)}", value))
            return
        for index, item in enumerate(value):
            if item is None:
                out.append(self._bad(f"{path}[{index}]", self._label(spec), item))
            else:
                self._check(item, spec, f"{path}[{index}]", out)

    def _check_string(self, value: Any, spec: dict[str, Any], path: str, out: list[FieldViolation]) -> None:
        enum: list[str] | None = spec.get("enum")
        fmt = spec.get("format")
        if enum is not None:
            by_number = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(enum)
            by_name = isinstance(value, str) and value.upper() in enum
            ok = by_number or by_name
        elif fmt in ("int64", "uint64"):
            ok = (isinstance(value, int) and not isinstance(value, bool)) or (
                isinstance(value, str) and bool(INTEGER.match(value))
            )
        elif fmt == "google-duration":
            ok = isinstance(value, str) and bool(DURATION.match(value))
        elif fmt == "google-datetime":
            ok = isinstance(value, str) and bool(DATETIME.match(value))
        else:
            ok = isinstance(value, str)
        if not ok:
            out.append(self._bad(path, self._label(spec), value))

    def _check_integer(self, value: Any, fmt: str, path: str, out: list[FieldViolation]) -> None:
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif (isinstance(value, float) and value.is_integer()) or (isinstance(value, str) and INTEGER.match(value)):
            number = int(value)
        low, high = (0, 2**32 - 1) if fmt == "uint32" else (-(2**31), 2**31 - 1)
        if number is None or not low <= number <= high:
            out.append(self._bad(path, f"TYPE_{fmt.upper()}", value))

    @staticmethod
    def _is_number(value: Any) -> bool:
        if isinstance(value, bool):
            return False
        if isinstance(value, int | float):
            return True
        if isinstance(value, str):
            try:
                float(value)
            except ValueError:
                return False
            return True
        return False

    @staticmethod
    def _label(spec: dict[str, Any]) -> str:
        if "$ref" in spec:
            return f"type.googleapis.com/google.firebase.fcm.v1.{spec['$ref']}"
        fmt = spec.get("format")
        if "enum" in spec:
            return "TYPE_ENUM"
        if fmt == "google-duration":
            return "type.googleapis.com/google.protobuf.Duration"
        if fmt == "google-datetime":
            return "type.googleapis.com/google.protobuf.Timestamp"
        if fmt:
            return f"TYPE_{fmt.upper()}"
        return {"string": "TYPE_STRING", "boolean": "TYPE_BOOL", "any": "google.protobuf.Value"}.get(
            spec.get("type", ""), "TYPE_MESSAGE"
        )

    @staticmethod
    def _bad(path: str, label: str, value: Any) -> FieldViolation:
        return FieldViolation(path, f"Invalid value at '{path}' ({label}), {_shown(value)}")


def limit_violations(message: dict[str, Any]) -> list[FieldViolation]:
    """FCM rules the schema cannot express. Assumes the message already passed the schema check."""
    out: list[FieldViolation] = []
    targets = [name for name in ("token", "fid", "topic", "condition") if _field(message, name)]
    if len(targets) != 1:
        found = ", ".join(targets) or "none"
        out.append(
            FieldViolation("message", f"Exactly one of token, fid, topic or condition must be set (got {found}).")
        )
    topic = _field(message, "topic")
    if topic and not TOPIC_NAME.match(topic):
        out.append(FieldViolation("message.topic", f"Invalid topic name {_shown(topic)}: use [a-zA-Z0-9-_.~%]+."))
    if _field(message, "android") is not None and _field(message, "android_v2") is not None:
        out.append(FieldViolation("message", "android and android_v2 are mutually exclusive."))
    for index, key in enumerate(_field(message, "data") or {}):
        if key in RESERVED_DATA_KEYS or key.startswith(RESERVED_DATA_PREFIXES):
            out.append(FieldViolation(f"message.data[{index}].key", f"Invalid data payload key: {key}"))
    for config in ("android", "android_v2"):
        ttl = _field(_field(message, config), "ttl")
        if ttl is not None and not 0 <= _duration_seconds(ttl) <= MAX_TTL_SECONDS:
            out.append(
                FieldViolation(
                    f"message.{config}.ttl", f"TTL {ttl} is out of range: 0s to {MAX_TTL_SECONDS}s (28 days)."
                )
            )
    for path in ANALYTICS_LABEL_PATHS:
        holder: Any = message
        for name in path:
            holder = _field(holder, name)
        label = _field(holder, "analytics_label")
        if label is not None and not ANALYTICS_LABEL.match(label):
            out.append(
                FieldViolation(
                    "message." + ".".join(path) + ".analytics_label",
                    f"Invalid analytics_label {_shown(label)}: it must match [a-zA-Z0-9-_.~%]{{1,50}}.",
                )
            )
    # FCM counts the data and notification payload; its JSON is a close, slightly generous approximation.
    payload = {name: _field(message, name) for name in ("data", "notification") if _field(message, name) is not None}
    size = len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_PAYLOAD_BYTES:
        out.append(FieldViolation("message", f"Message is too big: {size} bytes of data and notification, limit 4096."))
    apns_payload = _field(_field(message, "apns"), "payload")
    if apns_payload is not None:
        apns_size = len(json.dumps(apns_payload, separators=(",", ":"), ensure_ascii=False).encode())
        if apns_size > MAX_PAYLOAD_BYTES:
            out.append(
                FieldViolation("message.apns.payload", f"APNs payload is too big: {apns_size} bytes, limit 4096.")
            )
    return out


class FcmEmulator:
    """The FCM v1 send endpoint with FCM's validation, token states and injectable failures. Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._validator = SchemaValidator()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._sent: list[dict[str, Any]] = []
        self._unregistered: set[str] = set()
        self._fail_next: deque[tuple[int, int | None]] = deque()
        self._share = 0.0
        self._share_statuses: tuple[int, ...] = (503, 429)
        self._share_retry_after: int | None = 1
        self._rng = random.Random(0)
        self._attempts = 0
        self._injected: list[int] = []

    # lifecycle -------------------------------------------------------------------------------------
    def start(self, port: int = 0) -> str:
        """Serve on 127.0.0.1 (never another interface) in a daemon thread; returns the base URL."""
        if self._server is None:
            self._server = _Server(self, port)
        return self.base_url

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    def __enter__(self) -> FcmEmulator:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the FCM emulator is not running")
        return f"http://127.0.0.1:{self._server.port}"

    def send_url(self, project: str = "engage-local") -> str:
        return f"{self.base_url}/v1/projects/{project}/messages:send"

    # behaviour -------------------------------------------------------------------------------------
    def unregister(self, *tokens: str) -> None:
        """These tokens (or FIDs) now get 404 UNREGISTERED, as after an app uninstall."""
        with self._lock:
            self._unregistered.update(tokens)

    def fail_share(
        self,
        share: float,
        statuses: Iterable[int] = (503, 429),
        retry_after: int | None = 1,
        seed: int | None = 0,
    ) -> None:
        """Fail this share of calls (0 turns it off) with a status drawn from `statuses`, reproducibly."""
        chosen = tuple(statuses)
        unknown = [s for s in chosen if s not in INJECTABLE]
        if not 0.0 <= share <= 1.0 or not chosen or unknown:
            raise ValueError(f"share must be in [0, 1] and statuses among {sorted(INJECTABLE)}")
        with self._lock:
            self._share, self._share_statuses, self._share_retry_after = share, chosen, retry_after
            self._rng = random.Random(seed)

    def fail_next(self, n: int, status: int = 503, retry_after: int | None = 1) -> None:
        """Fail the next `n` calls with `status` (before any `fail_share` draw)."""
        if status not in INJECTABLE:
            raise ValueError(f"status must be one of {sorted(INJECTABLE)}")
        with self._lock:
            self._fail_next.extend([(status, retry_after)] * n)

    def reset(self) -> None:
        """Forget sent messages, token states, failure injection and counters."""
        with self._lock:
            self._sent.clear()
            self._unregistered.clear()
            self._fail_next.clear()
            self._share, self._attempts = 0.0, 0
            self._injected.clear()

    # observation -----------------------------------------------------------------------------------
    @property
    def sent(self) -> list[dict[str, Any]]:
        """Accepted messages (not validate_only): {"project", "name", "message", "time", "http_version"}."""
        with self._lock:
            return list(self._sent)

    def received_by(self, token: str) -> list[dict[str, Any]]:
        """The accepted messages addressed to this token or FID, oldest first."""
        return [r for r in self.sent if token in (_field(r["message"], "token"), _field(r["message"], "fid"))]

    def tray(self, token: str) -> dict[str, dict[str, Any]]:
        """What the device's notification tray shows: one entry per Android tag, the latest message with it.

        Android replaces a notification posted with the tag of one already shown (and iOS does the same with
        apns-collapse-id), so a message FCM accepted twice shows once. Data-only messages show nothing.
        """
        shown: dict[str, dict[str, Any]] = {}
        for record in self.received_by(token):
            message = record["message"]
            if not _field(message, "notification"):
                continue
            tag = _field(_field(_field(message, "android") or {}, "notification") or {}, "tag")
            shown[tag or record["name"]] = message
        return shown

    @property
    def attempts(self) -> int:
        """Every send call that reached the server, retries included."""
        with self._lock:
            return self._attempts

    @property
    def injected(self) -> list[int]:
        """HTTP statuses of the failures injected so far, in order."""
        with self._lock:
            return list(self._injected)

    # the endpoint ----------------------------------------------------------------------------------
    def handle_send(self, project: str, raw: bytes, http_version: str = "HTTP/1.1") -> tuple[int, dict[str, Any]]:
        """One send call: (HTTP status, JSON body). Raises FcmError for error answers."""
        self._inject_failure()
        try:
            body = json.loads(raw or b"null")
        except ValueError as error:
            text = f"Invalid JSON payload received. {error}."
            raise FcmError.invalid([FieldViolation("", text)]) from None
        violations = self._validator.violations(body)
        if violations:
            raise FcmError.invalid(violations)
        message: dict[str, Any] = _field(body, "message")
        violations = limit_violations(message)
        if violations:
            raise FcmError.invalid(violations)
        token = _field(message, "token") or _field(message, "fid")
        if token is not None:
            self._check_token(token, "message.token" if _field(message, "token") else "message.fid")
        name = f"projects/{project}/messages/0:{uuid.uuid4().hex}"
        if _field(body, "validate_only") is not True:
            record = {
                "project": project,
                "name": name,
                "message": message,
                "time": self._clock(),
                "http_version": http_version,
            }
            with self._lock:
                self._sent.append(record)
        return 200, {"name": name}

    def _inject_failure(self) -> None:
        with self._lock:
            self._attempts += 1
            if self._fail_next:
                status, retry_after = self._fail_next.popleft()
            elif self._share and self._rng.random() < self._share:
                status, retry_after = self._rng.choice(self._share_statuses), self._share_retry_after
            else:
                return
            self._injected.append(status)
        rpc_status, code, text = INJECTABLE[status]
        raise FcmError(status, rpc_status, code, text, retry_after=retry_after)

    def _check_token(self, token: str, field: str) -> None:
        if token.startswith("invalid"):
            raise FcmError.invalid([FieldViolation(field, INVALID_TOKEN)], INVALID_TOKEN)
        with self._lock:
            gone = token in self._unregistered
        if gone:
            raise FcmError(404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found.")


class _Server:
    """The emulator's HTTP/1.1 server: aiohttp's, on an event loop of its own in a daemon thread.

    One thread serves every connection: a thread per connection (http.server's way) made the threads take turns
    at the GIL, and answers came late and in bursts; a sender with 100 connections then waited for the
    emulator about a fifth of the time (`make bench`). aiohttp keeps connections alive, as the SDK's
    connection pools expect, and sends with TCP_NODELAY (with Nagle on, a body written after its headers
    waits for the client's delayed ACK, ~40 ms)."""

    def __init__(self, emulator: FcmEmulator, port: int) -> None:
        import asyncio

        self._emulator = emulator
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fcm-emulator", daemon=True)
        self._thread.start()
        try:
            self._runner, self.port = asyncio.run_coroutine_threadsafe(self._serve(port), self._loop).result(timeout=10)
        except BaseException:  # e.g. the port is taken: no thread left behind
            self._end_loop()
            raise

    async def _serve(self, port: int) -> tuple[Any, int]:
        from aiohttp import web

        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._answer)
        # A connection left mid-request must not hold stop() (aiohttp waits up to 60 s by default).
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port, backlog=512)  # send_each opens up to 500 connections at once
        await site.start()
        return runner, runner.addresses[0][1]

    async def _answer(self, request: Any) -> Any:
        from aiohttp import web

        match = SEND_PATH.match(request.path)
        headers: dict[str, str] = {}
        if request.method != "POST" or match is None:
            error = FcmError(
                404, "NOT_FOUND", None, f"The requested URL {request.path_qs} was not found on this server."
            )
            status, body = 404, error.body()
        else:
            raw = await request.read()
            version = f"HTTP/{request.version.major}.{request.version.minor}"
            try:
                status, body = self._emulator.handle_send(match.group(1), raw, version)
            except FcmError as error:
                status, body = error.http_status, error.body()
                if error.retry_after is not None:
                    headers["Retry-After"] = str(error.retry_after)
        return web.Response(
            status=status,
            body=json.dumps(body).encode(),
            headers=headers,
            content_type="application/json",
            charset="UTF-8",
        )

    def stop(self) -> None:
        import asyncio

        try:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        finally:
            self._end_loop()

    def _end_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()


# firebase-admin seam ------------------------------------------------------------------------------------
def emulator_credential() -> firebase_admin.credentials.Base:
    """A firebase-admin credential that never fetches a token (the emulator ignores Authorization)."""
    from firebase_admin import credentials
    from google.auth.credentials import AnonymousCredentials

    class _Anonymous(AnonymousCredentials):
        # AnonymousCredentials.refresh raises; the SDK refreshes on a 401 (THIRD_PARTY_AUTH_ERROR), so no-op.
        def refresh(self, request: Any) -> None:
            return None

    class _EmulatorCredential(credentials.Base):
        def get_credential(self) -> AnonymousCredentials:
            return _Anonymous()

    credential: firebase_admin.credentials.Base = _EmulatorCredential()
    return credential


def point_app_at(app: firebase_admin.App, base_url: str) -> None:
    """Send this app's FCM messages to `base_url` (private `_fcm_url`: firebase-admin is pinned for it)."""
    from firebase_admin import messaging

    service = messaging._get_messaging_service(app)
    if not hasattr(service, "_fcm_url"):
        raise RuntimeError("firebase-admin's _MessagingService has no _fcm_url: re-check the seam for this version")
    service._fcm_url = f"{base_url.rstrip('/')}/v1/projects/{app.project_id}/messages:send"


def fcm_app(base_url: str, project: str = "engage-local", name: str | None = None) -> firebase_admin.App:
    """A firebase_admin App whose messaging goes to the emulator at `base_url`.

    `name` defaults to a fresh unique name so tests can make many apps; pass it as `app=` to messaging calls.
    """
    import firebase_admin

    options = {"projectId": project, "httpTimeout": 5}
    app = firebase_admin.initialize_app(emulator_credential(), options, name=name or f"fcm-emulator-{uuid.uuid4().hex}")
    point_app_at(app, base_url)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="FCM HTTP v1 emulator on 127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args(argv)
    emulator = FcmEmulator()
    url = emulator.start(args.port)
    print(f"FCM emulator: POST {url}/v1/projects/<project>/messages:send", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        emulator.stop()


if __name__ == "__main__":
    main()

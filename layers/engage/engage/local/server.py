"""An HTTP API emulator: routes each request to the handler template.yaml maps it to, as API Gateway would.

Each request becomes an HTTP API payload v2.0 event. JWT routes verify the bearer token against the
local signing key (401 like API Gateway when it fails) and pass its claims in
requestContext.authorizer.jwt.claims; IAM routes take the local server key in `x-engage-server-key`
instead of SigV4. Like Lambda, one loaded handler serves one request at a time, and concurrent requests
get more loaded copies of the handler (more "execution environments").
"""

from __future__ import annotations

import base64
import importlib.util
import io
import itertools
import json
import queue
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO
from urllib.parse import parse_qsl, urlsplit

import jwt

from . import tokens
from .template import Function, Route, Template

SERVER_KEY_HEADER = "x-engage-server-key"
LOCAL_ACCOUNT = "000000000000"


DEFAULT_TIMEOUT = 10.0  # seconds: a function's deadline when the template sets no Timeout (its Globals say 10)


@dataclass
class LambdaContext:
    """The parts of the Lambda context object Powertools reads."""

    function_name: str
    aws_request_id: str
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    # time.monotonic() when the invocation would time out (by default DEFAULT_TIMEOUT from now)
    deadline: float = field(default_factory=lambda: time.monotonic() + DEFAULT_TIMEOUT)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:local:{LOCAL_ACCOUNT}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self.deadline - time.monotonic()) * 1000), 0)


class _FunctionOutput(io.TextIOBase):
    """Where handlers' stdout goes, like Lambda sends it to CloudWatch: to a log file, not to the caller.

    Installed once as sys.stdout; writes made while a handler runs go to the log file (from its thread, or from
    workers it runs in its context), every other write goes to the real stdout (the demo's own output, the CLI).
    """

    _active: ContextVar[bool] = ContextVar("engage_local_function_output", default=False)

    def __init__(self, log_path: Path, terminal: TextIO) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - lives as long as the process
        self._terminal = terminal

    @classmethod
    def install(cls, log_path: Path) -> None:
        if not isinstance(sys.stdout, cls):
            sys.stdout = cls(log_path, sys.stdout)

    @classmethod
    @contextmanager
    def capturing(cls) -> Iterator[None]:
        token = cls._active.set(True)
        try:
            yield
        finally:
            cls._active.reset(token)

    def write(self, text: str) -> int:
        target = self._log if self._active.get() else self._terminal
        return target.write(text)

    def flush(self) -> None:
        self._terminal.flush()


class HandlerPool:
    """Loaded copies of one function's handler module; each serves one request at a time."""

    _counter = itertools.count()

    def __init__(self, function: Function) -> None:
        self.function = function
        self._idle: queue.SimpleQueue[ModuleType] = queue.SimpleQueue()

    def invoke(self, event: dict[str, Any], context: LambdaContext) -> Any:
        try:
            module = self._idle.get_nowait()
        except queue.Empty:
            module = self._load()
        try:
            handler = getattr(module, self.function.handler.rsplit(".", 1)[1])
            with _FunctionOutput.capturing():
                return handler(event, context)
        finally:
            self._idle.put(module)

    def _load(self) -> ModuleType:
        module_file, _ = self.function.handler.rsplit(".", 1)
        name = f"engage_local_{self.function.logical_id}_{next(self._counter)}"
        spec = importlib.util.spec_from_file_location(name, self.function.code_uri / f"{module_file}.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module


class LocalApi:
    """Routes from template.yaml to in-process handlers; `serve()` puts it on 127.0.0.1."""

    def __init__(self, template: Template, server_key: str, log_path: Path | None = None) -> None:
        if log_path is not None:
            _FunctionOutput.install(log_path)
        self.routes: list[Route] = template.routes
        self.server_key = server_key
        self._pools = {rid: HandlerPool(fn) for rid, fn in template.functions.items()}
        self._httpd: ThreadingHTTPServer | None = None

    # -- request → response ----------------------------------------------------------------------------

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """One HTTP exchange, as API Gateway + Lambda would answer it."""
        url = urlsplit(target)
        for route in self.routes:
            params = route.match(method, url.path)
            if params is not None:
                break
        else:
            return _json(404, {"message": "Not Found"})
        authorizer, denied = self._authorize(route, headers)
        if denied:
            return denied
        event = http_api_event(route, method, url.path, url.query, headers, body, params, authorizer)
        pool = self._pools[route.function]
        deadline = time.monotonic() + (pool.function.timeout or DEFAULT_TIMEOUT)
        context = LambdaContext(route.function, event["requestContext"]["requestId"], deadline=deadline)
        try:
            result = pool.invoke(event, context)
        except Exception as exc:  # a crashed handler is a 500 from API Gateway, not a dead server
            print(f"[local-api] {route.function} raised {exc!r}", file=sys.stderr)
            return _json(500, {"message": "Internal Server Error"})
        return _response(result)

    def _authorize(self, route: Route, headers: dict[str, str]) -> tuple[dict | None, tuple | None]:
        if route.auth == "jwt":
            # As API Gateway's JWT authorizer: the token alone, or after "Bearer ".
            value = headers.get("authorization", "").strip()
            scheme, _, rest = value.partition(" ")
            token = rest.strip() if scheme.lower() == "bearer" else value
            if not token or " " in token:
                return None, _unauthorized(route, "no 'Authorization: Bearer <token>' header")
            try:
                claims = tokens.verify(token)
            except jwt.InvalidTokenError as exc:
                return None, _unauthorized(route, f"the token was refused ({exc})")
            # API Gateway hands claims to the function as strings.
            return {"jwt": {"claims": {k: _claim(v) for k, v in claims.items()}, "scopes": None}}, None
        if route.auth == "iam":
            if headers.get(SERVER_KEY_HEADER) != self.server_key:
                return None, _json(403, {"message": "Forbidden"})
            arn = f"arn:aws:iam::{LOCAL_ACCOUNT}:user/engage-local-backend"
            return {"iam": {"accessKey": "LOCAL", "accountId": LOCAL_ACCOUNT, "callerId": "LOCAL",
                            "principalOrgId": None, "userArn": arn, "userId": "LOCAL"}}, None  # fmt: skip
        return None, None

    # -- serving -----------------------------------------------------------------------------------------

    def serve(self, port: int = 0) -> str:
        """Start serving in a background thread; returns the base URL."""
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers: dict[str, str] = {}
                for key, value in self.headers.items():
                    key = key.lower()
                    headers[key] = f"{headers[key]},{value}" if key in headers else value
                status, out_headers, payload = api.handle(self.command, self.path, headers, body)
                self.send_response(status)
                for key, value in out_headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, name="local-api", daemon=True).start()
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def shutdown(self) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()


def _claim(value: Any) -> str:
    if isinstance(value, list):
        return "[" + " ".join(map(str, value)) + "]"
    return str(value)


def http_api_event(
    route: Route, method: str, path: str, query: str, headers: dict[str, str], body: bytes,
    params: dict[str, str], authorizer: dict | None,
) -> dict[str, Any]:  # fmt: skip
    now = datetime.now(UTC)
    text_body: str | None
    try:
        text_body, encoded = (body.decode("utf-8"), False) if body else (None, False)
    except UnicodeDecodeError:
        text_body, encoded = base64.b64encode(body).decode(), True
    query_params: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):  # API Gateway joins repeated ones with commas
        query_params[name] = f"{query_params[name]},{value}" if name in query_params else value
    return {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "queryStringParameters": query_params or None,
        "pathParameters": params or None,
        "requestContext": {
            "accountId": LOCAL_ACCOUNT,
            "apiId": "local",
            "authorizer": authorizer,
            "domainName": headers.get("host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route.route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "body": text_body,
        "isBase64Encoded": encoded,
    }


def _response(result: Any) -> tuple[int, dict[str, str], bytes]:
    """Payload v2 response rules: a dict with statusCode is used as is, anything else is JSON 200."""
    if not (isinstance(result, dict) and "statusCode" in result):
        return _json(200, result)
    headers = {k.lower(): str(v) for k, v in (result.get("headers") or {}).items()}
    for key, values in (result.get("multiValueHeaders") or {}).items():
        headers[key.lower()] = ",".join(map(str, values))
    body = result.get("body") or ""
    payload = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    return int(result["statusCode"]), headers, payload


def _unauthorized(route: Route, why: str) -> tuple[int, dict[str, str], bytes]:
    """API Gateway's bare 401; the reason, which it never gives, goes to the local stack's console."""
    print(f"[local-api] 401 {route.method} {route.path}: {why}. Fix: mint a token with "
          "`engage local token USER` (it lasts an hour)", file=sys.stderr)  # fmt: skip
    return _json(401, {"message": "Unauthorized"})


def _json(status: int, body: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"content-type": "application/json"}, json.dumps(body).encode()

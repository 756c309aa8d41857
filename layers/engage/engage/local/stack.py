"""The embedded local stack: DynamoDB Local + tables and queues from template.yaml + a published config +
the HTTP API + the event source mappings (streams and queues) + the FCM emulator.

Everything runs in this process except DynamoDB Local (a Java child process) and the SQS server (moto's,
a Python child process: see queues.py). The Lambdas' environment comes from template.yaml, with each table
or queue Ref resolved to the local table's name or queue's URL.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from .dynamodb_local import DynamoDBLocal, cache_root
from .fcm_emulator import FcmEmulator
from .queues import QueuePoller, QueuePollers, SqsServer, create_queues, peek
from .server import HandlerPool, LocalApi
from .streams import StreamPoller, StreamPollers
from .template import Template, load_template, resolve

REGION = "us-east-1"
# Values a real deployment gets from AWS itself; locally they point everything at DynamoDB Local.
# (Metrics stay on: Powertools never clears them while disabled, and they go to the functions' log here.)
_AWS_ENV = {
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "POWERTOOLS_TRACE_DISABLED": "true",
}
# Local values that win over the template's.
_OVERRIDES = {
    "POWERTOOLS_LOG_LEVEL": "WARNING",  # quieter than the template's INFO
    # Delivery retries wait DELIVERY_RETRY_BASE_SECONDS × 2^attempt (30 s deployed). Locally a second keeps a
    # test of the retry path (or a demo with failures injected in the FCM emulator) at seconds, not minutes.
    "DELIVERY_RETRY_BASE_SECONDS": "1",
}
DEAD_LETTER_QUEUE = "NotificationsDeadLetterQueue"


def state_file() -> Path:
    return cache_root() / "local" / "stack.json"


def failed_batches(prefix: str = "engage-local") -> Path:
    """Stream records a function failed on MAX_ATTEMPTS times (what Lambda would send to the on-failure queue)."""
    return cache_root() / "local" / f"failed-batches-{prefix}.jsonl"


def function_log(prefix: str = "engage-local") -> Path:
    """What the functions print (structured logs, EMF metrics), as CloudWatch Logs would hold it."""
    return cache_root() / "local" / ("functions.log" if prefix == "engage-local" else f"functions-{prefix}.log")


@dataclass
class LocalStack:
    """A running local stack. `api_url` serves the routes; `server_key` opens the IAM routes."""

    template: Template
    dynamodb: DynamoDBLocal
    api: LocalApi
    api_url: str
    server_key: str
    tables: dict[str, str]  # logical id → table name
    streams: StreamPollers
    sqs: SqsServer
    queue_urls: dict[str, str]  # logical id → queue URL
    queues: QueuePollers
    fcm: FcmEmulator
    recorded: bool = True
    prefix: str = "engage-local"

    def drain(self, timeout: float = 30, delayed: bool = True) -> int:
        """Deliver until streams and queues are all quiet; how many records and messages the functions took.

        They feed each other (a ledger record queues delivery jobs, a deferred message queues more), so
        this alternates between them until a round delivers nothing. Raises TimeoutError after `timeout`.
        `delayed=False` does not wait for delayed messages (quiet-hours deferrals can wait for minutes).
        """
        deadline = time.monotonic() + timeout
        total = 0
        with self.paused():  # the background threads wait, so a quiet round means quiet
            while True:
                delivered = self.streams.drain()
                delivered += self.queues.drain(max(deadline - time.monotonic(), 0.0), delayed)
                total += delivered
                if not delivered:
                    return total
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"streams and queues still deliver after {timeout:g}s")

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Hold the background polling of streams and queues (they share one lock: streams.paused() is this)."""
        with self.streams.paused():
            yield

    def dead_letters(self, queue: str = DEAD_LETTER_QUEUE) -> list[dict[str, Any]]:
        """What the dead-letter queue holds now, left in it.

        Each message: `message_id`, `body`, `attributes` (message attributes' values, e.g. `reason`), `receive_count`.
        """
        return peek(self.sqs.wait_ready(), self.queue_urls[queue])

    def stop(self) -> None:
        from ..push.firebase import close_emulator_app

        self.queues.stop()
        self.streams.stop()
        self.api.shutdown()
        close_emulator_app()  # deliver's, in this process
        self.fcm.stop()
        self.sqs.stop()
        self.dynamodb.stop()
        if self.recorded:
            state_file().unlink(missing_ok=True)
        else:  # a throwaway stack (tests, benchmarks): its files go with it
            function_log(self.prefix).unlink(missing_ok=True)
            failed_batches(self.prefix).unlink(missing_ok=True)

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start(
    template_path: str | Path = "template.yaml",
    config_path: str | Path | None = "examples/fitquest/engagement.yaml",
    port: int = 0,
    prefix: str = "engage-local",
    dynamodb_port: int | None = None,
    record_state: bool = True,
) -> LocalStack:
    """Start DynamoDB Local and the SQS server, create the tables and queues, set the Lambda environment,
    publish a config, serve HTTP, poll the streams and queues, run the FCM emulator.

    `record_state` writes the URL and keys to the cache so `engage config publish --stage local` finds them.
    """
    # Powertools warns when an invocation added no metric; in Lambda that is a log line, here it would land
    # on the developer's console between the demo's output.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    template = load_template(template_path)
    sqs = SqsServer.spawn()  # it boots while DynamoDB Local does
    fcm = FcmEmulator()
    dynamodb: DynamoDBLocal | None = None
    api: LocalApi | None = None
    streams: StreamPollers | None = None
    try:
        dynamodb = DynamoDBLocal.start(dynamodb_port)
        tables = create_tables(template, dynamodb.endpoint, prefix)
        queue_urls = create_queues(template, sqs.wait_ready(), prefix)
        fcm_url = fcm.start()
        apply_environment(template, dynamodb.endpoint, tables, queue_urls, sqs.endpoint, fcm_url)
        if config_path is not None:
            publish_config_file(config_path)
        server_key = secrets.token_urlsafe(24)
        api = LocalApi(template, server_key, log_path=function_log(prefix))
        api_url = api.serve(port)
        pause = threading.RLock()  # one lock: pausing the streams pauses the queues too
        streams = StreamPollers(
            [
                StreamPoller(
                    dynamodb.endpoint,
                    tables[source.table],
                    HandlerPool(template.functions[source.function]),
                    failed_batches(prefix),
                    source.batch_size,
                    source.filters,
                    (sqs.endpoint, queue_urls[source.on_failure]) if source.on_failure else None,
                )
                for source in template.streams
            ],
            pause=pause,
        )
        # Handler modules load on the first batch, so a function whose code is not written yet only fails then.
        queues = QueuePollers(
            [
                QueuePoller(
                    sqs.endpoint,
                    queue_urls[source.queue],
                    HandlerPool(template.functions[source.function]),
                    source.batch_size,
                    source.partial_failures,
                )
                for source in template.queue_sources
            ],
            pause=pause,
        )
        streams.start()
        queues.start()
    except BaseException:
        if streams is not None:
            streams.stop()
        if api is not None:
            api.shutdown()
        fcm.stop()
        sqs.stop()
        if dynamodb is not None:
            dynamodb.stop()
        raise
    stack = LocalStack(
        template, dynamodb, api, api_url, server_key, tables, streams,
        sqs, queue_urls, queues, fcm, record_state, prefix,
    )  # fmt: skip
    if record_state:
        state_file().parent.mkdir(parents=True, exist_ok=True)
        from ..settings import get_settings

        state = {"api_url": api_url, "server_key": server_key, "dynamodb_endpoint": dynamodb.endpoint,
                 "tables": tables, "app_id": get_settings().app_id, "sqs_endpoint": sqs.endpoint,
                 "queues": queue_urls, "fcm_endpoint": fcm.base_url}  # fmt: skip
        state_file().write_text(json.dumps(state))
        state_file().chmod(0o600)  # holds the server key
    return stack


def create_tables(template: Template, endpoint: str, prefix: str) -> dict[str, str]:
    """Create every AWS::DynamoDB::Table of the template (keys, indexes, stream, TTL) on `endpoint`."""
    client = boto3.client(
        "dynamodb", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="local", aws_secret_access_key="local"
    )
    names = table_names(template, prefix)
    for logical_id, name in names.items():
        client.create_table(**template.table_request(logical_id, name))
        ttl = template.ttl_attribute(logical_id)
        if ttl:
            client.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl})
    return names


def table_names(template: Template, prefix: str) -> dict[str, str]:
    """Local table names: UsersTable → '<prefix>-users'."""
    return {logical_id: f"{prefix}-{logical_id.removesuffix('Table').lower()}" for logical_id in template.tables}


def apply_environment(
    template: Template,
    endpoint: str,
    tables: dict[str, str],
    queues: dict[str, str] | None = None,
    sqs_endpoint: str | None = None,
    fcm_endpoint: str | None = None,
) -> dict[str, str]:
    """Put the functions' environment (template Globals + local endpoints) into os.environ.

    Refs resolve to local table names and queue URLs (a queue's Ref is its URL, as in CloudFormation).
    """
    refs = {**{k: str(v) for k, v in template.parameters.items() if v is not None}, **tables, "Stage": "local"}
    refs.update(queues or {})
    env = dict(_AWS_ENV, AWS_ENDPOINT_URL_DYNAMODB=endpoint)
    for function in template.functions.values():
        for key, value in function.environment.items():
            resolved = resolve(value, refs)
            if resolved is not None:
                env[key] = resolved
    env.update(_OVERRIDES)
    if sqs_endpoint is not None:
        env["AWS_ENDPOINT_URL_SQS"] = sqs_endpoint
    if fcm_endpoint is not None:
        env["FCM_ENDPOINT"] = fcm_endpoint
    os.environ.update(env)
    _forget_cached_settings()
    return env


def publish_config_file(path: str | Path) -> str:
    """Validate a YAML config and publish it as the active version for the app in the settings."""
    from ..config.loader import parse_yaml, validate_config_data
    from ..services.config import forget_cached_config
    from ..settings import get_settings
    from ..store import config_store

    text = Path(path).read_text(encoding="utf-8")
    data, lines = parse_yaml(text, str(path))
    config = validate_config_data(data, lines, str(path))
    if config.app != get_settings().app_id:
        os.environ["ENGAGE_APP_ID"] = config.app
        _forget_cached_settings()
    version = config_store.publish(config.app, data, text, by="engage local")
    forget_cached_config()
    return version


def _forget_cached_settings() -> None:
    """Re-read settings (the app id may change); table names are bound when the store is first imported."""
    from ..settings import get_settings

    get_settings.cache_clear()

"""`make bench`, notifications: pushes per second through firebase-admin, and the policy's cost per fact."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from ..config import load_config_file
from ..engine.model import Profile, UserState
from ..notify.policy import PushHistory, decide
from ..notify.triggers import FactSeen, prepare, user_prefs
from ..push.sender import MAX_BATCH, Push, PushResult, build_message, send_batch
from .dynamodb_local import free_port

TARGET_PUSHES_PER_SECOND = 2000


# Runs of the deliver sender: the rate is their median (one run moves by a tenth with the machine's load).
DELIVER_RUNS = 3


def push_costs(repo: Path, handler: tuple[int, float, float], pushes: int = 5000) -> str:
    """The report section: send rate to the emulator, the whole deliver handler's rate (`handler`, from
    `handler_rate`), and µs per fact for triggers and the policy."""
    runs = sorted(_in_own_process(pushes, "deliver") for _ in range(DELIVER_RUNS))
    handled, whole_rate, whole_ms = handler
    rate, client_ms = runs[len(runs) // 2]
    spread = f"{runs[0][0]:,.0f}–{runs[-1][0]:,.0f}"
    httpx_rate, httpx_ms = _in_own_process(pushes // 2, "httpx")
    sync_rate, sync_ms = _in_own_process(pushes // 2, "threads")
    prepare_us, decide_us = policy_us(repo / "examples/fitquest/engagement.yaml")
    ok = "met ✅" if rate >= TARGET_PUSHES_PER_SECOND else "**not met** ❌"
    return "\n".join(
        [
            "## Notifications",
            "",
            f"**Pushes per second from one process** to the FCM emulator running in its own process: **{rate:,.0f}/s**, "
            f"the median of {DELIVER_RUNS} runs of {pushes:,} ({spread}/s) (target ≥ {TARGET_PUSHES_PER_SECOND:,}/s: "
            f"{ok}).",
            "",
            "| sender | pushes | pushes/s | sender CPU ms per push |",
            "|---|---:|---:|---:|",
            f"| the `deliver` function's `send_batch`: firebase-admin `send_each_async` in chunks of 500, over "
            f"aiohttp (the median run) | {pushes:,} | {rate:,.0f} | {client_ms:.2f} |",
            f"| the same over firebase-admin's own httpx transport | {pushes // 2:,} | {httpx_rate:,.0f} | "
            f"{httpx_ms:.2f} |",
            f"| firebase-admin `send_each` (a thread per message, chunks of 500) | {pushes // 2:,} "
            f"| {sync_rate:,.0f} | {sync_ms:.2f} |",
            f"| the whole `deliver` handler: SQS batches of 500 jobs to users with one device each (claim, device "
            f"query, send, done mark), on DynamoDB Local | {handled:,} | {whole_rate:,.0f} | {whole_ms:.2f} |",
            "",
            "The target is for the send. The whole handler (the last row) also makes three DynamoDB calls per push, "
            "which keep delivery exactly-once and its devices current: a Powertools idempotency claim and its done "
            "mark per job, and a query of the user's devices. On this machine those calls, not the send, bound the whole handler: "
            "botocore, Powertools and PynamoDB spend about 1.2–1.5 ms of CPU on each (a bare boto3 PutItem about "
            "0.75 ms), and DynamoDB Local shares the two cores. They go out 16 at a time, which halved their wall "
            "time here when the CPU was not the limit and is what counts where each call waits on the network (a "
            "batch of 500 jobs makes about 1,500 calls: one after the other, at a few ms each in AWS, seconds).",
            "",
            "`deliver` keeps firebase-admin's message building, authentication, timeout, retries and error mapping, "
            "puts aiohttp's HTTP/1.1 client (through `httpx-aiohttp`) under it, with up to 100 connections, and cuts "
            "three per-call costs of firebase-admin's client that FCM needs none of: a new google-auth `Request` (a "
            "`requests.Session`) per call, a deep copy of its retry settings per call, and the cookie jars of httpx "
            "and aiohttp (`engage.push.firebase.tune_for_throughput`; together about a quarter of the CPU per push "
            "over aiohttp alone, measured on 2026-11-23). Once the App is built, `ready_to_send` freezes firebase-admin "
            "and the libraries under it out of garbage collection, as each handler freezes its own imports at cold "
            "start: each chunk of 500 pushes in flight allocates enough to start full collections, which walked all "
            "of them again, an eighth of the rate (2,100–2,300/s before, measured on 2026-11-23). "
            "firebase-admin's own transport is httpx: over HTTP/1.1, "
            "which the emulator speaks, nearly all of its CPU goes to httpcore's connection pool (with many requests "
            "queued it hands one idle connection to several at once and all but one retry, encode/httpcore#1110, and "
            "it closes idle connections once the pool holds more than 20, encode/httpcore#1000; both unfixed in "
            "httpcore 1.0.9). Against FCM it would speak HTTP/2, whose framing (the `h2` package) is pure Python: a "
            "bare httpx HTTP/2 client spent ~0.6 ms of CPU per request against a trivial TLS server when tried on "
            "2026-11-22, more than a whole push over aiohttp. FCM serves HTTP/1.1 as well; firebase-admin's "
            "synchronous `send_each` uses it. HTTP/1.1 carries one request per connection at a time, so against FCM "
            "the 100 connections bound the pushes in flight (if a call to FCM takes 20–50 ms: 2,000–5,000/s). The "
            "emulator runs in its own process on the other core, on aiohttp's server: the sender kept 90–98% busy "
            "against it on 2026-11-23, as against a bare Node.js server that checks nothing, so it is not what "
            "limits these numbers: the sender's CPU is. (On http.server, a thread per connection, the emulator's "
            "threads took turns at the GIL and answered in bursts: the sender waited a fifth of the time, and the "
            "rate was 1,700–2,500/s that day.) Of its 0.32–0.35 ms per push (profiled on 2026-11-23), about a quarter goes to "
            "aiohttp, a quarter to the event loop and the socket writes, a fifth to httpx's request and response "
            "objects around the transport, a tenth to firebase-admin's auth and retry wrappers and the rest to "
            "building and encoding the message. The sender also waits at each chunk's start (`send_each_async` "
            "encodes all 500 messages before it sends one) and end (the last answers). On this machine single runs "
            "moved between about 2,300 and 3,150/s on 2026-11-23 with its load, hence the median of three. "
            "An event loop from `uvloop` saved about 4% of the CPU per push when tried, too little for a dependency. "
            "Web Push options ride only on pushes to browsers: on every push they cost about a tenth more CPU. "
            "`sniffio` is installed with the deliver "
            "function because without it httpcore retries a failed import on every request.",
            "",
            "| step, per fact | µs |",
            "|---|---:|",
            f"| triggers: match, CEL `when`, render the localized texts (`notify.triggers.prepare`) | {prepare_us:.1f} |",
            f"| policy: the decision with choices, quiet hours, caps (`notify.policy.decide`) | {decide_us:.1f} |",
            "",
        ]
    )


def handler_rate(deliver: Any, jobs: int = 2500, batch: int = 500) -> tuple[int, float, float]:
    """(jobs timed, pushes per second, this process's CPU ms per push) of the whole deliver handler (`deliver`:
    the local stack's HandlerPool of DeliverFunction) on the running stack's tables: SQS batches of `batch` jobs
    to users with one device each, sending to an emulator in its own process. The first batch warms up."""
    from ..push.firebase import close_emulator_app
    from ..services import deliver as service
    from ..settings import get_settings
    from ..store import devices
    from .server import LambdaContext

    now = datetime.now(UTC)
    for i in range(jobs):
        devices.register(
            f"bench-deliver-{i}", "phone", f"bench-deliver-{i}:APA91b" + "x" * 140, "token", "android", now
        )
    records = [_job_record(i, now) for i in range(jobs)]
    outcomes: Counter[str] = Counter()

    async def counted(app: Any, pushes: list[Push], now: datetime) -> list[PushResult]:
        results = await send_batch(app, pushes, now)
        outcomes.update(result.outcome for result in results)
        return results

    with _emulator_process() as endpoint:
        close_emulator_app()  # deliver builds its App for this emulator
        previous = os.environ.get("FCM_ENDPOINT")
        os.environ["FCM_ENDPOINT"] = endpoint
        get_settings.cache_clear()  # deliver reads FCM_ENDPOINT through the cached settings
        service.send_batch = counted  # type: ignore[assignment]  # to check every push went out
        try:
            deliver.invoke({"Records": records[:batch]}, LambdaContext("DeliverFunction", "bench-warm-up"))
            started, cpu = time.perf_counter(), time.process_time()
            for start in range(batch, jobs, batch):
                answer = deliver.invoke(
                    {"Records": records[start : start + batch]}, LambdaContext("DeliverFunction", f"bench-{start}")
                )
                if answer["batchItemFailures"]:
                    raise RuntimeError(f"deliver handed back {len(answer['batchItemFailures'])} jobs")
            elapsed, cpu_used = time.perf_counter() - started, time.process_time() - cpu
        finally:
            service.send_batch = send_batch  # type: ignore[assignment]
            close_emulator_app()
            if previous is None:
                os.environ.pop("FCM_ENDPOINT", None)
            else:
                os.environ["FCM_ENDPOINT"] = previous
            get_settings.cache_clear()
    if outcomes != Counter(sent=jobs):
        raise RuntimeError(f"deliver did not send every push: {dict(outcomes)}")
    timed = jobs - batch
    return timed, timed / elapsed, cpu_used / timed * 1000


def _job_record(i: int, now: datetime) -> dict[str, Any]:
    """The SQS record of the i-th bench delivery job, in Lambda's spelling."""
    from ..notify.jobs import DeliveryJob

    body = DeliveryJob(
        message_id=f"01KAS5N3J1X5Q7Y0D6Z8D{i:05d}",
        user_id=f"bench-deliver-{i}",
        trigger="badge-earned",
        title="New badge: First Step",
        body="Nice work, Ada! You earned First Step.",
        deep_link="fitquest://badges/first-workout",
        valid_until=now + timedelta(hours=2),
    ).model_dump_json()
    return {
        "messageId": f"bench-{i}",
        "receiptHandle": f"bench-{i}",
        "body": body,
        "attributes": {},
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:local:000000000000:bench",
        "awsRegion": "local",
    }


@contextmanager
def _emulator_process() -> Iterator[str]:
    """The FCM emulator in a process of its own (on the other core), and its base URL."""
    port = free_port()
    emulator = subprocess.Popen(
        [sys.executable, "-m", "engage.local.fcm_emulator", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert emulator.stdout is not None
        emulator.stdout.readline()  # "FCM emulator: POST …" once it listens
        yield f"http://127.0.0.1:{port}"
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)


def _in_own_process(count: int, sender: str) -> tuple[float, float]:
    """pushes_per_second in a fresh interpreter, as a deliver process is: in the bench's own process, its heap
    (100,000 seeded board rows and more) made each garbage collection long enough to cost a fifth of the rate."""
    code = f"import json; from engage.local.bench_push import pushes_per_second as p; print(json.dumps(p({count}, {sender!r})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    rate, cpu_ms = json.loads(out.stdout.strip().splitlines()[-1])
    return float(rate), float(cpu_ms)


def pushes_per_second(count: int, sender: Literal["deliver", "httpx", "threads"] = "deliver") -> tuple[float, float]:
    """(pushes per second, sender CPU ms per push) sending `count` distinct pushes after a warm-up: with
    deliver's sender over aiohttp, with the same over firebase-admin's own httpx transport (`httpx`), or with
    firebase-admin's synchronous send_each (`threads`)."""
    from ..push.firebase import close_connections, ready_to_send, run
    from .fcm_emulator import fcm_app

    with _emulator_process() as endpoint:
        app = fcm_app(endpoint)
        if sender == "deliver":
            app = ready_to_send(app)  # as deliver builds its App
        now = datetime.now(UTC)

        def batch(n: int, first: int) -> list[Push]:
            return [
                Push(
                    message_id=f"01KAS5N3J1X5Q7Y0D6Z8W{first + i:05d}",
                    token=f"bench-{first + i}:APA91b" + "x" * 140,
                    title="New badge: First Step",
                    body="Nice work, Ada! You earned First Step.",
                    trigger_id="badge-earned",
                    valid_until=now + timedelta(hours=2),
                    deep_link="fitquest://badges/first-workout",
                )
                for i in range(n)
            ]

        def send(pushes: list[Push]) -> list[PushResult]:
            if sender == "threads":
                return _send_each(app, pushes, datetime.now(UTC))
            return run(send_batch(app, pushes, now))

        send(batch(500, 0))  # warm-up: connections, imports
        pushes = batch(count, 10_000)
        started, cpu = time.perf_counter(), time.process_time()
        results = send(pushes)
        elapsed, cpu_used = time.perf_counter() - started, time.process_time() - cpu
        sent = sum(result.outcome == "sent" for result in results)
        if sent != count:
            raise RuntimeError(f"only {sent} of {count} pushes were accepted by the emulator")
        if sender == "deliver":
            run(close_connections(app))
        return count / elapsed, cpu_used / count * 1000


def _send_each(app: Any, pushes: list[Push], now: datetime) -> list[PushResult]:
    """firebase-admin's synchronous send_each (requests, a thread per message), in chunks of 500."""
    from firebase_admin import messaging

    results = []
    for start in range(0, len(pushes), MAX_BATCH):
        chunk = pushes[start : start + MAX_BATCH]
        answer = messaging.send_each([build_message(push, now) for push in chunk], app=app)
        results += [
            PushResult(p.message_id, "sent" if r.success else "retry")
            for p, r in zip(chunk, answer.responses, strict=True)
        ]
    return results


def policy_us(config_path: Path, facts: int = 5000) -> tuple[float, float]:
    """µs per fact for prepare() (a badge fact on the reference config) and for decide() on its candidate."""
    config = load_config_file(config_path)
    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    state = UserState(user_id="bench", profile=Profile("Europe/Berlin", "de-DE", None, "Ada Lovelace"))
    seen = [
        FactSeen(
            f"evt#client#e{i}#0",
            now,
            {
                "type": "badge_awarded",
                "event_id": f"e{i}",
                "badge": "first-workout",
                "name": "First Step",
                "tier": None,
            },
        )
        for i in range(facts)
    ]
    prepared = _per_item(lambda: prepare(config, state, seen, now), facts)
    candidates = [message.candidate for message in prepare(config, state, seen[:1], now)]
    prefs, history = user_prefs(config, state), PushHistory([now - timedelta(hours=5), now - timedelta(days=2)])
    assert config.notifications is not None
    caps = config.notifications.defaults.caps
    decided = _per_item(lambda: [decide(candidates, prefs, history, caps, now) for _ in range(facts)], facts)
    return prepared, decided


def _per_item(work: Callable[[], Any], items: int, rounds: int = 3) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best / items * 1e6

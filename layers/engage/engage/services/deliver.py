"""Function `deliver`: delivery jobs from SQS → pushes to the user's devices through FCM.

Exactly once, as far as FCM allows:
- each job is claimed with a Powertools idempotency record (key: message, kind, attempt) before sending, so
  an SQS redelivery of a job already sent sends nothing;
- what FCM could not take now (QUOTA_EXCEEDED, UNAVAILABLE, INTERNAL) goes back on the queue as the next
  attempt for the devices still owed it, after a backoff (Retry-After when FCM gives one);
- what will never go (our INVALID_ARGUMENT, attempts used up, a malformed job) goes to the dead-letter
  queue with its reason; a dead token (UNREGISTERED, invalid) deletes its device;
- if sending fails midway, the jobs are re-queued as their next attempt and this attempt is marked done (a
  killed process: SQS hands them out again once the claims' in-progress time has run out). FCM has no idempotency key, so a message it had accepted may be sent
  again, with the same Android tag and apns-collapse-id (the message id): the device shows it once.
"""

from __future__ import annotations

import contextvars
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, TypeVar

from pydantic import ValidationError

from ..notify.jobs import DeliveryJob
from ..push.sender import Push, PushResult, send_batch
from ..settings import get_settings
from ..store import devices, inbox, queues
from ..store.models import POOLED_CONNECTIONS

log = logging.getLogger(__name__)
T = TypeVar("T")

# Attempts a job gets (FCM said "later", or the function failed midway) before it is dead-lettered with the
# reason. They are re-queued jobs, not SQS receives: the queue's maxReceiveCount (template.yaml: 5) stays
# the backstop for a process killed outright, whose jobs SQS hands out again after the visibility timeout.
MAX_ATTEMPTS = 6


@dataclass(frozen=True)
class Received:
    """One SQS message: its id (for partial failures) and body."""

    record_id: str
    body: str


@dataclass
class Report:
    """What happened: SQS records to hand out again, and counts by outcome (for metrics)."""

    retry_records: set[str] = field(default_factory=set)
    outcomes: Counter[str] = field(default_factory=Counter)


def deliver(
    received: Sequence[Received],
    app: Any,
    run: Callable[[Any], Any],
    now: datetime | None = None,
    remaining_ms: int | None = None,
) -> Report:
    """Send the jobs of one SQS batch. `run` runs a coroutine on the process's event loop."""
    now = now or datetime.now(UTC)
    report = Report()
    jobs: list[tuple[Received, DeliveryJob]] = []
    for message in received:
        try:
            jobs.append((message, DeliveryJob.model_validate_json(message.body)))
        except ValidationError as exc:
            first = exc.errors()[0]
            queues.dead_letter(message.body, f"malformed delivery job: {first['loc']}: {first['msg']}")
            report.outcomes["malformed"] += 1
    unique: dict[str, tuple[Received, DeliveryJob]] = {}
    for message, job in _due(jobs, now, report):
        if job.idempotency_key in unique:  # the same job twice in one batch: the first copy stands for both
            report.outcomes["duplicate"] += 1  # (handed back as busy, it would wait out a visibility timeout)
            continue
        unique[job.idempotency_key] = (message, job)
    claimed: list[tuple[Received, DeliveryJob]] = []
    to_claim = list(unique.values())
    states = _together(lambda pair: _claim(pair[1], remaining_ms), to_claim)
    for (message, job), state in zip(to_claim, states, strict=True):
        if state == "claimed":
            claimed.append((message, job))
        elif state == "busy":  # another invocation is sending it now: look again later
            report.retry_records.add(message.record_id)
        else:
            report.outcomes["duplicate"] += 1
    try:
        claimed = _not_seen_meanwhile(claimed, report)
        pushes, owners = _pushes(claimed, now, report)
        results: list[PushResult] = run(send_batch(app, pushes, now)) if pushes else []
    except Exception as exc:
        log.exception("sending failed midway; the jobs go back on the queue as their next attempt")
        _after_crash(claimed, exc, report, now)
        return report
    answers: dict[int, list[tuple[devices.Target, PushResult]]] = {id(job): [] for _, job in claimed}
    for (owner, target), result in zip(owners, results, strict=True):
        answers[id(owner)].append((target, result))
    marked: list[Future[None]] = []
    for message, job in claimed:
        try:
            _settle(job, answers[id(job)], report, now)
        except Exception as exc:  # this job only: SQS hands it out again (a resend shows once: same tag)
            log.exception("could not record the outcome of %s", job.message_id)
            _release_claim(job, exc)
            report.retry_records.add(message.record_id)
            continue
        marked.append(_soon(_mark_done, job, {"done": True}))  # as soon as it is settled, while the next settles
    for mark in marked:
        mark.result()
    return report


def _together(work: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """work(item) for every item, up to POOLED_CONNECTIONS at a time; the results in order (the first exception
    is raised). A batch of 500 jobs makes about 1,500 DynamoDB calls (claim, device query, mark done), each
    waiting a few ms on the network: one after the other they took seconds.

    The first item is done in this thread before the others start: the DynamoDB clients that work builds on
    first use are then built once, not by every worker at once (a cold start's first batch built 17)."""
    if not items:
        return []
    first = work(items[0])
    rest = [_soon(work, item) for item in items[1:]]
    return [first, *(future.result() for future in rest)]


def _soon(work: Callable[..., T], *args: Any) -> Future[T]:
    """work(*args) on a worker, in a copy of this thread's context, as if called here (context variables: the
    local stack's log capture)."""
    return _workers().submit(contextvars.copy_context().run, work, *args)


@lru_cache(maxsize=1)
def _workers() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=POOLED_CONNECTIONS, thread_name_prefix="deliver-dynamodb")


def _due(
    jobs: Sequence[tuple[Received, DeliveryJob]], now: datetime, report: Report
) -> list[tuple[Received, DeliveryJob]]:
    """The jobs due now; the others (a Retry-After longer than one SQS delay) hop on, unsent and unclaimed, or
    are dropped as expired if they would only wait to expire."""
    not_due = [(message, job) for message, job in jobs if job.not_before is not None and job.not_before > now]
    waiting = [(message, job) for message, job in not_due if job.valid_until > now]
    if len(waiting) < len(not_due):
        report.outcomes["expired"] += len(not_due) - len(waiting)
    if waiting:
        _wait(waiting, now, report)
    held = {message.record_id for message, _ in not_due}
    return [(message, job) for message, job in jobs if message.record_id not in held]


def _not_seen_meanwhile(
    claimed: list[tuple[Received, DeliveryJob]], report: Report
) -> list[tuple[Received, DeliveryJob]]:
    """The jobs still to send: a push whose message the user has read or archived in the inbox meanwhile (while
    it waited in the queue, or for a retry) is done unsent: its clear went out when they read it, maybe before
    this push could put it in the tray, where it would stay for good. One BatchGetItem per 100 pushes."""

    def push(job: DeliveryJob) -> bool:  # a clear for the same message still goes out
        return job.kind == "push"

    seen = inbox.seen(sorted({(job.user_id, job.message_id) for _, job in claimed if push(job)}))

    def skipped(job: DeliveryJob) -> bool:
        return push(job) and (job.user_id, job.message_id) in seen

    done_meanwhile = [job for _, job in claimed if skipped(job)]
    if done_meanwhile:
        report.outcomes["seen"] += len(done_meanwhile)
    _together(lambda job: _mark_done(job, {"seen": True}), done_meanwhile)
    return [(message, job) for message, job in claimed if not skipped(job)]


def _pushes(
    claimed: Sequence[tuple[Received, DeliveryJob]], now: datetime, report: Report
) -> tuple[list[Push], list[tuple[DeliveryJob, devices.Target]]]:
    """One push per job and targetable device (one device query per user), and whose each push is. A clear
    skips browsers: a web push that shows no notification makes Chrome show one of its own ("this site has
    been updated in the background"), and the page's inbox is the browser's tray anyway."""
    users = sorted({job.user_id for _, job in claimed})
    targets = dict(zip(users, _together(lambda user_id: devices.targets(user_id, now), users), strict=True))
    pushes: list[Push] = []
    owners: list[tuple[DeliveryJob, devices.Target]] = []
    for _, job in claimed:
        chosen = [
            t
            for t in targets[job.user_id]
            if (job.devices is None or t.device_id in job.devices) and not (job.kind == "clear" and t.platform == "web")
        ]
        if not chosen:
            report.outcomes["no_device"] += 1  # the inbox has it; nothing to push to
        for target in chosen:
            pushes.append(_push(job, target))
            owners.append((job, target))
    return pushes, owners


def _settle(
    job: DeliveryJob, answers: Sequence[tuple[devices.Target, PushResult]], report: Report, now: datetime
) -> None:
    """Act on FCM's answers for one job: clean up dead devices, dead-letter what FCM refused, and last (so a
    failure before it leaves no next attempt behind) queue the devices still owed it as the next attempt."""
    retry: list[tuple[str, PushResult]] = []
    refused: list[tuple[str, str]] = []
    for target, result in answers:
        report.outcomes[result.outcome] += 1
        if result.outcome == "drop_device":
            devices.remove_dead(job.user_id, target)
        elif result.outcome == "retry":
            retry.append((target.device_id, result))
        elif result.outcome == "dead_letter":
            refused.append((target.device_id, result.detail))
    if refused:
        reasons = "; ".join(sorted({detail for _, detail in refused}))
        _dead_letter(job, [device for device, _ in refused], f"FCM refused the message: {reasons}")
    if retry:
        later = job.model_copy(update={"devices": [device for device, _ in retry]})
        _retry_or_dead_letter([later], retry[-1][1].detail, [result for _, result in retry], report, now)


def _after_crash(
    claimed: Sequence[tuple[Received, DeliveryJob]], exc: Exception, report: Report, now: datetime
) -> None:
    """Queue each job as its next attempt and mark this attempt done, so that neither an SQS redelivery of
    it nor anything else sends it again; a job that cannot even be queued is released for SQS instead."""
    for message, job in claimed:
        try:
            _retry_or_dead_letter([job], f"delivery failed: {exc!r}", [], report, now)
        except Exception:
            log.exception("could not re-queue %s; SQS hands it out again after the visibility timeout", job.message_id)
            _release_claim(job, exc)
            report.retry_records.add(message.record_id)
            continue
        _mark_done(job, {"requeued": True})


def _retry_or_dead_letter(
    jobs: Sequence[DeliveryJob], why: str, failures: Sequence[PushResult], report: Report, now: datetime
) -> None:
    """Each job again as its next attempt after a backoff, or, with its attempts used up, to the dead letters."""
    outgoing = []
    for job in jobs:
        if job.attempt + 1 >= MAX_ATTEMPTS:
            _set_aside(job, f"gave up after {MAX_ATTEMPTS} attempts: {why}")
            report.outcomes["gave_up"] += 1
            continue
        wait = backoff(job.attempt, failures, get_settings().delivery_retry_base_seconds)
        later: dict[str, object] = {"attempt": job.attempt + 1}
        if wait > queues.MAX_DELAY_SECONDS:  # longer than one SQS delay: hops until then (see _wait)
            later["not_before"] = now + timedelta(seconds=wait)
        outgoing.append(
            queues.Outgoing(job.model_copy(update=later).model_dump_json(), min(wait, queues.MAX_DELAY_SECONDS))
        )
    if outgoing:
        queues.send(queues.delivery_queue(), outgoing)


def _wait(early: Sequence[tuple[Received, DeliveryJob]], now: datetime, report: Report) -> None:
    """Jobs not due yet (a Retry-After beyond one SQS delay) go back for another hop, unsent and unclaimed."""
    hops = [queues.Outgoing(job.model_dump_json(), _seconds_until(job.not_before, now)) for _, job in early]
    try:
        queues.send(queues.delivery_queue(), hops)
    except Exception:
        log.exception("could not re-queue jobs that are not due; SQS hands them out again")
        report.retry_records.update(message.record_id for message, _ in early)


def _seconds_until(moment: datetime | None, now: datetime) -> int:
    seconds = (moment - now).total_seconds() if moment is not None else 0
    return max(0, min(int(seconds + 0.999), queues.MAX_DELAY_SECONDS))


def backoff(attempt: int, failures: Sequence[PushResult], base: float) -> int:
    """Seconds before the next attempt: what FCM's Retry-After asks (however long: waits beyond one SQS delay
    are chained hops), else `base` doubled per attempt, at most 15 minutes."""
    asked = max((f.retry_after for f in failures if f.retry_after is not None), default=0.0)
    return int(max(asked, min(base * 2**attempt, queues.MAX_DELAY_SECONDS)))


def _push(job: DeliveryJob, target: devices.Target) -> Push:
    return Push(
        message_id=job.message_id,
        token=target.token,
        title=job.title,
        body=job.body,
        trigger_id=job.trigger or "engage",
        valid_until=job.valid_until,
        deep_link=job.deep_link,
        actions=job.actions,
        collapse_key=job.collapse_key,
        fid=target.fid,
        silent=job.kind == "clear",
        web=target.platform == "web",
    )


def _dead_letter(job: DeliveryJob, device_ids: list[str], reason: str) -> None:
    _set_aside(job.model_copy(update={"devices": device_ids}), reason)


def _set_aside(job: DeliveryJob, reason: str) -> None:
    """Dead-letter the job as its next attempt. This attempt is marked done once settled, so the very same
    job redriven after a fix would be skipped as sent; as the next attempt it is tried once more."""
    queues.dead_letter(job.model_copy(update={"attempt": job.attempt + 1}).model_dump_json(), reason[:1000])


# ---------------------------------------------------------------- idempotency (Powertools)


def _claim(job: DeliveryJob, remaining_ms: int | None) -> str:
    """'claimed' (ours to send), 'done' (sent before: skip) or 'busy' (another invocation holds it)."""
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyItemAlreadyExistsError,
        IdempotencyItemNotFoundError,
    )
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

    persistence = _idempotency()
    data = {"key": job.idempotency_key}
    try:
        persistence.save_inprogress(data, remaining_ms)
        return "claimed"
    except IdempotencyItemAlreadyExistsError as exc:
        record: DataRecord | None = exc.old_data_record
        if record is None:
            try:
                record = persistence.get_record(data)
            except IdempotencyItemNotFoundError:  # gone meanwhile (expired): look again with the next receive
                return "busy"
        return "done" if record is not None and record.status == "COMPLETED" else "busy"


def _mark_done(job: DeliveryJob, result: dict[str, Any]) -> None:
    """Record the job as done. If even that fails, its record stays "in progress" and SQS still deletes the
    message (it was handled): raising here would fail the whole batch, and once the claims of the jobs handled
    after this one expired, their redelivery would send them again."""
    try:
        _idempotency().save_success({"key": job.idempotency_key}, result)
    except Exception:
        log.exception("could not record %s as done; its claim keeps others from sending it", job.message_id)


def _release_claim(job: DeliveryJob, exc: Exception) -> None:
    """Let the next receive of this job claim it again; if that fails, the claim expires on its own first."""
    try:
        _idempotency().delete_record({"key": job.idempotency_key}, exc)
    except Exception:
        log.exception("could not release the claim on %s; it expires by itself", job.message_id)


@lru_cache(maxsize=1)
def _idempotency() -> Any:
    """The persistence layer, created on first use (it makes its DynamoDB client when constructed)."""
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig
    from botocore.config import Config

    layer = DynamoDBPersistenceLayer(
        table_name=get_settings().required("idempotency_table"),
        boto_config=Config(max_pool_connections=POOLED_CONNECTIONS),  # claims go out together (_together)
    )
    # Records outlive SQS's retention (4 days), so a late redelivery still finds its job done.
    layer.configure(IdempotencyConfig(event_key_jmespath="key", expires_after_seconds=5 * 86_400), key_prefix="deliver")
    return layer

"""Function `notify`: committed facts → messages → the policy's decision → inbox row (+ delivery job).

Every message a trigger produces becomes an inbox row (but one already expired when first decided: it is only
counted), stored with a conditional write keyed by its id,
which is derived from (trigger, user, fact): a stream record handled twice stores nothing new and uses the
decision already stored, so one fact never yields two pushes (deliver's idempotency covers the job itself).
A push is stored (or, released, settled) in one transaction with the user's push log, conditioned on the
log's version, so decisions racing for one user cannot together exceed a cap; then it becomes a delivery
job. A quiet-hours deferral waits on the deferred queue and is decided again when due (release_deferred),
against the user as they are then.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from ulid import ULID

from ..config.schema import Caps, EngagementConfig, Trigger
from ..engine.model import UserState
from ..notify.jobs import DeferredRelease, DeliveryJob
from ..notify.policy import Candidate, Decision, Inputs, Limits, PushHistory, Usage, decide, release_due
from ..notify.triggers import (
    FactSeen,
    Prepared,
    holds,
    prepare,
    prepared_message,
    scheduled_fact,
    scope,
    user_prefs,
)  # fmt: skip
from ..retries import back_off
from ..store import inbox, queues
from ..store.progress import load_user
from .config import active_config

log = logging.getLogger(__name__)

# The caps look back one ISO week and a day at most.
HISTORY = timedelta(days=8)
OPENED = "notification_opened"
# Decisions for one user that lose the race to the push log decide again, this many times in all.
LOG_ATTEMPTS = 3


class PushLogBusy(RuntimeError):
    """Other decisions for the user kept logging pushes first: the batch fails and is retried later."""


@dataclass
class Tally:
    """What a batch decided, for metrics: decision counts by action and reason."""

    decisions: Counter[str] = field(default_factory=Counter)
    opens: int = 0
    failed_users: list[str] = field(default_factory=list)  # a schedule run's users to run again

    def add(self, decision: Decision) -> None:
        self.decisions[f"{decision.action}:{decision.reason}"] += 1


@dataclass(frozen=True)
class LedgerRow:
    """What notify needs of one new ledger row (a DynamoDB stream NEW_IMAGE, already deserialized)."""

    user_id: str
    sk: str
    ts: str  # ULID of the write
    event_type: str
    occurred_at: datetime | None
    properties: dict[str, Any]
    facts: list[dict[str, Any]]

    @classmethod
    def from_image(cls, image: dict[str, Any]) -> LedgerRow:
        """From a stream NEW_IMAGE as Powertools deserializes it (numbers as Decimal, which CEL does not take)."""
        image = _plain(image)
        occurred = image.get("occurred_at")
        return cls(
            user_id=str(image["user_id"]),
            sk=str(image["sk"]),
            ts=str(image["ts"]),
            event_type=str(image.get("event_type", "")),
            occurred_at=datetime.fromisoformat(occurred) if occurred else None,
            properties=dict(image.get("properties") or {}),
            facts=[dict(fact) for fact in image.get("facts") or []],
        )

    def seen(self) -> list[FactSeen]:
        at = ULID.from_str(self.ts).datetime.astimezone(UTC)
        return [FactSeen(f"{self.sk}#{index}", at, fact) for index, fact in enumerate(self.facts)]


def handle_rows(rows: Sequence[LedgerRow], now: datetime | None = None, tally: Tally | None = None) -> Tally:
    """Handle new ledger rows of one user, in order: attribute opens, then decide on the facts' messages."""
    tally = tally or Tally()
    now = now or datetime.now(UTC)
    if not rows:
        return tally
    user_id = rows[0].user_id
    for row in rows:
        if row.event_type == OPENED:
            tally.opens += _attribute_open(row)
    facts = [seen for row in rows for seen in row.seen()]
    config = active_config().config
    if not facts or config.notifications is None:
        return tally
    if not any(trigger.on == seen.fact.get("type") for seen in facts for trigger in config.notifications.triggers):
        return tally  # no trigger listens: no read of the user at all
    state = load_user(user_id)
    decide_and_store(config, state, prepare(config, state, facts, now), now, tally)
    return tally


def run_schedule(trigger_id: str, user_ids: Iterable[str], now: datetime | None = None) -> Tally:
    """Evaluate a schedule trigger (e.g. streak-at-risk) for these users now: the scheduler calls this at the
    trigger's local time; tests and `engage notify schedule` call it directly. Once per user and local day."""
    now = now or datetime.now(UTC)
    config = active_config().config
    trigger = _trigger(config, trigger_id)
    if trigger is None or trigger.on != "schedule":
        schedules = [t.id for t in config.notifications.triggers if t.on == "schedule"] if config.notifications else []
        raise LookupError(f"no schedule trigger {trigger_id!r}. Fix: use one of {', '.join(schedules) or '(none)'}")
    tally = Tally()
    for user_id in user_ids:
        try:
            _schedule_one(config, trigger, user_id, now, tally)
        except Exception:  # one user's failure does not stop the run; running it again decides them once
            log.exception("schedule %s failed for user %s; run it again for them", trigger_id, user_id)
            tally.failed_users.append(user_id)
    return tally


def _schedule_one(config: EngagementConfig, trigger: Trigger, user_id: str, now: datetime, tally: Tally) -> None:
    state = load_user(user_id)
    seen = scheduled_fact(config, trigger, state, now)
    values = scope(config, trigger, state, seen, now)
    if holds(trigger, values):
        decide_and_store(config, state, [prepared_message(config, trigger, state, seen, values)], now, tally)


def decide_and_store(
    config: EngagementConfig, state: UserState, prepared: Sequence[Prepared], now: datetime, tally: Tally
) -> None:
    """The policy's decisions for one user's candidates, each stored in the inbox and acted on.

    Messages an earlier attempt already stored (a retried stream record) keep the decision stored then and
    are only acted on again (deliver's idempotency makes a repeated job send nothing); the others are
    decided now, against the push log; a push among them is stored in one transaction with its log entry.
    """
    if not prepared:
        return
    decided = _decide_and_log(config, state, prepared, now)
    deliveries: list[queues.Outgoing] = []
    deferrals: list[queues.Outgoing] = []
    for message in prepared:
        message_id = message.candidate.message_id
        if message_id in decided.earlier:
            row = decided.earlier[message_id]
            decision = _stored_decision(row, decided.inputs)
        elif decided.pushed is not None and message_id == decided.pushed.message_id:
            decision, row = decided.decisions[message_id], decided.pushed
        else:
            decision, row = _store(state.user_id, message, decided.decisions[message_id])
        tally.add(decision)
        if decision.action == "push":
            deliveries.append(_delivery(state.user_id, row, message.trigger, message.candidate.valid_until))
        elif decision.action == "defer":
            deferrals.append(_deferral(state.user_id, message, decision))
    if deliveries:
        queues.send(queues.delivery_queue(), deliveries)
    if deferrals:
        queues.send(queues.deferred_queue(), deferrals)


@dataclass(frozen=True)
class _Decided:
    earlier: dict[str, inbox.Message]  # rows an earlier attempt stored: their decisions stand
    decisions: dict[str, Decision]  # of the other messages, decided now
    pushed: inbox.Message | None  # the push among them, already stored with its log entry
    inputs: Inputs  # what the policy saw (recorded with the decisions)


def _decide_and_log(
    config: EngagementConfig, state: UserState, prepared: Sequence[Prepared], now: datetime
) -> _Decided:
    """Decide the messages not stored yet and store their push (if any) with its log entry; read and decide
    again when another decision for the user wrote the log first."""
    caps = config.notifications.defaults.caps if config.notifications else Caps()
    prefs = user_prefs(config, state)
    by_id = {p.candidate.message_id: p for p in prepared}
    for attempt in range(LOG_ATTEMPTS):
        if attempt:
            back_off(attempt)
        earlier, log = inbox.lookup(state.user_id, list(by_id))
        fresh = [p.candidate for p in prepared if p.candidate.message_id not in earlier]
        decided = decide(fresh, prefs, PushHistory(log.since(now - HISTORY)), caps, now) if fresh else []
        pushed_before = [m for m, row in earlier.items() if row.push.get("decision") == "push"]
        if pushed_before:  # one push per moment: an earlier attempt already pushed one of these
            decided = [_instead(d, pushed_before[0]) if d.action == "push" else d for d in decided]
        push = next((d for d in decided if d.action == "push"), None)
        pushed = _row(by_id[push.message_id], push) if push else None
        if pushed is None or inbox.add_pushed(state.user_id, log, pushed, HISTORY):
            inputs = decided[0].inputs if decided else _bare_inputs(now)
            return _Decided(earlier, {d.message_id: d for d in decided}, pushed, inputs)
    raise PushLogBusy(f"user {state.user_id}: the push log kept changing (or was throttled) in {LOG_ATTEMPTS} tries")


def release_deferred(jobs: Sequence[DeferredRelease], now: datetime | None = None, tally: Tally | None = None) -> Tally:
    """Deferred messages whose time may have come (any users): wait another hop, or decide again and act.

    The messages of one user that are due together are decided together (one push at most), against the user
    as they are now: validity, the trigger's `when` on their current state, their choices, quiet hours, caps.
    A message an earlier delivery of the same job already settled is not decided again (if it was pushed, its
    delivery is queued again: that attempt may have died before queueing it, and deliver sends it once).
    """
    now = now or datetime.now(UTC)
    tally = tally or Tally()
    by_user: dict[str, list[DeferredRelease]] = {}
    for job in jobs:
        if job.deliver_at > now:
            _wait(job, now)
        else:
            by_user.setdefault(job.user_id, []).append(job)
    for user_id, due in by_user.items():
        _release_user(user_id, due, now, tally)
    return tally


def _release_user(user_id: str, jobs: Sequence[DeferredRelease], now: datetime, tally: Tally) -> None:
    config = active_config().config
    caps = config.notifications.defaults.caps if config.notifications else Caps()
    latest: dict[str, DeferredRelease] = {}  # one message may come twice (a repeated hop): decide it once
    for job in jobs:
        if job.message_id not in latest or job.deliver_at > latest[job.message_id].deliver_at:
            latest[job.message_id] = job
    stored, log = inbox.lookup(user_id, list(latest))
    _requeue_pushed(user_id, config, [job for job in latest.values() if job.message_id in stored], stored)
    state: UserState | None = None
    for attempt in range(LOG_ATTEMPTS):
        if attempt:  # another decision wrote the log first: the rows and the log, read again
            back_off(attempt)
            stored, log = inbox.lookup(user_id, list(latest))
        pending = [job for job in latest.values() if _deferred(stored.get(job.message_id))]
        if not pending:
            return
        state = state or load_user(user_id)
        due = [_due_candidate(config, state, job, stored[job.message_id], now) for job in pending]
        history = PushHistory(log.since(now - HISTORY))
        decisions = release_due(due, now, prefs=user_prefs(config, state), history=history, caps=caps)
        push = next((d for d in decisions if d.action == "push"), None)
        if push is None or inbox.settle_pushed(user_id, log, push.message_id, _push_record(push), HISTORY):
            break
    else:
        raise PushLogBusy(f"user {user_id}: the push log kept changing (or was throttled) in {LOG_ATTEMPTS} tries")
    for job, decision in zip(pending, decisions, strict=True):
        row = stored[job.message_id]
        if decision.action == "push":  # settled with its log entry above
            trigger = _trigger(config, job.trigger)
            assert trigger is not None  # a message whose trigger is gone is stale, never pushed
            queues.send(queues.delivery_queue(), [_delivery(user_id, row, trigger, job.valid_until)])
        elif decision.action == "defer":  # quiet hours again (the user changed them): wait for the new end
            assert decision.deliver_at is not None
            if not inbox.settle(user_id, job.message_id, _push_record(decision)):  # the new held_until
                continue  # another release of it settled it meanwhile
            _wait(job.model_copy(update={"deliver_at": decision.deliver_at}), now)
        else:
            archive = now if decision.reason == "stale" else None  # no longer true: it would mislead in the inbox
            if not inbox.settle(user_id, job.message_id, _push_record(decision), archive_at=archive):
                continue
        tally.add(decision)


def _deferred(row: inbox.Message | None) -> bool:
    return row is not None and row.push.get("decision") == "defer"


def _due_candidate(
    config: EngagementConfig, state: UserState, job: DeferredRelease, row: inbox.Message, now: datetime
) -> tuple[Candidate, bool]:
    """A held message as the policy's candidate, and whether the trigger's `when` still holds on the user now."""
    trigger = _trigger(config, job.trigger)
    seen = FactSeen(job.fact_key, job.created_at, job.fact)
    candidate = Candidate(
        job.message_id, job.trigger, trigger.category if trigger else "", trigger.priority if trigger else 0,
        job.fact_key, job.created_at, job.valid_until, seen=bool(row.read_at or row.archived_at),
        position=seen.position,
    )  # fmt: skip
    return candidate, trigger is not None and holds(trigger, scope(config, trigger, state, seen, now))


def _requeue_pushed(
    user_id: str, config: EngagementConfig, jobs: Sequence[DeferredRelease], stored: dict[str, inbox.Message]
) -> None:
    """A release job that comes again after its message was settled as pushed (the attempt that settled it may
    have died before queueing it): queue the delivery again; deliver's idempotency sends it once."""
    again = [
        _delivery(user_id, row, trigger, job.valid_until)
        for job in jobs
        if (row := stored[job.message_id]).push.get("decision") == "push"
        and (trigger := _trigger(config, job.trigger)) is not None
    ]
    if again:
        queues.send(queues.delivery_queue(), again)  # one SendMessageBatch per 10, not a call per job


# ---------------------------------------------------------------- steps


def _instead(decision: Decision, pushed: str) -> Decision:
    return replace(decision, action="inbox", reason="lower_priority", detail=f"{pushed} was pushed instead")


def _store(user_id: str, message: Prepared, decision: Decision) -> tuple[Decision, inbox.Message]:
    """The inbox row for a message (none for one dropped as expired); if a concurrent attempt stored it first,
    its decision wins."""
    row = _row(message, decision)
    if decision.action == "drop" or inbox.add(user_id, row):
        return decision, row
    stored = inbox.get(user_id, row.message_id)
    return (decision, row) if stored is None else (_stored_decision(stored, decision.inputs), stored)


def _row(message: Prepared, decision: Decision) -> inbox.Message:
    """A message's inbox row: its texts in the user's language, and the decision taken on it."""
    text = message.rendered
    return inbox.Message(
        message_id=message.candidate.message_id,
        trigger=message.trigger.id,
        category=message.trigger.category,
        title=text.title,
        body=text.body,
        deep_link=text.deep_link,
        actions=[{"id": a.id, "title": a.title, "deep_link": a.deep_link} for a in text.actions],
        push=_push_record(decision),
        created_at=message.candidate.created_at,
        read_at=None,
        archived_at=None,
        opened_at=None,
    )


def _stored_decision(row: inbox.Message, inputs: Inputs) -> Decision:
    """The decision an inbox row records (made by an earlier attempt), in the policy's terms."""
    record = row.push
    deliver_at = record.get("deliver_at")
    return Decision(
        row.message_id, record.get("decision", "inbox"), record.get("reason", "ok"),
        datetime.fromisoformat(deliver_at) if deliver_at else None, inputs, "decided by an earlier attempt",
    )  # fmt: skip


def _bare_inputs(now: datetime) -> Inputs:
    """Inputs for a decision taken from a stored row when nothing was decided now (they are only recorded)."""
    return Inputs(now, now, None, Limits(None, None, None, None), Usage(0, 0, None))


def _push_record(decision: Decision) -> dict[str, Any]:
    """How the inbox row remembers a decision: its action, reason and words, and when."""
    record: dict[str, Any] = {
        "decision": decision.action,
        "reason": decision.reason,
        "detail": decision.detail,
        "at": decision.inputs.now.isoformat(),
    }
    if decision.deliver_at is not None:
        record["deliver_at"] = decision.deliver_at.isoformat()
    return record


def _delivery(user_id: str, row: inbox.Message, trigger: Trigger, valid_until: datetime) -> queues.Outgoing:
    """The delivery job of a message, with the texts of its inbox row (push and inbox always say the same)."""
    job = DeliveryJob(
        message_id=row.message_id,
        user_id=user_id,
        trigger=trigger.id,
        title=row.title,
        body=row.body,
        deep_link=row.deep_link,
        actions=row.actions,
        collapse_key=trigger.collapse_key,
        valid_until=valid_until,
    )
    return queues.Outgoing(job.model_dump_json())


def _deferral(user_id: str, message: Prepared, decision: Decision) -> queues.Outgoing:
    assert decision.deliver_at is not None
    job = DeferredRelease(
        message_id=message.candidate.message_id,
        user_id=user_id,
        trigger=message.trigger.id,
        fact_key=message.fact.key,
        fact=message.fact.fact,
        created_at=message.candidate.created_at,
        valid_until=message.candidate.valid_until,
        deliver_at=decision.deliver_at,
    )
    return queues.Outgoing(job.model_dump_json(), _delay(decision.deliver_at, decision.inputs.now))


def _wait(job: DeferredRelease, now: datetime) -> None:
    """Back on the deferred queue for up to 15 minutes (SQS's longest delay); hops chain until due."""
    queues.send(queues.deferred_queue(), [queues.Outgoing(job.model_dump_json(), _delay(job.deliver_at, now))])


def _delay(deliver_at: datetime, now: datetime) -> int:
    seconds = (deliver_at - now).total_seconds()
    return max(0, min(int(seconds + 0.999), queues.MAX_DELAY_SECONDS))


def _attribute_open(row: LedgerRow) -> int:
    message_id = row.properties.get("message_id")
    if not isinstance(message_id, str) or not message_id:
        return 0
    return int(inbox.mark_opened(row.user_id, message_id, row.occurred_at or datetime.now(UTC)))


def _trigger(config: EngagementConfig, trigger_id: str) -> Trigger | None:
    if config.notifications is None:
        return None
    return next((t for t in config.notifications.triggers if t.id == trigger_id), None)


def _plain(value: Any) -> Any:
    """Decimals to int or float, sets to lists, recursively: the JSON types CEL and templates read."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | set | tuple):
        return [_plain(item) for item in value]
    return value

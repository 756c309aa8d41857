"""Whether a message is pushed now, later, or only put in the inbox: one pure decision per candidate.

The policy is customer-centric (PRODUCT.md, principles 2 and 3): the user's choices come first, a stale
message is never sent, quiet hours and caps are read on the user's own clock, and a push that is not
allowed is downgraded to the inbox, never silently lost. Every decision carries a stable reason code
and the inputs it was made from, so "why did (not) I get this?" has an answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Literal

from ..config.schema import Caps, QuietHours
from ..config.types import tzinfo_of

DecisionAction = Literal["push", "inbox", "defer", "drop"]
Reason = Literal[
    "opted_out",
    "paused",
    "expired",
    "stale",
    "seen",
    "quiet_hours",
    "cap_per_day",
    "cap_per_week",
    "min_gap",
    "budget",
    "lower_priority",
    "ok",
]


@dataclass(frozen=True)
class Candidate:
    """A message a trigger wants to push; `fact_key` names the fact it is about (one push per fact).

    `seen`: the user has already read or archived it in the inbox (a held message can be, by its release).
    `position`: the fact's place among those of the event that caused it (level 3 comes after level 2).
    """

    message_id: str
    trigger_id: str
    category: str
    priority: int
    fact_key: str
    created_at: datetime
    valid_until: datetime
    seen: bool = False
    position: int = 0


@dataclass(frozen=True)
class UserPrefs:
    """The user's own choices, already resolved: `quiet_hours` is theirs or the config default."""

    opted_out: set[str] = field(default_factory=set)  # category ids
    paused_until: datetime | None = None
    quiet_hours: QuietHours | None = None
    timezone: str = "UTC"
    weekly_budget: int | None = None  # only ever lowers the configured per_week cap


@dataclass(frozen=True)
class PushHistory:
    """When the user was recently pushed to (at least the last ISO week and a day)."""

    sent_at: list[datetime] = field(default_factory=list)


@dataclass(frozen=True)
class Limits:
    per_day: int | None
    per_week: int | None
    weekly_budget: int | None
    min_gap: timedelta | None


@dataclass(frozen=True)
class Usage:
    """Pushes as the caps count them: in the user's local day and ISO week, and the latest one."""

    today: int
    this_week: int
    last_at: datetime | None

    def plus(self, at: datetime) -> Usage:
        return Usage(self.today + 1, self.this_week + 1, at if self.last_at is None else max(self.last_at, at))


@dataclass(frozen=True)
class Inputs:
    """What a decision was made from: the moment, the user's wall clock, their quiet hours, limits and usage."""

    now: datetime  # UTC
    local_now: datetime  # the same moment on the user's clock
    quiet_hours: QuietHours | None
    limits: Limits
    usage: Usage


@dataclass(frozen=True)
class Decision:
    message_id: str
    action: DecisionAction
    reason: Reason
    deliver_at: datetime | None  # UTC, for a defer only
    inputs: Inputs
    detail: str = ""  # the reason in words, for logs and "why did I get this?"


# ---------------------------------------------------------------- the user's clock


def _utc(moment: datetime) -> datetime:
    # Aware datetimes sharing one tzinfo compare and subtract by wall time: do all arithmetic in UTC.
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} has no time zone. Fix: pass an aware datetime (e.g. tzinfo=UTC)")
    return moment.astimezone(UTC)


def _minutes(hhmm: str) -> int:
    hours, _, minutes = hhmm.partition(":")
    return int(hours) * 60 + int(minutes)


def quiet_until(quiet: QuietHours | None, now: datetime, zone: tzinfo) -> datetime | None:
    """The end of the quiet window `now` is in (UTC), or None outside it (or without quiet hours).

    The window is read on the user's wall clock, so it follows DST; a window whose start is after its end
    (21:30–08:00) crosses midnight. An end that falls in a DST gap is read with the offset before the change
    (02:30 on a spring-forward night ends at 03:30): late rather than early; one that happens twice (a
    fall-back night) ends at its next occurrence. start == end is no window.
    """
    if quiet is None:
        return None
    start, end = _minutes(quiet.start), _minutes(quiet.end)
    local = _utc(now).astimezone(zone)
    minute = local.hour * 60 + local.minute
    end_day: date = local.date()
    if start < end:
        inside = start <= minute < end
    elif start > end:
        inside = minute >= start or minute < end
        if minute >= start:
            end_day += timedelta(days=1)
    else:
        inside = False
    if not inside:
        return None
    # On the night clocks go back the end's wall time may happen twice: the first time unless that has passed.
    for fold in (0, 1):
        end_at = datetime.combine(end_day, time(end // 60, end % 60, fold=fold), tzinfo=zone).astimezone(UTC)
        if end_at > _utc(now):
            return end_at
    return None


def _usage(sent_at: Iterable[datetime], now: datetime, zone: tzinfo) -> Usage:
    day = now.astimezone(zone).date()
    week = day.isocalendar()[:2]
    today = this_week = 0
    last: datetime | None = None
    for moment in sent_at:
        at = _utc(moment)
        local_day = at.astimezone(zone).date()
        today += local_day == day
        this_week += local_day.isocalendar()[:2] == week
        last = at if last is None else max(last, at)
    return Usage(today, this_week, last)


def _limits(caps: Caps, prefs: UserPrefs) -> Limits:
    budget = None if prefs.weekly_budget is None else max(prefs.weekly_budget, 0)
    return Limits(caps.per_day, caps.per_week, budget, caps.min_gap)


def _capped(limits: Limits, usage: Usage, now: datetime) -> tuple[Reason, str] | None:
    """The first cap that forbids one more push now, in the order per_day, per_week, min_gap, budget."""
    if limits.per_day is not None and usage.today >= limits.per_day:
        return "cap_per_day", f"{usage.today} pushes today (local), cap {limits.per_day}"
    if limits.per_week is not None and usage.this_week >= limits.per_week:
        return "cap_per_week", f"{usage.this_week} pushes this ISO week (local), cap {limits.per_week}"
    if limits.min_gap is not None and usage.last_at is not None and now - usage.last_at < limits.min_gap:
        return "min_gap", f"last push at {usage.last_at.isoformat()}, min_gap {limits.min_gap}"
    if limits.weekly_budget is not None and usage.this_week >= limits.weekly_budget:
        return "budget", f"{usage.this_week} pushes this ISO week, the user's budget is {limits.weekly_budget}"
    return None


# Rule 5 across decisions: messages decided apart but within this long of a push (a quiet window's end whose
# messages reach notify in two invocations, a retry) are "at once" too, also without a configured min_gap.
AT_ONCE = timedelta(minutes=1)


def _just_pushed(usage: Usage, now: datetime) -> tuple[Reason, str] | None:
    if usage.last_at is not None and now - usage.last_at < AT_ONCE:
        return "lower_priority", f"a push went out at {usage.last_at.isoformat()}, under a minute ago: one at a time"
    return None


# ---------------------------------------------------------------- the policy


def _before_caps(
    candidate: Candidate, prefs: UserPrefs, now: datetime, zone: tzinfo
) -> tuple[DecisionAction, Reason, datetime | None, str] | None:
    """Rules 1–3, which depend on this candidate alone: choices, validity, quiet hours."""
    if candidate.category in prefs.opted_out:
        return "inbox", "opted_out", None, f"category {candidate.category!r} is opted out"
    if prefs.paused_until is not None and now < _utc(prefs.paused_until):
        return "inbox", "paused", None, f"pushes paused until {_utc(prefs.paused_until).isoformat()}"
    valid_until = _utc(candidate.valid_until)
    if now > valid_until:
        return "drop", "expired", None, f"valid until {valid_until.isoformat()}"
    window_end = quiet_until(prefs.quiet_hours, now, zone)
    if window_end is not None:
        assert prefs.quiet_hours is not None
        hours = f"quiet hours {prefs.quiet_hours.start}–{prefs.quiet_hours.end} {prefs.timezone}"
        if window_end < valid_until:
            return "defer", "quiet_hours", window_end, f"{hours}: deliver at {window_end.isoformat()}"
        return "inbox", "quiet_hours", None, f"{hours} outlast the validity ({valid_until.isoformat()})"
    return None


def decide(
    candidates: Sequence[Candidate], prefs: UserPrefs, history: PushHistory, caps: Caps, now: datetime
) -> list[Decision]:
    """One decision per candidate, in the candidates' order; at most one of them is a push.

    Applied in order, the first rule that applies giving the decision:
    1. the category is opted out, or pushes are paused now → inbox (opted_out, paused);
    2. now is after valid_until → drop (expired);
    3. now is inside quiet hours on the user's clock → defer to the window's end if that is before
       valid_until, else inbox (quiet_hours);
    4. caps on the user's local calendar — per_day (local day), per_week (local ISO week), min_gap since
       the last push, the user's weekly_budget — → inbox (cap_per_day, cap_per_week, min_gap, budget);
    5. of the candidates left, the highest priority is pushed (ok), and among equals the newest: the latest
       created_at, then the later fact of one event (level 3 rather than level 2), then message_id; the
       others go to the inbox (lower_priority): the user gets one push at a time. A push in the
       history less than AT_ONCE ago counts as one of them: all go to the inbox (lower_priority).

    Dedupe — never two pushes for one fact, e.g. when a stream record is delivered twice — is not decided
    here: the store's conditional write on the message (keyed by fact_key) is what guarantees it. Likewise
    the caller records each push in the history before the next decide() or release() for the same user.
    """
    now = _utc(now)
    zone = tzinfo_of(prefs.timezone)
    limits = _limits(caps, prefs)
    inputs = Inputs(now, now.astimezone(zone), prefs.quiet_hours, limits, _usage(history.sent_at, now, zone))
    decisions: dict[int, Decision] = {}
    contenders: list[int] = []
    for index, candidate in enumerate(candidates):
        early = _before_caps(candidate, prefs, now, zone)
        if early is None:
            contenders.append(index)
            continue
        action, reason, deliver_at, detail = early
        decisions[index] = Decision(candidate.message_id, action, reason, deliver_at, inputs, detail)

    contenders.sort(key=lambda i: _push_order(candidates[i]))
    capped = _capped(limits, inputs.usage, now) or _just_pushed(inputs.usage, now)
    if contenders and capped is None:
        winner = candidates[contenders[0]]
        decisions[contenders[0]] = Decision(winner.message_id, "push", "ok", None, inputs, "allowed")
        after = replace(inputs, usage=inputs.usage.plus(now))
        detail = f"{winner.message_id} (priority {winner.priority}) was pushed instead"
        for index in contenders[1:]:
            decisions[index] = Decision(candidates[index].message_id, "inbox", "lower_priority", None, after, detail)
    elif capped is not None:
        for index in contenders:
            decisions[index] = Decision(candidates[index].message_id, "inbox", capped[0], None, inputs, capped[1])
    return [decisions[index] for index in range(len(candidates))]


def _push_order(candidate: Candidate) -> tuple[int, float, int, str]:
    """Which of several candidates is pushed first: the highest priority, then the newest (see decide)."""
    return (-candidate.priority, -_utc(candidate.created_at).timestamp(), -candidate.position, candidate.message_id)


def release(
    decision: Decision,
    candidate: Candidate,
    now: datetime,
    still_relevant: bool,
    *,
    prefs: UserPrefs,
    history: PushHistory,
    caps: Caps,
) -> Decision:
    """The decision for a deferred message when it comes due, re-checked against the present.

    First the message itself: past valid_until → drop (expired); no longer true of the user's current
    state (`still_relevant`, e.g. a streak reminder after today's workout) → drop (stale). Then the user
    as they are now, exactly as decide() does: choices, quiet hours (which may defer again), caps.
    """
    if decision.action != "defer" or decision.message_id != candidate.message_id:
        raise ValueError(
            f"release() takes the deferred decision of the same message, got {decision.action} of "
            f"{decision.message_id!r} for {candidate.message_id!r}"
        )
    return release_due([(candidate, still_relevant)], now, prefs=prefs, history=history, caps=caps)[0]


def release_due(
    due: Sequence[tuple[Candidate, bool]],
    now: datetime,
    *,
    prefs: UserPrefs,
    history: PushHistory,
    caps: Caps,
) -> list[Decision]:
    """release() for the deferred messages of one user that came due together (a quiet window's end), each
    with whether it is still relevant: the expired and stale drop, the rest are decided as one batch, so
    at most one of them is pushed (the highest priority) exactly as when triggers fire at once."""
    now = _utc(now)
    zone = tzinfo_of(prefs.timezone)
    inputs = Inputs(
        now, now.astimezone(zone), prefs.quiet_hours, _limits(caps, prefs), _usage(history.sent_at, now, zone)
    )
    decisions: dict[int, Decision] = {}
    live: list[int] = []
    for index, (candidate, still_relevant) in enumerate(due):
        valid_until = _utc(candidate.valid_until)
        if now > valid_until:
            detail = f"valid until {valid_until.isoformat()}"
            decisions[index] = Decision(candidate.message_id, "drop", "expired", None, inputs, detail)
        elif not still_relevant:
            detail = "no longer relevant to the user's state"
            decisions[index] = Decision(candidate.message_id, "drop", "stale", None, inputs, detail)
        elif candidate.seen:  # pushing it now would repeat what the user has already dealt with
            detail = "already read or archived in the inbox"
            decisions[index] = Decision(candidate.message_id, "inbox", "seen", None, inputs, detail)
        else:
            live.append(index)
    for index, decision in zip(live, decide([due[i][0] for i in live], prefs, history, caps, now), strict=True):
        decisions[index] = decision
    return [decisions[index] for index in range(len(due))]

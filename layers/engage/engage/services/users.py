"""Changes to a user item outside the ingest (preferences, a device's zone and locale)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from ..engine.model import Outcome, UserState
from ..retries import MAX_ATTEMPTS, back_off
from ..store.progress import CommitConflict, commit, load_user
from .errors import Busy


def change_user(user_id: str, change: Callable[[UserState], UserState], now: datetime) -> UserState:
    """Read the user, apply `change`, and write the result like every change to the user item: conditioned on
    the version read and retried on a conflict, so a change made while events are ingested is never lost (and
    never loses them). Nothing is written when `change` changes nothing. Busy after MAX_ATTEMPTS conflicts."""
    for attempt in range(MAX_ATTEMPTS):
        before = load_user(user_id)
        outcome = Outcome(before=before, after=change(before), results=[], applied=[])
        if not outcome.changed:
            return outcome.after
        try:
            commit(outcome, "client", now)
        except CommitConflict:
            back_off(attempt)
            continue
        return outcome.after
    raise Busy("too many concurrent writes for this user; retry the request")

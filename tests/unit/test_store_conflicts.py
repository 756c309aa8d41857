"""How a refused write is read: which cancellations mean "retry", which events were duplicates, and when a plain
conditional write is tried again."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pynamodb.exceptions import CancellationReason, TransactWriteError, UpdateError, VerboseClientError

from engage.engine import Applied, Event
from engage.store import writes
from engage.store.progress import CommitConflict, _conflict
from engage.store.writes import written

APPLIED = [Applied(Event(f"e{i}", "app_opened", datetime(2026, 11, 22, tzinfo=UTC)), ()) for i in range(2)]


def cancelled(*codes: str | None) -> TransactWriteError:
    reasons = [CancellationReason(code=code) if code else None for code in codes]
    cause = VerboseClientError(
        {"Error": {"Code": "TransactionCanceledException", "Message": "cancelled"}},
        "TransactWriteItems",
        cancellation_reasons=reasons,
    )
    return TransactWriteError("cancelled", cause)


def test_existing_rows_are_duplicates_and_the_user_is_unchanged():
    conflict = _conflict(cancelled(None, "ConditionalCheckFailed", None), APPLIED)
    assert isinstance(conflict, CommitConflict)
    assert (conflict.user_changed, conflict.duplicate_ids) == (False, {"e0"})


def test_a_version_mismatch_means_read_again():
    conflict = _conflict(cancelled("ConditionalCheckFailed", None, None), APPLIED)
    assert isinstance(conflict, CommitConflict) and conflict.user_changed and not conflict.duplicate_ids


@pytest.mark.parametrize("code", ["TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"])
def test_concurrent_transactions_and_throttling_mean_read_again_and_retry(code):
    conflict = _conflict(cancelled(code, None, None), APPLIED)
    assert isinstance(conflict, CommitConflict) and conflict.user_changed


@pytest.mark.parametrize("code", ["ThrottlingException", "TransactionInProgressException"])
def test_a_throttled_request_counts_as_a_conflict_to_read_again_and_retry(code):
    error = TransactWriteError("refused", VerboseClientError({"Error": {"Code": code, "Message": code}}, "x"))
    conflict = _conflict(error, APPLIED)
    assert isinstance(conflict, CommitConflict) and conflict.user_changed


def test_a_validation_error_is_not_retried():
    error = cancelled("ValidationError", None, None)
    assert _conflict(error, APPLIED) is error


def refused(code: str) -> UpdateError:
    return UpdateError("refused", VerboseClientError({"Error": {"Code": code, "Message": code}}, "UpdateItem"))


def test_a_plain_write_meeting_a_transaction_is_tried_again(monkeypatch):
    monkeypatch.setattr(writes, "back_off", lambda attempt: None)
    outcomes = [refused("TransactionConflictException"), refused("TransactionConflictException"), None]

    def write():
        if outcome := outcomes.pop(0):
            raise outcome

    assert written(write) and outcomes == []


def test_a_plain_write_that_keeps_meeting_transactions_fails_after_its_tries(monkeypatch):
    monkeypatch.setattr(writes, "back_off", lambda attempt: None)
    tries = []

    def write():
        tries.append(1)
        raise refused("TransactionConflictException")

    with pytest.raises(UpdateError):
        written(write)
    assert len(tries) == writes.TRIES


def test_a_failed_condition_is_an_answer_and_other_errors_are_raised_at_once():
    assert written(lambda: (_ for _ in ()).throw(refused("ConditionalCheckFailedException"))) is False
    with pytest.raises(UpdateError):
        written(lambda: (_ for _ in ()).throw(refused("ValidationException")))

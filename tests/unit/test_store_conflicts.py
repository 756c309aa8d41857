"""How a cancelled transaction is read: which cancellations mean "retry" and which events were duplicates."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pynamodb.exceptions import CancellationReason, TransactWriteError, VerboseClientError

from engage.engine import Applied, Event
from engage.store.progress import CommitConflict, _conflict

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


def test_a_validation_error_is_not_retried():
    error = cancelled("ValidationError", None, None)
    assert _conflict(error, APPLIED) is error

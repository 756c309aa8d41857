"""Conditional writes: the one place that turns "its condition failed" into an answer instead of an error."""

from __future__ import annotations

from collections.abc import Callable

from pynamodb.exceptions import DeleteError, PutError, UpdateError

from ..retries import back_off

# A write that meets a transaction in flight on its item is refused (TransactionConflict) and not retried by
# botocore: it is tried again this many times in all, after a short pause.
TRIES = 3


def written(write: Callable[[], object]) -> bool:
    """Run one conditional PutItem, UpdateItem or DeleteItem; False when DynamoDB refused it because its
    condition did not hold (the row already exists, was settled, changed). A TransactionConflict is tried
    again, up to TRIES times in all; any other error is raised."""
    for attempt in range(TRIES):
        try:
            write()
        except (PutError, UpdateError, DeleteError) as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            if exc.cause_response_code != "TransactionConflictException" or attempt == TRIES - 1:
                raise
            back_off(attempt)
            continue
        return True
    raise AssertionError("unreachable")

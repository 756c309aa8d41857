"""Conditional writes: the one place that turns "its condition failed" into an answer instead of an error."""

from __future__ import annotations

from collections.abc import Callable

from pynamodb.exceptions import DeleteError, PutError, UpdateError


def written(write: Callable[[], object]) -> bool:
    """Run one conditional PutItem, UpdateItem or DeleteItem; False when DynamoDB refused it because its
    condition did not hold (the row already exists, was settled, changed), any other error raised."""
    try:
        write()
    except (PutError, UpdateError, DeleteError) as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise
    return True

"""The notify function's stream handler: how a batch of ledger records is cut into per-user decisions."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from ..conftest import REPO


@pytest.fixture
def notify_app() -> Any:
    spec = importlib.util.spec_from_file_location("notify_app", REPO / "functions/notify/app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def record(sequence: int, user: str) -> dict[str, Any]:
    image = {"user_id": {"S": user}, "sk": {"S": f"evt#client#{sequence}"}, "ts": {"S": "01KAS5N3J1X5Q7Y0D6Z8W9V4T2"},
             "event_type": {"S": "workout_completed"}, "facts": {"L": []}}  # fmt: skip
    return {"eventName": "INSERT", "dynamodb": {"NewImage": image, "SequenceNumber": str(sequence)}}


def test_all_rows_of_a_user_in_a_batch_make_one_decision_even_with_others_between(notify_app, monkeypatch):
    # Given a batch in which another user's rows sit between alice's (one decision each could push twice)
    decided: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(notify_app, "handle_rows", lambda rows, tally: decided.append(
        (rows[0].user_id, [row.sk for row in rows])))  # fmt: skip
    batch = [record(1, "alice"), record(2, "bob"), record(3, "alice"), record(4, "carol")]

    answer = notify_app._ledger_rows(batch)

    # Then alice's rows are decided together, users in the order they first appear
    assert answer == {"batchItemFailures": []}
    assert decided == [("alice", ["evt#client#1", "evt#client#3"]), ("bob", ["evt#client#2"]),
                       ("carol", ["evt#client#4"])]  # fmt: skip


def test_a_failed_user_is_retried_from_their_first_row_with_everything_after_it(notify_app, monkeypatch):
    def fail_for_bob(rows: list, tally: Any) -> None:
        if rows[0].user_id == "bob":
            raise RuntimeError("bob's decision failed")

    monkeypatch.setattr(notify_app, "handle_rows", fail_for_bob)
    batch = [record(1, "alice"), record(2, "bob"), record(3, "alice"), record(4, "carol")]

    answer = notify_app._ledger_rows(batch)

    # Lambda resends from bob's first record: alice's second row again (harmless: ids derive from facts), carol
    assert answer == {"batchItemFailures": [{"itemIdentifier": str(n)} for n in (2, 3, 4)]}


def test_when_little_time_is_left_the_users_not_reached_are_handed_back_not_timed_out(notify_app, monkeypatch):
    decided: list[str] = []
    monkeypatch.setattr(notify_app, "handle_rows", lambda rows, tally: decided.append(rows[0].user_id))
    clock = iter([9000, 2000])  # ms left before alice, then before bob
    batch = [record(1, "alice"), record(2, "bob"), record(3, "alice"), record(4, "carol")]

    answer = notify_app._ledger_rows(batch, lambda: next(clock))

    assert decided == ["alice"]
    assert answer == {"batchItemFailures": [{"itemIdentifier": str(n)} for n in (2, 3, 4)]}

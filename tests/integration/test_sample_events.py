"""The sample events in events/ are what API Gateway sends; every one runs through its handler."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from engage.local.server import HandlerPool, LambdaContext

from ..conftest import REPO


@pytest.mark.parametrize(
    ("sample", "function"),
    [
        ("ingest-client.json", "IngestFunction"),
        ("ingest-server.json", "IngestFunction"),
        ("api-me.json", "ApiFunction"),
    ],
)
def test_sample_event_is_served_by_its_handler(stack, sample, function):
    event = json.loads((REPO / "events" / sample).read_text())
    if event.get("body"):  # the samples carry fixed dates; move them to now so the events still count
        body = json.loads(event["body"])
        for item in body["events"]:
            item["occurred_at"] = datetime.now(UTC).isoformat()
        event["body"] = json.dumps(body)

    result = HandlerPool(stack.template.functions[function]).invoke(event, LambdaContext(function, "sample"))

    assert result["statusCode"] == 200, result["body"]
    answer = json.loads(result["body"])
    if function == "IngestFunction":
        assert answer["rejected"] == 0 and answer["accepted"] + answer["duplicates"] == len(body["events"])
    else:
        assert answer["user_id"] == "user-123"

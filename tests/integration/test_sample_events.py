"""The sample events in events/ are what API Gateway sends; every one runs through its handler."""

from __future__ import annotations

import json

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

    result = HandlerPool(stack.template.functions[function]).invoke(event, LambdaContext(function, "sample"))

    assert result["statusCode"] == 200, result["body"]
    body = json.loads(result["body"])
    assert ("results" in body) if function == "IngestFunction" else (body["user_id"] == "user-123")

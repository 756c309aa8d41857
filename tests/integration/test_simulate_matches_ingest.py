"""A simulation awards what the ingest does: the recorded FitQuest week through `engage config simulate` and
through the ingest on DynamoDB Local (each event sent when it happened) ends in the same balances, levels and
badges."""

from __future__ import annotations

from engage.api.events import EventsRequest, ServerEventsRequest
from engage.config import load_config_file
from engage.services.ingest import ingest_client_events, ingest_server_events
from engage.simulate import read_events, simulate
from engage.store.progress import load_user

from ..conftest import FITQUEST

EVENTS = FITQUEST.parent / "events.jsonl"


def test_the_simulated_week_ends_where_the_ingest_does(user_id):
    recorded = [event.model_copy(update={"user_id": f"{user_id}-{event.user_id}"}) for event in read_events(EVENTS)]
    config = load_config_file(FITQUEST)

    for event in recorded:
        sent = event.model_dump(mode="json", exclude={"user_id", "timezone", "source"}, exclude_none=True)
        if config.events[event.type].source == "server":
            ingest_server_events(
                ServerEventsRequest.model_validate({"events": [{**sent, "user_id": event.user_id}]}),
                now=event.occurred_at,
            )
        else:
            context = {"timezone": event.timezone} if event.timezone else None
            request = EventsRequest.model_validate({"events": [sent], "context": context})
            ingest_client_events(request, {"sub": event.user_id}, now=event.occurred_at)
    simulated = simulate(config, recorded)

    for user, run in simulated.items():
        stored = load_user(user)
        assert (stored.balances, stored.earned, stored.level) == (run.state.balances, run.state.earned, run.state.level)
        assert stored.badges == run.state.badges and stored.streaks == run.state.streaks
        assert stored.quests == run.state.quests
    assert len(simulated) == 3 and all(run.state.balances for run in simulated.values())

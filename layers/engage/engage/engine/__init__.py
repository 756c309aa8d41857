"""The pure domain: state + events in, new state + facts out. No I/O here."""

from .ingest import FUTURE_TOLERANCE, apply_batch
from .model import Applied, Event, EventResult, Fact, Outcome, Profile, UserState

__all__ = [
    "FUTURE_TOLERANCE", "Applied", "Event", "EventResult", "Fact", "Outcome", "Profile", "UserState", "apply_batch",
]  # fmt: skip

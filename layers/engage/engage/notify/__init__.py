"""Notifications, the pure part: the push policy and the message texts (no I/O; delivery lives elsewhere)."""

from .policy import Candidate, Decision, PushHistory, UserPrefs, decide, release
from .templates import AVAILABLE_BY_FACT, Rendered, check_trigger_templates, placeholders, render

__all__ = [
    "AVAILABLE_BY_FACT",
    "Candidate",
    "Decision",
    "PushHistory",
    "Rendered",
    "UserPrefs",
    "check_trigger_templates",
    "decide",
    "placeholders",
    "release",
    "render",
]

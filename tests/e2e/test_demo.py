"""`make demo`'s scripted session, run through the local stack: real awards read back over HTTP."""

from rich.console import Console

from engage.local.demo import run_demo

from ..conftest import REPO


def test_demo_session_shows_real_awards(stack):
    summaries = run_demo(stack, REPO / "examples" / "fitquest" / "demo-session.json", Console(quiet=True))

    by_user = {me["user_id"]: me for me in summaries}
    ada, grace, linus = by_user["demo-ada"], by_user["demo-grace"], by_user["demo-linus"]
    assert ada["currencies"]["xp"]["balance"] == 195  # 5 + 50 + 80 + 60, the replay added nothing
    assert ada["level"]["name"] == "Mover"
    assert grace["currencies"]["coins"]["balance"] == 25  # five paid workouts, the sixth over the daily limit
    assert grace["currencies"]["xp"]["balance"] == 305  # 5 * 60 + one daily open bonus
    assert linus["currencies"]["coins"]["balance"] == 49  # only the backend's purchase counted

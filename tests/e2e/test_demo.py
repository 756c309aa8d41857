"""`make demo`'s scripted session, run through the local stack: real awards read back over HTTP."""

from rich.console import Console

from engage.local.demo import run_demo

from ..conftest import REPO


def test_demo_session_shows_real_awards(stack):
    summaries = run_demo(stack, REPO / "examples" / "fitquest" / "demo-session.json", Console(quiet=True))

    by_user = {me["user_id"]: me for me in summaries}
    ada, grace, linus = by_user["demo-ada"], by_user["demo-grace"], by_user["demo-linus"]
    # Ada: 5 + 50 + 80 + 60 XP, plus 100 for the first-week quest (3 workouts incl. yoga); the replay added nothing
    assert ada["currencies"]["xp"]["balance"] == 295
    assert ada["level"]["name"] == "Mover"
    # Grace: five paid workouts (the sixth is over the daily limit), one daily open bonus, the first-week quest
    assert grace["currencies"]["xp"]["balance"] == 5 * 60 + 5 + 100
    assert linus["currencies"]["coins"]["balance"] == 49  # only the backend's purchase counted
    assert linus["currencies"]["xp"]["balance"] == 0
    for me, workouts_paid in ((ada, 3), (grace, 5)):
        # 5 coins a paid workout, 10 for the daily goal, 50 for the secret weekend badge if today is a weekend
        weekend = any(b["id"] == "weekend-warrior" and b["earned"] for b in me["badges"])
        assert me["currencies"]["coins"]["balance"] == 5 * workouts_paid + 10 + (50 if weekend else 0)
        assert {b["id"] for b in me["badges"] if b["earned"]} >= {"first-workout"}
        assert next(q for q in me["quests"] if q["id"] == "daily-goal")["state"] == "completed"
    for me in summaries:  # every push the phone got is in the inbox too, marked pushed; nothing else was pushed
        assert me["inbox"], me["user_id"]
        pushed_ids = {p["data"]["message_id"] for p in me["phone"]}
        assert pushed_ids == {m["message_id"] for m in me["inbox"] if m["pushed"]}
        assert len(pushed_ids) <= 1  # one user, one moment: at most one push (min_gap 2h)

"""`make demo`: replay a scripted session of three users over HTTP against the local stack and show the awards."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table

from . import tokens
from .server import SERVER_KEY_HEADER
from .stack import LocalStack

_OFFSET = re.compile(r"^([+-])(\d+)([mhd])$")


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One JSON request; returns (status, parsed body) for any status."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"content-type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def run_demo(stack: LocalStack, session_path: str | Path, console: Console | None = None) -> list[dict[str, Any]]:
    """Replay the session; returns one summary per user, read back from GET /v1/me (plus its `phone` and `inbox`).

    Each demo user's app registers a phone first; after the session the notifications the ledger's facts
    caused are shown as the phone received them (from the FCM emulator) next to the user's inbox.
    """
    console = console or Console()
    session = json.loads(Path(session_path).read_text(encoding="utf-8"))
    now = datetime.now(UTC)
    summaries = []
    for user in session["users"]:
        token = tokens.mint(user["id"], name=user["name"])
        console.rule(f"[bold]{user['name']}[/] ({user['context']['timezone']})")
        phone = {"device_id": "phone", "fcm_token": _phone_token(user["id"]), "platform": "android",
                 "locale": user["context"]["locale"], "timezone": user["context"]["timezone"]}  # fmt: skip
        status, _ = http("POST", f"{stack.api_url}/v1/me/devices", phone, {"authorization": f"Bearer {token}"})
        console.print(f"[dim]POST /v1/me/devices[/] → {status}: the app registers its phone for pushes")
        sent: list[dict[str, Any]] = []
        scale = _today_scale(user, now)
        for step in user["requests"]:
            body = sent[step["replay"]] if "replay" in step else _body(step, user, now, scale)
            sent.append(body)
            if step.get("server"):
                url, headers = f"{stack.api_url}/v1/server/events", {SERVER_KEY_HEADER: stack.server_key}
            else:
                url, headers = f"{stack.api_url}/v1/events", {"authorization": f"Bearer {token}"}
            status, answer = http("POST", url, body, headers)
            console.print(f"[dim]POST {url.removeprefix(stack.api_url)}[/] → {status}: {step['note']}")
            _print_results(console, status, answer, user["id"])
        status, me = http("GET", f"{stack.api_url}/v1/me", headers={"authorization": f"Bearer {token}"})
        if status != 200:
            raise RuntimeError(f"GET /v1/me for {user['id']} answered {status}: {me}")
        summaries.append(me)
    _print_summary(console, summaries)
    stack.drain(delayed=False)  # ledger stream → notify → delivery queue → deliver → FCM emulator
    # A retried delivery (a delayed SQS message) may still be on its way, and every scripted user earns at
    # least one message: wait for them (the background pollers keep delivering) rather than show a gap.
    deadline = time.monotonic() + 15
    while True:
        for user, me in zip(session["users"], summaries, strict=True):
            me["inbox"] = _inbox(stack, user)
            me["phone"] = [record["message"] for record in stack.fcm.received_by(_phone_token(user["id"]))]
        if all(me["inbox"] and _delivered(me) for me in summaries) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    _print_notifications(console, summaries)
    return summaries


def _inbox(stack: LocalStack, user: dict[str, Any]) -> list[dict[str, Any]]:
    headers = {"authorization": f"Bearer {tokens.mint(user['id'], name=user['name'])}"}
    status, inbox = http("GET", f"{stack.api_url}/v1/me/inbox", headers=headers)
    if status != 200:
        raise RuntimeError(f"GET /v1/me/inbox for {user['id']} answered {status}: {inbox}")
    return list(inbox["messages"])


def _delivered(me: dict[str, Any]) -> bool:
    """Every message the inbox says was pushed has reached the phone."""
    received = {push["data"]["message_id"] for push in me["phone"]}
    return all(message["message_id"] in received for message in me["inbox"] if message["pushed"])


def _phone_token(user_id: str) -> str:
    return f"{user_id}-phone:APA91b" + "x" * 140  # the shape of an FCM registration token


def _body(step: dict[str, Any], user: dict[str, Any], now: datetime, scale: float) -> dict[str, Any]:
    events = []
    for spec in step["events"]:
        event = {k: v for k, v in spec.items() if k != "at"}
        offset = _offset(spec["at"])
        if -_DAY < offset < timedelta(0):
            offset *= scale
        event["occurred_at"] = (now + offset).isoformat().replace("+00:00", "Z")
        if step.get("server"):
            event["user_id"] = user["id"]
        events.append(event)
    return {"events": events} if step.get("server") else {"events": events, "context": user["context"]}


_DAY = timedelta(days=1)


def _today_scale(user: dict[str, Any], now: datetime) -> float:
    """How much to shrink the user's "-3h"-style offsets so they all fall on their local today: the session is
    one morning, and run just after the user's midnight it would otherwise straddle two local days."""
    local = now.astimezone(ZoneInfo(user.get("context", {}).get("timezone", "UTC")))
    since_midnight = local - local.replace(hour=0, minute=0, second=0, microsecond=0)
    earliest = max(
        (-_offset(spec["at"]) for step in user["requests"] for spec in step.get("events", [])
         if -_DAY < _offset(spec["at"]) < timedelta(0)),
        default=timedelta(0),
    )  # fmt: skip
    return 1.0 if earliest < since_midnight else since_midnight * 0.9 / earliest


def _offset(text: str) -> timedelta:
    sign, amount, unit = _OFFSET.match(text).groups()  # type: ignore[union-attr]
    delta = timedelta(**{{"m": "minutes", "h": "hours", "d": "days"}[unit]: int(amount)})
    return delta if sign == "+" else -delta


def _print_results(console: Console, status: int, answer: dict[str, Any], user_id: str) -> None:
    if status != 200:
        console.print(f"   [red]{answer}[/]")
        return
    for result in answer["results"]:
        awards = ", ".join(f"+{amount} {currency}" for currency, amount in result["awards"].items())
        news = [headline for fact in result["facts"] if (headline := _headline(fact))]
        colour = {"accepted": "green", "duplicate": "yellow", "rejected": "red"}[result["status"]]
        detail = "; ".join([awards or "(no points)", *news]) if result["status"] == "accepted" else result["reason"]
        console.print(f"   [{colour}]{result['status']:>9}[/] {result['id']}: {detail}", highlight=False)
    progress = answer["progress"]
    progress = progress.get(user_id, progress) if "gained" not in progress else progress
    level = progress.get("level")
    if level:
        before, after = level["before"], level["after"]
        console.print(
            f"   → gained {progress['gained'] or 'nothing'}; level {before['number']} {before['name']} → "
            f"{after['number']} {after['name']} ({after['to_next']} XP to next)"
        )


def _headline(fact: dict[str, Any]) -> str | None:
    """What the app would celebrate for one fact (points are shown as awards already)."""
    match fact["type"]:
        case "level_up":
            return f"level {fact['level']} {fact['name']}!"
        case "badge_awarded":
            return f"badge {fact['name']}" + (f" ({fact['tier']})" if fact["tier"] else "") + "!"
        case "streak_milestone":
            return f"{fact['length']}-period streak!"
        case "quest_completed":
            return f"quest '{fact['name']}' done!"
        case _:
            return None


def _print_notifications(console: Console, summaries: list[dict[str, Any]]) -> None:
    table = Table(title="Notifications: what each phone received (FCM emulator) next to the inbox (GET /v1/me/inbox)")
    for column in ("user", "phone received", "inbox", "why not pushed"):
        table.add_column(column)
    for me in summaries:
        pushed = "\n".join(f"{p['notification']['title']}" for p in me["phone"] if "notification" in p) or "-"
        inbox = "\n".join(m["title"] for m in me["inbox"]) or "-"
        why = "\n".join(_why(m) for m in me["inbox"]) or "-"
        table.add_row(me["display_name"] or me["user_id"], pushed, inbox, why)
    console.print(table)
    console.print(
        "[dim]Quiet hours (21:30–08:00 on each user's clock) hold a push until they end; caps (2 a day, 6 a week, "
        "2 h apart) and lower-priority messages at the same moment stay in the inbox only.[/]"
    )


def _why(message: dict[str, Any]) -> str:
    if message["pushed"]:
        return "pushed"
    if message["held_until"]:
        return f"quiet hours: held until {message['held_until'][11:16]} UTC"
    return _reason(message["push_reason"])


def _reason(reason: str | None) -> str:
    return {"quiet_hours": "quiet hours outlast its validity", "lower_priority": "another was pushed",
            "min_gap": "2 h since the last push", "cap_per_day": "daily cap", "cap_per_week": "weekly cap",
            "opted_out": "category off", "paused": "paused"}.get(reason or "", reason or "-")  # fmt: skip


def _print_summary(console: Console, summaries: list[dict[str, Any]]) -> None:
    table = Table(title="What each demo user earned (GET /v1/me, read back from DynamoDB Local)")
    for column in ("user", "zone", "level", "xp", "coins", "badges", "streak", "quests done"):
        table.add_column(column)
    for me in summaries:
        level = me["level"]
        badges = [b["name"] + (f" {b['tier']}" if b["tier"] else "") for b in me["badges"] if b["earned"]]
        streak = next((s for s in me["streaks"]), None)
        table.add_row(
            me["display_name"] or me["user_id"],
            me["timezone"],
            f"{level['number']} {level['name']} ({level['to_next']} to go)",
            str(me["currencies"]["xp"]["balance"]),
            str(me["currencies"]["coins"]["balance"]),
            ", ".join(badges) or "-",
            f"{streak['length']} {streak['period']}" if streak else "-",
            ", ".join(q["name"] for q in me["quests"] if q["state"] == "completed") or "-",
        )
    console.print(table)

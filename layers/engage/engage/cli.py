"""`engage …`: validate and publish configs, run the local stack, the demo and the benchmarks."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from .config import ConfigInvalid

app = typer.Typer(no_args_is_help=True, help=__doc__, add_completion=False)
config_app = typer.Typer(no_args_is_help=True, help="Validate and publish engagement.yaml.")
local_app = typer.Typer(no_args_is_help=True, help="The embedded local stack (DynamoDB Local + HTTP API).")
board_app = typer.Typer(no_args_is_help=True, help="Leaderboard operations.")
notify_app = typer.Typer(no_args_is_help=True, help="Notification operations.")
app.add_typer(config_app, name="config")
app.add_typer(local_app, name="local")
app.add_typer(board_app, name="leaderboard")
app.add_typer(notify_app, name="notify")
console = Console()
errors = Console(stderr=True, soft_wrap=True)  # one problem per line, even in a narrow pipe (CI logs, grep)

ConfigFile = Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="engagement.yaml")]
DEFAULT_CONFIG = Path("examples/fitquest/engagement.yaml")


@config_app.command("validate")
def config_validate(file: ConfigFile) -> None:
    """Check a config: every problem is listed with its line and the fix. Exit 1 if any."""
    from .config import load_config_file

    try:
        config = load_config_file(file)
    except ConfigInvalid as exc:
        errors.print(exc.report(), markup=False, highlight=False)
        raise typer.Exit(1) from None
    console.print(
        f"[green]✓[/] {file}: app {config.app!r}, {len(config.events)} events, {len(config.currencies)} currencies, "
        f"{len(config.rules)} rules, {len(config.levels.thresholds) if config.levels else 0} levels"
    )


@config_app.command("publish")
def config_publish(
    file: ConfigFile,
    stage: Annotated[str, typer.Option(help="'local' for the running local stack, or a deployed stage")] = "local",
    table: Annotated[str | None, typer.Option(help="config table name (default: the stack's ConfigTableName)")] = None,
    stack_name: Annotated[str | None, typer.Option(help="CloudFormation stack (default: engage-STAGE)")] = None,
) -> None:
    """Validate FILE, store it as a new version in the stage's config table and make it active."""
    from .config.loader import parse_yaml, read_config_text, validate_config_data

    try:
        text = read_config_text(file)
        data, lines = parse_yaml(text, str(file))
        config = validate_config_data(data, lines, str(file))
    except ConfigInvalid as exc:
        errors.print(exc.report(), markup=False, highlight=False)
        raise typer.Exit(1) from None
    _point_at_stage(stage, table, stack_name, config.app)
    from .store import config_store

    version = config_store.publish(config.app, data, text, by=os.environ.get("USER"))
    console.print(
        f"[green]✓[/] published {file} as {config.app} {version} on stage {stage}; Lambdas pick it up within 60 s"
    )


@config_app.command("simulate")
def config_simulate(
    file: ConfigFile,
    events: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="recorded events, one JSON object per line (.jsonl)")
    ],
    compare: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="another config (e.g. the published one): show what FILE changes; one that today's checks refuse "
            "is simulated anyway, as the Lambdas load it, with its problems shown",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """What FILE would award for recorded EVENTS, per user and in all, without publishing (nothing touches AWS)."""
    from .config import load_config_file
    from .config.loader import parse_yaml, read_config_text, validate_config_data
    from .simulate import EventsInvalid, read_events, simulate, summary

    try:
        configs = {"new": load_config_file(file)}
        if compare:
            data, lines = parse_yaml(read_config_text(compare), str(compare))
            try:
                configs["old"] = validate_config_data(data, lines, str(compare))
            except ConfigInvalid as exc:  # a live config a newer Engage's checks refuse still serves: the baseline
                configs["old"] = validate_config_data(data, lines, str(compare), published=True)
                errors.print(f"{exc.report()}\n(simulated anyway, as the Lambdas load a published config: shape only)",
                             markup=False, highlight=False)  # fmt: skip
        recorded = read_events(events)
    except ConfigInvalid as exc:
        errors.print(exc.report(), markup=False, highlight=False)
        raise typer.Exit(1) from None
    except EventsInvalid as exc:
        errors.print(f"{events}: not an events file\n{exc}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    if not recorded:
        errors.print(f"{events} holds no events. Fix: one JSON object per line, e.g. examples/fitquest/events.jsonl")
        raise typer.Exit(1)
    results = {name: summary(config, simulate(config, recorded)) for name, config in configs.items()}
    if as_json:
        console.print_json(json.dumps(results if compare else results["new"]))
        return
    _print_simulation(results.get("old"), results["new"], len(recorded))
    if configs["new"].leaderboards:
        console.print("[dim]Leaderboard standings and period rewards are not simulated.[/]")


def _print_simulation(old: dict[str, Any] | None, new: dict[str, Any], events: int) -> None:
    """A row per user, then the totals; with `old`, each value that changes reads "old → new"."""
    from rich.table import Table

    def changed(before: str | None, after: str) -> str:
        return after if before is None or before == after else f"{before} → {after}"

    columns = [*_both(new, old, "totals"), "level", "badges", "longest streaks"]  # both configs' currencies
    table = Table(title=f"{events} events of {len(new['users'])} users" + (" (old → new)" if old else ""))
    for column in ("user", *columns, "answers"):
        table.add_column(column)
    for user, after in new["users"].items():
        before = _columns(old["users"].get(user), columns) if old else {}
        now = _columns(after, columns)
        table.add_row(user, *(changed(before.get(c), now[c]) for c in columns), _listed(after["answers"]))
    console.print(table)
    for line, part in (("in all", "totals"), ("badge holders", "badges"), ("answers", "answers")):
        shown = (
            f"{key} {changed(str(old[part].get(key, 0)) if old else None, str(new[part].get(key, 0)))}"
            for key in _both(new, old, part)
        )
        console.print(f"{line}: " + (", ".join(shown) or "-"))
    for text, count in new["warnings"].items():  # accepted events an expression failed on: they paid nothing
        console.print(f"warning ({count}×): {text}", markup=False, highlight=False)


def _both(new: dict[str, Any], old: dict[str, Any] | None, part: str) -> list[str]:
    """The keys of a part of the summary in either run: FILE's, then those only the compared config had."""
    return [*new[part], *(key for key in (old or {}).get(part, {}) if key not in new[part])]


def _columns(user: dict[str, Any] | None, columns: list[str]) -> dict[str, str]:
    user = user or {"balances": {}, "level": None, "badges": {}, "longest_streaks": {}}
    texts = {currency: str(amount) for currency, amount in user["balances"].items()}
    texts |= {"level": str(user["level"] or "-"), "badges": _listed(user["badges"]),
              "longest streaks": _listed(user["longest_streaks"])}  # fmt: skip
    return {column: texts.get(column, "0") for column in columns}


def _listed(values: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" if value is not None else key for key, value in values.items()) or "-"


@config_app.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of engagement.yaml (for editor completion)."""
    from .config import EngagementConfig

    console.print_json(json.dumps(EngagementConfig.model_json_schema()))


# Environment variable ← the local stack's logical table id, and ← the deployed stack's output.
STAGES = ("local", "dev", "staging", "prod")  # the deployed ones: template.yaml's Stage parameter
_TABLES = {
    "USERS_TABLE": ("UsersTable", "UsersTableName"),
    "LEDGER_TABLE": ("LedgerTable", "LedgerTableName"),
    "LEADERBOARDS_TABLE": ("LeaderboardsTable", "LeaderboardsTableName"),
    "DEVICES_TABLE": ("DevicesTable", "DevicesTableName"),
    "INBOX_TABLE": ("InboxTable", "InboxTableName"),
    "CONFIG_TABLE": ("ConfigTable", "ConfigTableName"),
    "IDEMPOTENCY_TABLE": ("IdempotencyTable", "IdempotencyTableName"),  # histogram-move markers (board replay)
}
# Queues the CLI uses (a schedule trigger's pushes and deferrals; replaying failed stream batches).
_QUEUES = {
    "DELIVERY_QUEUE_URL": ("DeliveryQueue", "DeliveryQueueUrl"),
    "DEFERRED_QUEUE_URL": ("DeferredQueue", "DeferredQueueUrl"),
    "FAILED_BATCHES_QUEUE_URL": ("NotifyFailedBatchesQueue", "NotifyFailedBatchesQueueUrl"),
    "BOARDS_FAILED_BATCHES_QUEUE_URL": ("BoardsFailedBatchesQueue", "BoardsFailedBatchesQueueUrl"),
}


@board_app.command("close")
def board_close(
    board: str,
    period: Annotated[
        str | None, typer.Option(help="e.g. 2026-W47 (default: the period before the current one)")
    ] = None,
    stage: Annotated[str, typer.Option(help="'local' for the running local stack, or a deployed stage")] = "local",
    stack_name: Annotated[str | None, typer.Option(help="CloudFormation stack (default: engage-STAGE)")] = None,
) -> None:
    """Reward a finished period's winners (each exactly once; safe to run again)."""
    _point_at_stage(stage, None, stack_name, app_id=None)
    from .services.errors import ServiceError
    from .services.leaderboards import close_period

    try:
        granted = close_period(board, period)
    except ServiceError as exc:
        errors.print(exc.message)
        raise typer.Exit(1) from None
    for winner in granted:
        console.print(f"#{winner.rank} {winner.user_id}: {'rewarded' if winner.newly else 'already rewarded'}")
    console.print(f"[green]✓[/] {board}: {sum(w.newly for w in granted)} rewarded, {len(granted)} winners")


@board_app.command("replay")
def board_replay(
    stage: Annotated[str, typer.Option(help="'local' for the running local stack, or a deployed stage")] = "local",
    stack_name: Annotated[str | None, typer.Option(help="CloudFormation stack (default: engage-STAGE)")] = None,
) -> None:
    """Replay the leaderboard-stream batches the boards function gave up on (their failure records in
    BoardsFailedBatchesQueue), within the stream's 24 hours: histogram moves and rank_lost facts. Safe to run
    again: a score change moves the histogram once and tells each passed user once."""
    _point_at_stage(stage, None, stack_name, app_id=None)
    import boto3

    from .services.replay import replay_failed_board_batches
    from .settings import get_settings

    streams = boto3.client("dynamodbstreams", region_name=get_settings().region)
    replayed = replay_failed_board_batches(get_settings().required("boards_failed_batches_queue_url"), streams)
    console.print(
        f"[green]✓[/] replayed {replayed.batches} batch(es), {replayed.rows} score change(s): "
        f"{replayed.rank_lost} rank_lost fact(s) written"
    )
    for why in replayed.left:
        errors.print(f"left in the queue: {why}")
    if replayed.left:
        raise typer.Exit(1)


@notify_app.command("schedule")
def notify_schedule(
    trigger: str,
    user: Annotated[list[str], typer.Option("--user", help="a user to evaluate it for (repeat for more)")],
    stage: Annotated[str, typer.Option(help="'local' for the running local stack, or a deployed stage")] = "local",
    stack_name: Annotated[str | None, typer.Option(help="CloudFormation stack (default: engage-STAGE)")] = None,
) -> None:
    """Evaluate a schedule trigger (e.g. streak-at-risk) for users now, as the scheduler does at its local time.

    Each user gets at most one such message per local day, whatever the number of runs.
    """
    _point_at_stage(stage, None, stack_name, app_id=None)
    from .services.errors import ServiceError
    from .services.notify import run_schedule

    try:
        tally = run_schedule(trigger, user)
    except LookupError as exc:
        errors.print(str(exc.args[0]))
        raise typer.Exit(1) from None
    except ServiceError as exc:
        errors.print(exc.message)
        raise typer.Exit(1) from None
    decided = ", ".join(f"{count} {kind}" for kind, count in sorted(tally.decisions.items())) or "nothing to send"
    console.print(f"[green]✓[/] {trigger} for {len(user)} user(s): {decided}")
    if tally.failed_users:
        errors.print(f"failed for {', '.join(tally.failed_users)} (see the log). Fix: run it again for them")
        raise typer.Exit(1)


@notify_app.command("replay")
def notify_replay(
    stage: Annotated[str, typer.Option(help="'local' for the running local stack, or a deployed stage")] = "local",
    stack_name: Annotated[str | None, typer.Option(help="CloudFormation stack (default: engage-STAGE)")] = None,
) -> None:
    """Replay the ledger-stream batches notify gave up on (their failure records in NotifyFailedBatchesQueue),
    within the stream's 24 hours. Safe to run again: no message is stored or pushed twice."""
    _point_at_stage(stage, None, stack_name, app_id=None)
    import boto3

    from .services.replay import replay_failed_batches
    from .settings import get_settings

    streams = boto3.client("dynamodbstreams", region_name=get_settings().region)
    replayed = replay_failed_batches(get_settings().required("failed_batches_queue_url"), streams)
    decided = ", ".join(f"{count} {kind}" for kind, count in sorted(replayed.tally.decisions.items())) or "no messages"
    console.print(f"[green]✓[/] replayed {replayed.batches} batch(es), {replayed.rows} ledger row(s): {decided}")
    for why in replayed.left:
        errors.print(f"left in the queue: {why}")
    if replayed.left:
        raise typer.Exit(1)


def _point_at_stage(stage: str, table: str | None, stack_name: str | None, app_id: str | None) -> None:
    """Set the settings the store needs for a local or deployed stage (every table; the app if given).

    `table` names the config table directly: for a deployed stage the stack is then not looked up, and with
    `local` it may live in a DynamoDB that AWS_ENDPOINT_URL_DYNAMODB names instead of the local stack's.
    """
    if stage not in STAGES:
        errors.print(
            f"there is no stage {stage!r}. Fix: use local (the running local stack) or a deployed stage: "
            + ", ".join(s for s in STAGES if s != "local")
        )
        raise typer.Exit(1)
    env = {name: "unused" for name in _TABLES}
    if stage == "local" and table and os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"):
        pass  # the caller's own DynamoDB (tests, a DynamoDB Local of their own), never AWS by accident
    elif stage == "local":
        env.update(_local_stage())
    elif table:
        env["AWS_REGION"] = _region()
    else:
        env.update(_deployed_stage(stack_name or f"engage-{stage}", stage))
    if table:
        env["CONFIG_TABLE"] = table
    served = env.get("ENGAGE_APP_ID")
    if app_id and served and served != app_id:
        fix = (
            "restart it with `engage local up --config FILE`"
            if stage == "local"
            else f"deploy the stage with AppId={app_id}"
        )
        errors.print(
            f"this config is for app '{app_id}', but stage {stage} serves app '{served}': its Lambdas would never "
            f"read it. Fix: set `app: {served}` in the file, or {fix}"
        )
        raise typer.Exit(1)
    if app_id:
        env["ENGAGE_APP_ID"] = app_id
    os.environ.update(env)


def _local_stage() -> dict[str, str]:
    """The settings of the local stack that `engage local up` (or `make demo`) recorded."""
    from .local.stack import state_file

    if not state_file().exists():
        errors.print("no local stack is running. Fix: start one with `engage local up` in another terminal")
        raise typer.Exit(1)
    state = json.loads(state_file().read_text())
    answers = _answers(state["dynamodb_endpoint"])
    if answers is False:
        state_file().unlink(missing_ok=True)  # left by a stack that was killed before it could clean up
        errors.print("the local stack that was recorded is not running any more. Fix: start one with `engage local up`")
        raise typer.Exit(1)
    if answers is None:
        errors.print("the local stack does not answer (busy?). Fix: try again, or restart `engage local up`")
        raise typer.Exit(1)
    env = {name: state["tables"][logical] for name, (logical, _) in _TABLES.items()}
    queues = state.get("queues", {})
    env.update({name: queues[logical] for name, (logical, _) in _QUEUES.items() if logical in queues})
    if state.get("sqs_endpoint"):
        env["AWS_ENDPOINT_URL_SQS"] = state["sqs_endpoint"]
    env.update(
        ENGAGE_APP_ID=state.get("app_id", "fitquest"),
        AWS_ENDPOINT_URL_DYNAMODB=state["dynamodb_endpoint"],
        AWS_ENDPOINT_URL_DYNAMODB_STREAMS=state["dynamodb_endpoint"],
        AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="local",
        AWS_SECRET_ACCESS_KEY="local",
    )
    return env


def _answers(url: str) -> bool | None:
    """Whether something listens at `url`: False only if nothing does (refused), None if it did not answer in time."""
    import socket
    from urllib.parse import urlsplit

    address = urlsplit(url)
    try:
        socket.create_connection((address.hostname, address.port or 80), timeout=5).close()
    except ConnectionRefusedError:
        return False
    except OSError:
        return None
    return True


def _region() -> str:
    import boto3

    # boto3 reads AWS_DEFAULT_REGION and the profile, not AWS_REGION (which Lambda sets): accept either.
    region = boto3.session.Session().region_name or os.environ.get("AWS_REGION")
    if not region:
        errors.print("no AWS region is configured. Fix: set AWS_DEFAULT_REGION or a region in your AWS profile")
        raise typer.Exit(1)
    return region


def _deployed_stage(name: str, stage: str) -> dict[str, str]:
    """Table and queue names from the deployed stack's outputs; the app id from its parameters."""
    import boto3
    from botocore.exceptions import ClientError

    region = _region()
    cloudformation = boto3.client("cloudformation", region_name=region)
    try:
        stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    except ClientError as exc:
        if "does not exist" not in str(exc):
            raise
        errors.print(
            f"there is no stack {name} in {region}. Fix: deploy it (`make deploy STAGE={stage}`), pass --stack-name, "
            "or set AWS_DEFAULT_REGION to the stack's region"
        )
        raise typer.Exit(1) from None
    found = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    if "ConfigTableName" not in found:
        errors.print(f"stack {name} has no ConfigTableName output. Fix: pass --table or --stack-name")
        raise typer.Exit(1)
    env = {var: found[output] for var, (_, output) in {**_TABLES, **_QUEUES}.items() if output in found}
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}
    env.update(
        AWS_REGION=region, ENGAGE_APP_ID=parameters.get("AppId", "fitquest")
    )  # the tables live where the stack does
    return env


@local_app.command("up")
def local_up(
    port: Annotated[int, typer.Option(help="HTTP port on 127.0.0.1 (0: any free port)")] = 8787,
    config: Annotated[Path, typer.Option(exists=True, help="config to publish")] = DEFAULT_CONFIG,
) -> None:
    """Start the local stack and serve until Ctrl-C."""
    from .local import stack as local_stack

    _require_repo_root()
    if port and not _port_free(port):
        errors.print(f"port {port} on 127.0.0.1 is taken (another `engage local up`?). Fix: stop it or pass --port")
        raise typer.Exit(1)
    running = local_stack.start(config_path=config, port=port)
    console.print(
        f"[green]✓[/] local stack on [bold]{running.api_url}[/] (DynamoDB Local at {running.dynamodb.endpoint})"
    )
    console.print("  token:      TOKEN=$(.venv/bin/engage local token demo-user --name 'Demo User')")
    console.print(f'  app route:  curl -H "authorization: Bearer $TOKEN" {running.api_url}/v1/me')
    console.print(f"  server key: x-engage-server-key: {running.server_key}")
    console.print(f"  functions' logs and metrics: {local_stack.function_log()}")
    console.print(f"  in memory: a restart starts afresh with {config} (--config FILE for yours); Ctrl-C stops it")
    stop = threading.Event()
    for ending in (signal.SIGTERM, signal.SIGHUP):  # a closed terminal too: stop the children, remove the state
        signal.signal(ending, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        running.stop()
        console.print("local stack stopped")


@local_app.command("token")
def local_token(
    user: str,
    name: Annotated[str | None, typer.Option(help="display name (the JWT 'name' claim)")] = None,
    ttl: Annotated[int, typer.Option(min=1, help="seconds until it expires")] = 3600,
) -> None:
    """Print a JWT for USER that the local stack accepts (like a Firebase ID token)."""
    from .local import tokens

    print(tokens.mint(user, name=name, ttl_seconds=ttl))


@app.command("demo")
def demo(
    session: Annotated[Path, typer.Option(exists=True)] = Path("examples/fitquest/demo-session.json"),
    config: Annotated[Path, typer.Option(exists=True)] = DEFAULT_CONFIG,
) -> None:
    """Start the local stack, replay three demo users over HTTP, print what each earned, stop."""
    from .local import stack as local_stack
    from .local.demo import run_demo

    _require_repo_root()
    with console.status("starting DynamoDB Local and the local API…"):
        # Not recorded: a running `engage local up` keeps its place as the stack `--stage local` means.
        running = local_stack.start(config_path=config, record_state=False)
    wide = Console(width=max(console.width, 140))  # the summary table is wide; pipes default to 80 columns
    with running:
        wide.print(f"[green]✓[/] local stack on {running.api_url}, tables created from template.yaml")
        wide.print(f"  the functions' logs and metrics go to {local_stack.function_log()}")
        run_demo(running, session, wide)


@app.command("bench")
def bench(
    output: Annotated[Path, typer.Option(help="where to write the report")] = Path("docs/benchmarks.md"),
) -> None:
    """Measure ingest latency, DynamoDB calls, rule evaluation and cold imports; write a Markdown report."""
    # Sign requests as a deployed function does: awscrt, which aws-sam-cli brings into the dev environment, is
    # not in the layer, and where it is installed botocore signs with it rather than with its own Python signer.
    os.environ.setdefault("BOTO_DISABLE_CRT", "true")
    from .local.bench import run_benchmarks

    _require_repo_root()
    output.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(output.parent, os.W_OK) or (output.exists() and not os.access(output, os.W_OK)):
        errors.print(f"cannot write {output}. Fix: pass --output with a writable path")
        raise typer.Exit(1)
    report = run_benchmarks(console)
    output.write_text(report, encoding="utf-8")
    console.print(f"[green]✓[/] wrote {output}")


def _require_repo_root() -> None:
    """The local stack, the demo and the benchmarks read template.yaml and examples/ from the checkout."""
    if not Path("template.yaml").is_file():
        errors.print(f"no template.yaml in {Path.cwd()}. Fix: run this from the root of the Engage checkout")
        raise typer.Exit(1)


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _aws_problem(exc: Exception) -> str | None:
    """One line for the AWS failures a user can fix (credentials, network, permissions), else None."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
    from pynamodb.exceptions import PynamoDBException

    from .settings import SettingsMissing

    if isinstance(exc, PynamoDBException) and isinstance(exc.cause, Exception):
        exc = exc.cause
    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials found. Fix: run `aws configure` or set AWS_PROFILE"
    if isinstance(exc, EndpointConnectionError):
        return f"cannot reach {exc.kwargs.get('endpoint_url')}. Fix: check the network and the region"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return (
            f"AWS refused {exc.operation_name}: {error.get('Code')}: {error.get('Message')}. "
            "Fix: check the stage, the region and your permissions"
        )
    if isinstance(exc, SettingsMissing):
        return f"{exc}. Fix: deploy the current template (`make deploy`), whose stack has the outputs this needs"
    return None


def main() -> None:
    try:
        app()
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:
        problem = _aws_problem(exc)
        if problem is None:
            raise
        errors.print(problem, markup=False, highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()

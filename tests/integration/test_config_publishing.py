"""The product owner's loop: validate, publish, and the Lambdas follow within 60 s, no redeploy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws

import engage.services.config as config_service
from engage.api.events import EventsRequest
from engage.services.ingest import ingest_client_events
from engage.settings import get_settings
from engage.store import config_store

from ..conftest import FITQUEST, REPO


def engage_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engage.cli", *args], capture_output=True, text=True, cwd=REPO, env=os.environ.copy()
    )


@pytest.fixture
def restore_fitquest():
    yield
    config_store.publish("fitquest", _fitquest_document())
    config_service.forget_cached_config()


def _fitquest_document() -> dict:
    from engage.config.loader import parse_yaml

    return parse_yaml(FITQUEST.read_text(), str(FITQUEST))[0]


def test_validate_accepts_the_reference_config():
    result = engage_cli("config", "validate", str(FITQUEST))
    assert result.returncode == 0, result.stderr
    assert "fitquest" in result.stdout


def test_validate_lists_every_problem_with_its_line(tmp_path):
    bad = tmp_path / "engagement.yaml"
    bad.write_text(
        FITQUEST.read_text().replace("award: {xp: 5}", "award: {gems: 5}").replace("on: app_opened", "on: app_open")
    )

    result = engage_cli("config", "validate", str(bad))

    assert result.returncode == 1
    assert "rules[1].on: unknown event 'app_open'" in result.stderr
    assert "rules[1].award.gems: unknown currency 'gems'" in result.stderr
    assert "line 39, rules[1].on" in result.stderr and "Fix:" in result.stderr


def test_publish_refuses_an_invalid_file_and_changes_nothing(tmp_path):
    before = config_store.read_active("fitquest").version
    bad = tmp_path / "engagement.yaml"
    bad.write_text(FITQUEST.read_text().replace("thresholds: [0, 100,", "thresholds: [5, 100,"))

    result = engage_cli("config", "publish", str(bad), "--table", get_settings().config_table)

    assert result.returncode == 1 and "levels.thresholds" in result.stderr
    assert config_store.read_active("fitquest").version == before


def test_published_rules_reach_the_lambdas_once_their_cache_expires(tmp_path, monkeypatch, restore_fitquest):
    # Given a Lambda that has the current config cached
    config_service.forget_cached_config()
    clock = [1000.0]
    monkeypatch.setattr(config_service.time, "monotonic", lambda: clock[0])
    old = config_service.active_config().version

    # When the product owner publishes triple XP with the CLI
    tripled = tmp_path / "engagement.yaml"
    tripled.write_text(FITQUEST.read_text().replace('xp: "event.minutes * 2"', 'xp: "event.minutes * 3"'))
    result = engage_cli("config", "publish", str(tripled), "--table", get_settings().config_table)
    assert result.returncode == 0, result.stderr

    # Then the Lambda keeps serving the cached version for up to 60 s, then the new one
    clock[0] += 59
    assert config_service.active_config().version == old
    clock[0] += 2
    assert config_service.active_config().version > old
    workout = {"id": "triple-1", "type": "workout_completed", "occurred_at": datetime.now(UTC).isoformat(),
               "properties": {"minutes": 10, "kind": "run"}}  # fmt: skip
    answer = ingest_client_events(EventsRequest.model_validate({"events": [workout]}), {"sub": "triple-xp-user"})
    assert answer.progress.gained["xp"] == 30


def test_versions_are_kept_newest_first():
    versions = config_store.list_versions("fitquest")
    assert [v.version for v in versions] == sorted((v.version for v in versions), reverse=True)
    assert versions[0].version == config_store.read_active("fitquest").version


@contextmanager
def deployed_stage(stack, parameters: dict[str, str] | None = None) -> Iterator[None]:
    """A CloudFormation stack `engage-staging` in eu-west-1, from moto. moto patches botocore for the whole
    process and the CLI rewrites the table settings, so the local stack's pollers are held until both are
    undone."""
    template = {
        "Parameters": {name: {"Type": "String"} for name in parameters or {}},
        "Resources": {"Q": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {"ConfigTableName": {"Value": "engage-staging-ConfigTable-ABC123"}},
    }
    from engage.cli import _QUEUES, _TABLES

    with stack.paused(), mock_aws(), pytest.MonkeyPatch.context() as env:
        for written in (*_TABLES, *_QUEUES, "ENGAGE_APP_ID", "AWS_REGION"):  # what the CLI sets: restored after
            if written in os.environ:
                env.setenv(written, os.environ[written])
            else:
                env.delenv(written, raising=False)
        env.delenv("AWS_ENDPOINT_URL_DYNAMODB")
        env.delenv("AWS_REGION")  # as on a developer's machine: the region comes from the profile
        env.setenv("AWS_DEFAULT_REGION", "eu-west-1")
        boto3.client("cloudformation", region_name="eu-west-1").create_stack(
            StackName="engage-staging",
            TemplateBody=json.dumps(template),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in (parameters or {}).items()],
        )
        yield


def test_publish_finds_the_config_table_of_a_deployed_stage(stack):
    from engage.cli import _point_at_stage

    with deployed_stage(stack):
        _point_at_stage("staging", table=None, stack_name=None, app_id="fitquest")
        assert os.environ["CONFIG_TABLE"] == "engage-staging-ConfigTable-ABC123"
        assert os.environ["AWS_REGION"] == "eu-west-1"  # the store writes where the stack is


def test_publish_refuses_a_config_for_another_app_than_the_stage_serves(stack, capsys):
    import typer

    from engage.cli import _point_at_stage

    with deployed_stage(stack, {"AppId": "fitquest"}), pytest.raises(typer.Exit):
        _point_at_stage("staging", table=None, stack_name=None, app_id="shop")
    assert (
        "this config is for app 'shop', but stage staging serves app 'fitquest': its Lambdas would never read it. "
        "Fix: set `app: fitquest` in the file, or deploy the stage with AppId=shop"
    ) in capsys.readouterr().err.replace("\n", " ")


def test_a_stage_without_a_stack_is_a_clear_error(stack, capsys):
    import typer

    from engage.cli import _point_at_stage

    with deployed_stage(stack), pytest.raises(typer.Exit):
        _point_at_stage("prod", table=None, stack_name=None, app_id="fitquest")
    assert "there is no stack engage-prod in eu-west-1. Fix: deploy it" in capsys.readouterr().err

    with pytest.raises(typer.Exit):  # a typo never reaches AWS
        _point_at_stage("locl", table=None, stack_name=None, app_id="fitquest")
    assert "there is no stage 'locl'. Fix: use local" in capsys.readouterr().err


def test_a_local_stack_that_died_is_forgotten_with_a_clear_error(monkeypatch, tmp_path, capsys):
    import typer

    import engage.local.stack as local_stack
    from engage.cli import _point_at_stage
    from engage.local.dynamodb_local import free_port

    recorded = tmp_path / "stack.json"
    recorded.write_text(f'{{"dynamodb_endpoint": "http://127.0.0.1:{free_port()}", "tables": {{}}}}')
    monkeypatch.setattr(local_stack, "state_file", lambda: recorded)
    with pytest.raises(typer.Exit):
        _point_at_stage("local", table=None, stack_name=None, app_id=None)
    assert "not running any more. Fix: start one with `engage local up`" in capsys.readouterr().err
    assert not recorded.exists()


def test_publish_outside_the_checkout_and_with_bad_bytes_fails_cleanly(tmp_path):
    binary = tmp_path / "engagement.yaml"
    binary.write_bytes(b"app: \xff\n")
    result = engage_cli("config", "publish", str(binary))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "not UTF-8" in result.stderr

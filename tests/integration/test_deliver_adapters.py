"""The deliver function's adapters: FCM credentials from Secrets Manager (moto), and the retry backoff."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from engage.push.firebase import service_account_json
from engage.push.sender import PushResult
from engage.services.deliver import backoff


def test_the_service_account_is_read_from_the_secret_the_stack_names(stack, monkeypatch):
    account = {"type": "service_account", "project_id": "fitquest-prod", "client_email": "fcm@fitquest.iam"}
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL_SQS", raising=False)  # mock_aws only intercepts AWS's own hosts
    with stack.paused(), mock_aws():  # moto patches botocore process-wide: the stack's pollers wait meanwhile
        secrets = boto3.client("secretsmanager", region_name="eu-west-1")
        arn = secrets.create_secret(Name="engage/fcm", SecretString=json.dumps(account))["ARN"]
        assert json.loads(service_account_json(arn)) == account
        binary = secrets.create_secret(Name="engage/binary", SecretBinary=b"\x00")["ARN"]
        with pytest.raises(RuntimeError, match=r"no SecretString\. Fix: store the service-account JSON as text"):
            service_account_json(binary)


def test_backoff_doubles_from_the_base_honours_retry_after_and_stops_at_sqs_longest_delay():
    unavailable = PushResult("m", "retry", "UNAVAILABLE")
    assert [backoff(attempt, [unavailable], base=30) for attempt in range(6)] == [30, 60, 120, 240, 480, 900]
    quota = PushResult("m", "retry", "QUOTA_EXCEEDED", retry_after=200.0)
    assert backoff(0, [unavailable, quota], base=30) == 200  # FCM asked for longer than our backoff
    assert backoff(3, [quota], base=30) == 240  # ours is longer by now
    assert backoff(0, [], base=30) == 30  # a crash has no FCM answer: the base
    long_quota = PushResult("m", "retry", "QUOTA_EXCEEDED", retry_after=3600.0)
    assert backoff(0, [long_quota], base=30) == 3600  # honoured in full: deliver chains 15-minute SQS delays

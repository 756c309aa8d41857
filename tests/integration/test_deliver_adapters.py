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


def test_a_rotated_service_account_key_gets_a_new_app_and_the_old_one_is_let_go(monkeypatch):
    import firebase_admin
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from engage.push import firebase

    def account(email: str) -> str:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()  # fmt: skip
        return json.dumps({"type": "service_account", "project_id": "fitquest-prod", "private_key_id": "k",
                           "private_key": pem, "client_email": email, "token_uri": "https://oauth2.googleapis.com/token"})  # fmt: skip

    # Given deliver pointed at FCM (not the emulator) and a secret holding one key, then a rotated one
    settings = type("Settings", (), {"fcm_endpoint": None, "required": lambda self, name: "arn:engage/fcm"})()
    monkeypatch.setattr(firebase, "get_settings", lambda: settings)
    monkeypatch.setattr(firebase, "_built", None)
    secret = [account("old@fitquest.iam")]
    monkeypatch.setattr(firebase, "service_account_json", lambda arn: secret[0])
    try:
        first = firebase.firebase_app()
        assert firebase.firebase_app() is first  # the same key: the same App (and HTTP clients)

        secret[0] = account("new@fitquest.iam")  # rotated; the hour-long cache has expired
        second = firebase.firebase_app()

        assert second is not first and second.credential.service_account_email == "new@fitquest.iam"
        assert firebase_admin.get_app("engage-fcm") is second  # the old App was deleted, freeing its name

        for botched in ("{not json", '"abc"', "[]"):  # a botched rotation: the App in use keeps sending meanwhile
            secret[0] = botched
            assert firebase.firebase_app() is second
        secret[0] = account("fixed@fitquest.iam")  # and once the secret is fixed, its key is used
        assert firebase.firebase_app().credential.service_account_email == "fixed@fitquest.iam"
    finally:
        if firebase._built is not None:
            firebase_admin.delete_app(firebase._built[1])


def test_a_first_secret_without_a_usable_key_fails_naming_the_secret_and_the_fix(monkeypatch):
    # The batch fails and SQS hands its jobs out again; the log says which secret and what to store in it
    from engage.push import firebase

    settings = type("Settings", (), {"fcm_endpoint": None, "required": lambda self, name: "arn:engage/fcm"})()
    monkeypatch.setattr(firebase, "get_settings", lambda: settings)
    monkeypatch.setattr(firebase, "_built", None)
    monkeypatch.setattr(firebase, "service_account_json", lambda arn: '{"type": "service_account", "project_id": "p"}')

    with pytest.raises(ValueError, match=r"the FCM secret arn:engage/fcm holds no usable service account .*Fix: store"):
        firebase.firebase_app()

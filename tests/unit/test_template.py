"""template.yaml is the one source of truth: routes, auth, least privilege and table settings hold."""

from __future__ import annotations

from pathlib import Path

import pytest

from engage.local.template import load_template

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


@pytest.fixture(scope="module")
def template():
    return load_template(TEMPLATE)


@pytest.fixture(scope="module")
def resources(template):
    return template.resources


def test_routes_and_their_authorizers(template):
    routes = {(r.method, r.path): (r.function, r.auth) for r in template.routes}
    assert routes == {
        ("POST", "/v1/events"): ("IngestFunction", "jwt"),
        ("POST", "/v1/server/events"): ("IngestFunction", "iam"),
        ("GET", "/v1/me"): ("ApiFunction", "jwt"),
        ("GET", "/v1/me/history"): ("ApiFunction", "jwt"),
        ("GET", "/v1/leaderboards/{id}"): ("ApiFunction", "jwt"),
        ("POST", "/v1/me/devices"): ("ApiFunction", "jwt"),
        ("DELETE", "/v1/me/devices/{id}"): ("ApiFunction", "jwt"),
        ("GET", "/v1/me/preferences"): ("ApiFunction", "jwt"),
        ("PUT", "/v1/me/preferences"): ("ApiFunction", "jwt"),
        ("GET", "/v1/me/inbox"): ("ApiFunction", "jwt"),
        ("POST", "/v1/me/inbox/{id}/{action}"): ("ApiFunction", "jwt"),
    }


def _statements(resources, function):
    properties = resources[function]["Properties"]
    if "Role" in properties:  # a role of its own, with the event sources' reads scoped to them
        role = resources[properties["Role"]["Fn::GetAtt"][0]]["Properties"]
        return [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]
    return [s for policy in properties["Policies"] for s in policy["Statement"]]


def _grants(resources, function):
    grants = set()
    for statement in _statements(resources, function):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources_ = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for resource in resources_:
            name = (
                ".".join(resource["Fn::GetAtt"]).removesuffix(".Arn") if "Fn::GetAtt" in resource
                else resource["Ref"] if "Ref" in resource
                else resource["Fn::Sub"]
            )  # fmt: skip
            grants |= {(action, name) for action in actions}
    return grants


def test_each_function_may_do_only_what_its_code_does(resources):
    assert _grants(resources, "IngestFunction") == {
        ("dynamodb:GetItem", "UsersTable"),
        ("dynamodb:PutItem", "UsersTable"),
        ("dynamodb:PutItem", "LedgerTable"),
        ("dynamodb:BatchGetItem", "LedgerTable"),  # rejected events applied before are duplicates
        ("dynamodb:PutItem", "LeaderboardsTable"),
        ("dynamodb:Query", "LeaderboardsTable"),  # histograms for the rank estimates
        ("dynamodb:GetItem", "ConfigTable"),
    }
    assert _grants(resources, "ApiFunction") == {
        ("dynamodb:GetItem", "UsersTable"),
        ("dynamodb:PutItem", "UsersTable"),  # preferences
        ("dynamodb:Query", "${LedgerTable.Arn}/index/ByTime"),  # history reads the index, never the table
        ("dynamodb:GetItem", "LeaderboardsTable"),
        ("dynamodb:Query", "LeaderboardsTable"),
        ("dynamodb:Query", "${LeaderboardsTable.Arn}/index/ByScore"),
        ("dynamodb:UpdateItem", "DevicesTable"),
        ("dynamodb:DeleteItem", "DevicesTable"),
        ("dynamodb:Query", "${DevicesTable.Arn}/index/ByToken"),
        ("dynamodb:Query", "InboxTable"),
        ("dynamodb:UpdateItem", "InboxTable"),
        ("dynamodb:GetItem", "ConfigTable"),
        ("sqs:SendMessage", "DeliveryQueue"),  # the silent "clear" when a pushed message is read
    }
    assert _grants(resources, "NotifyFunction") == {
        ("dynamodb:GetItem", "UsersTable"),
        ("dynamodb:PutItem", "InboxTable"),
        ("dynamodb:GetItem", "InboxTable"),
        ("dynamodb:BatchGetItem", "InboxTable"),
        ("dynamodb:UpdateItem", "InboxTable"),
        ("dynamodb:GetItem", "ConfigTable"),
        ("sqs:SendMessage", "DeliveryQueue"),
        ("sqs:SendMessage", "DeferredQueue"),
        ("sqs:SendMessage", "DeferredDeadLetterQueue"),  # a malformed held message
        ("sqs:SendMessage", "NotifyFailedBatchesQueue"),  # Lambda's failure record of a stream batch
        *_reads_stream("LedgerTable"),
        *_reads_queue("DeferredQueue"),
    }
    assert _grants(resources, "BoardsFunction") == {
        ("dynamodb:Query", "LeaderboardsTable"),
        ("dynamodb:UpdateItem", "LeaderboardsTable"),
        ("dynamodb:Query", "${LeaderboardsTable.Arn}/index/ByScore"),
        ("dynamodb:PutItem", "LedgerTable"),  # rank_lost facts
        ("dynamodb:PutItem", "IdempotencyTable"),  # a marker per histogram move
        ("dynamodb:GetItem", "ConfigTable"),
        ("sqs:SendMessage", "BoardsFailedBatchesQueue"),
        *_reads_stream("LeaderboardsTable"),
    }
    assert _grants(resources, "DeliverFunction") == {
        ("dynamodb:Query", "DevicesTable"),
        ("dynamodb:DeleteItem", "DevicesTable"),
        ("dynamodb:BatchGetItem", "InboxTable"),  # has the user read a message whose push is retried?
        ("dynamodb:GetItem", "IdempotencyTable"),
        ("dynamodb:PutItem", "IdempotencyTable"),
        ("dynamodb:UpdateItem", "IdempotencyTable"),
        ("dynamodb:DeleteItem", "IdempotencyTable"),
        ("sqs:SendMessage", "DeliveryQueue"),
        ("sqs:SendMessage", "NotificationsDeadLetterQueue"),
        ("secretsmanager:GetSecretValue", "FcmCredentialsSecretArn"),  # only it reads the FCM credentials
        ("secretsmanager:GetSecretValue", "${FcmCredentialsSecretArn}-??????"),  # its full ARN, given a partial one
        *_reads_queue("DeliveryQueue"),
    }


def _reads_stream(table: str) -> set[tuple[str, str]]:
    actions = ("DescribeStream", "GetRecords", "GetShardIterator", "ListStreams")
    return {(f"dynamodb:{action}", f"${{{table}.Arn}}/stream/*") for action in actions}


def _reads_queue(queue: str) -> set[tuple[str, str]]:
    return {(f"sqs:{action}", queue) for action in ("ReceiveMessage", "DeleteMessage", "GetQueueAttributes")}


def test_functions_with_event_sources_have_roles_of_their_own_that_read_only_those_sources(resources):
    # SAM gives a function it makes a role for AWS's managed event-source policy, which reads every stream
    # (or queue) in the account: those functions bring their own role, scoped as checked above.
    for name, function in resources.items():
        if function["Type"] != "AWS::Serverless::Function":
            continue
        kinds = {event["Type"] for event in function["Properties"].get("Events", {}).values()}
        if kinds & {"DynamoDB", "SQS"}:
            role = resources[function["Properties"]["Role"]["Fn::GetAtt"][0]]["Properties"]
            managed = {arn["Fn::Sub"].rsplit("/", 1)[1] for arn in role["ManagedPolicyArns"]}
            assert managed == {"AWSLambdaBasicExecutionRole", "AWSXrayWriteOnlyAccess"}, name  # logs, traces
            assert "Policies" not in function["Properties"], name  # ignored beside a Role: all in the role


def test_only_deliver_carries_firebase_admin():
    functions = TEMPLATE.parent / "functions"
    carrying = {d.name for d in functions.iterdir() if "firebase-admin" in (d / "requirements.txt").read_text()}
    assert carrying == {"deliver"}
    assert "firebase" not in (TEMPLATE.parent / "layers/engage/requirements.txt").read_text()


def test_delivery_queues_dead_letter_and_their_consumers_report_partial_failures(resources):
    # One dead-letter queue per source, so that a redrive has one destination
    for queue, dead_letters in (
        ("DeliveryQueue", "NotificationsDeadLetterQueue"),
        ("DeferredQueue", "DeferredDeadLetterQueue"),
    ):
        redrive = resources[queue]["Properties"]["RedrivePolicy"]
        assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": [dead_letters, "Arn"]}
    deliver = resources["DeliverFunction"]["Properties"]
    jobs = deliver["Events"]["DeliveryJobs"]["Properties"]
    assert jobs["BatchSize"] <= 500 and jobs["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # Lambda requires the queue's visibility timeout to be at least the function's timeout.
    assert resources["DeliveryQueue"]["Properties"]["VisibilityTimeout"] >= deliver["Timeout"]


def test_tables_are_protected_and_the_ledger_streams_and_expires(resources):
    # Idempotency records live days and are worthless after: no backups, deleted with the stack.
    assert resources["IdempotencyTable"]["DeletionPolicy"] == "Delete"
    tables = {
        rid: r for rid, r in resources.items() if r["Type"] == "AWS::DynamoDB::Table" and rid != "IdempotencyTable"
    }
    assert set(tables) == {
        "UsersTable",
        "LedgerTable",
        "LeaderboardsTable",
        "DevicesTable",
        "InboxTable",
        "ConfigTable",
    }
    for table in tables.values():
        props = table["Properties"]
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
        assert props["SSESpecification"]["SSEEnabled"] is True
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert table["DeletionPolicy"] == "Retain"
    ledger = tables["LedgerTable"]["Properties"]
    assert ledger["StreamSpecification"]["StreamViewType"] == "NEW_IMAGE"
    assert ledger["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


def test_store_models_match_the_template_keys(template):
    from engage.store.models import ConfigItem, DeviceItem, InboxItem, LeaderboardItem, LedgerItem, UserItem

    pairs = ((UserItem, "UsersTable"), (LedgerItem, "LedgerTable"), (LeaderboardItem, "LeaderboardsTable"), (DeviceItem, "DevicesTable"), (InboxItem, "InboxTable"),
             (ConfigItem, "ConfigTable"))  # fmt: skip
    for model, logical_id in pairs:
        keys = {k["AttributeName"]: k["KeyType"] for k in template.tables[logical_id]["KeySchema"]}
        declared = {name: "HASH" if attr.is_hash_key else "RANGE" for name, attr in model.get_attributes().items()
                    if attr.is_hash_key or attr.is_range_key}  # fmt: skip
        assert declared == keys, logical_id


def test_every_reference_names_a_parameter_or_resource(template):
    import re

    known = set(template.parameters) | set(template.resources)

    def names(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "Ref":
                    yield value
                elif key == "Fn::GetAtt":
                    yield value[0]
                elif key == "Fn::Sub":
                    text = value if isinstance(value, str) else value[0]
                    yield from (name.split(".")[0] for name in re.findall(r"\$\{([^}!]+)\}", text))
                else:
                    yield from names(value)
        elif isinstance(node, list):
            for item in node:
                yield from names(item)

    import yaml

    from engage.local.template import _CfnLoader

    document = yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)
    unknown = {name for name in names(document) if not name.startswith("AWS::") and name not in known}
    assert not unknown, f"template.yaml refers to undeclared names: {sorted(unknown)}"


def test_every_dead_letter_destination_raises_an_alarm(resources):
    # Whatever Engage sets aside needs a person, and a failed stream batch only while the stream holds it.
    redrive_targets = {
        props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for props in (r["Properties"] for r in resources.values() if r["Type"] == "AWS::SQS::Queue")
        if "RedrivePolicy" in props
    }
    failed_batches = {
        event["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
        for function in resources.values()
        if function["Type"] == "AWS::Serverless::Function"
        for event in function["Properties"].get("Events", {}).values()
        if "DestinationConfig" in event.get("Properties", {})
    }

    def alarmed(metric: str) -> set[str]:
        return {
            alarm["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
            for alarm in resources.values()
            if alarm["Type"] == "AWS::CloudWatch::Alarm"
            and alarm["Properties"]["MetricName"] == metric
            and alarm["Properties"]["Threshold"] == 0
        }

    assert redrive_targets == {"NotificationsDeadLetterQueue", "DeferredDeadLetterQueue"}
    assert failed_batches == {"NotifyFailedBatchesQueue", "BoardsFailedBatchesQueue"}
    # SQS's own moves count in no "sent" metric: a redrive target alarms while it holds messages
    assert redrive_targets <= alarmed("ApproximateNumberOfMessagesVisible")
    # Lambda sends each failure record: alarming on arrivals notifies for every new one, not just the first
    assert failed_batches <= alarmed("NumberOfMessagesSent")


def test_an_environment_variable_means_the_same_in_every_function(template):
    # The local stack runs every function in one process with one environment: a name that two functions set
    # to different values would quietly point one of them at the wrong table or queue there.
    values: dict[str, set[str]] = {}
    for function in template.functions.values():
        for name, value in function.environment.items():
            values.setdefault(name, set()).add(repr(value))
    assert {name: seen for name, seen in values.items() if len(seen) > 1} == {}


def test_the_samconfig_placeholders_are_refused_by_the_templates_parameter_patterns():
    """A first deploy that forgot to fill them in fails at once, naming the fix, instead of a stack that
    answers every app with 401 and dead-letters every push (or, in prod, alarms nobody)."""
    import re
    import tomllib

    import yaml

    from engage.local.template import _CfnLoader

    parameters = yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)["Parameters"]
    config = tomllib.loads((TEMPLATE.parent / "infra" / "samconfig.toml").read_text())
    for stage, sections in config.items():
        if stage == "version":
            continue
        overrides = dict(pair.split("=", 1) for pair in sections["deploy"]["parameters"]["parameter_overrides"].split())
        required = {"JwtAudience", "FcmCredentialsSecretArn"} | ({"AlarmTopicArn"} if stage == "prod" else set())
        assert required <= {name for name, value in overrides.items() if value.startswith("<")}, stage
        for name, value in overrides.items():
            if value.startswith("<"):
                assert not re.fullmatch(parameters[name]["AllowedPattern"], value), (stage, name)
    examples = {
        "JwtAudience": "fitquest-prod",
        "FcmCredentialsSecretArn": "arn:aws:secretsmanager:eu-west-1:210987654321:secret:engage/fcm",
        "AlarmTopicArn": "arn:aws:sns:eu-west-1:210987654321:engage-alarms",
    }
    for name, value in examples.items():
        assert re.fullmatch(parameters[name]["AllowedPattern"], value)


def test_the_cli_knows_the_stages_the_template_allows():
    import yaml

    from engage.cli import STAGES
    from engage.local.template import _CfnLoader

    parameters = yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)["Parameters"]
    assert ["local", *parameters["Stage"]["AllowedValues"]] == list(STAGES)

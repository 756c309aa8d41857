"""Read template.yaml the way the local stack needs it: tables and queues to create, functions, HTTP routes
and event sources.

template.yaml stays the one source of truth: the local stack and the tests create their tables and
route their requests from it, so a route or key change there is what they run.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

Auth = Literal["jwt", "iam", "none"]


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # e.g. /v1/me or /v1/leaderboards/{id}
    function: str  # logical id
    auth: Auth

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Path parameters when this route serves (method, path), else None."""
        if method != self.method:
            return None
        pattern = "^" + re.sub(r"\{(\w+)\+?\}", r"(?P<\1>[^/]+)", self.path) + "$"
        found = re.match(pattern, path)
        return found.groupdict() if found else None


@dataclass(frozen=True)
class StreamSource:
    """A function fed by a table's DynamoDB stream (an event source mapping)."""

    function: str  # logical id
    table: str  # logical id of the table whose stream it reads
    batch_size: int = 100
    filters: tuple[str, ...] = ()  # FilterCriteria patterns (JSON): a record matching none is not delivered
    on_failure: str | None = None  # logical id of the queue DestinationConfig.OnFailure names


@dataclass(frozen=True)
class QueueSource:
    """A function fed by an SQS queue (an event source mapping)."""

    function: str  # logical id
    queue: str  # logical id of the AWS::SQS::Queue
    batch_size: int = 10
    batching_window: float = 0  # MaximumBatchingWindowInSeconds (a local poll takes what is visible now)
    partial_failures: bool = False  # FunctionResponseTypes holds ReportBatchItemFailures


@dataclass(frozen=True)
class Queue:
    """An AWS::SQS::Queue, with the attributes that change how messages come back."""

    logical_id: str
    visibility_timeout: int = 30
    retention_seconds: int = 345_600
    delay_seconds: int = 0
    dead_letter_queue: str | None = None  # logical id of the RedrivePolicy's deadLetterTargetArn
    max_receive_count: int | None = None

    def attributes(self, dead_letter_arn: str | None = None) -> dict[str, str]:
        """CreateQueue attributes; `dead_letter_arn` is the created dead-letter queue's ARN."""
        attributes = {
            "VisibilityTimeout": str(self.visibility_timeout),
            "MessageRetentionPeriod": str(self.retention_seconds),
            "DelaySeconds": str(self.delay_seconds),
        }
        if self.dead_letter_queue is not None:
            if dead_letter_arn is None:
                raise ValueError(f"{self.logical_id}: the ARN of {self.dead_letter_queue} is needed for its redrive")
            policy = {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": self.max_receive_count}
            attributes["RedrivePolicy"] = json.dumps(policy)
        return attributes


@dataclass(frozen=True)
class Function:
    logical_id: str
    code_uri: Path
    handler: str  # module.function
    environment: dict[str, Any] = field(default_factory=dict)  # values may still hold intrinsics
    timeout: float | None = None  # seconds (Timeout, else the Globals' one)


@dataclass(frozen=True)
class Template:
    path: Path
    tables: dict[str, dict[str, Any]]  # logical id → Properties of AWS::DynamoDB::Table
    functions: dict[str, Function]
    routes: list[Route]
    streams: list[StreamSource]
    parameters: dict[str, Any]
    resources: dict[str, Any]  # the whole Resources section, intrinsics in long form
    queues: dict[str, Queue] = field(default_factory=dict)  # logical id → AWS::SQS::Queue
    queue_sources: list[QueueSource] = field(default_factory=list)

    def table_request(self, logical_id: str, name: str) -> dict[str, Any]:
        """CreateTable arguments for one table, as template.yaml declares it."""
        props = self.tables[logical_id]
        request: dict[str, Any] = {
            "TableName": name,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        for key in ("LocalSecondaryIndexes", "GlobalSecondaryIndexes"):
            if key in props:
                request[key] = props[key]
        if "StreamSpecification" in props:  # DynamoDB Local has streams too: the local pollers read them
            request["StreamSpecification"] = {
                "StreamEnabled": True,
                "StreamViewType": props["StreamSpecification"]["StreamViewType"],
            }
        return request

    def ttl_attribute(self, logical_id: str) -> str | None:
        spec = self.tables[logical_id].get("TimeToLiveSpecification") or {}
        return spec.get("AttributeName") if spec.get("Enabled") else None


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation short forms (!Ref X, !Sub '...') as their long forms."""


def _intrinsic(loader: _CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: str | Path) -> Template:
    path = Path(path)
    doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)
    resources: dict[str, Any] = doc.get("Resources", {})
    globals_fn = doc.get("Globals", {}).get("Function", {})
    globals_env = globals_fn.get("Environment", {}).get("Variables", {})
    default_auth = _default_authorizers(resources)
    tables = {rid: r["Properties"] for rid, r in resources.items() if r["Type"] == "AWS::DynamoDB::Table"}
    functions: dict[str, Function] = {}
    routes: list[Route] = []
    streams: list[StreamSource] = []
    queue_sources: list[QueueSource] = []
    for rid, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        env = {**globals_env, **props.get("Environment", {}).get("Variables", {})}
        timeout = props.get("Timeout", globals_fn.get("Timeout"))
        functions[rid] = Function(rid, path.parent / props["CodeUri"], props["Handler"], env, _number(timeout))
        for event in props.get("Events", {}).values():
            if event["Type"] == "DynamoDB":
                stream = event["Properties"]["Stream"]
                table = stream["Fn::GetAtt"][0] if isinstance(stream, dict) and "Fn::GetAtt" in stream else None
                if table:
                    batch_size = int(event["Properties"].get("BatchSize", 100))
                    filters = tuple(
                        f["Pattern"] for f in event["Properties"].get("FilterCriteria", {}).get("Filters", [])
                    )
                    destination = (
                        event["Properties"].get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
                    )
                    on_failure = destination["Fn::GetAtt"][0] if isinstance(destination, dict) else None
                    streams.append(StreamSource(rid, table, batch_size, filters, on_failure))
                continue
            if event["Type"] == "SQS":
                queue_sources.append(_queue_source(rid, event["Properties"]))
                continue
            if event["Type"] != "HttpApi":
                continue
            ev = event["Properties"]
            api = (ev.get("ApiId") or {}).get("Ref", "ServerlessHttpApi")
            authorizer = (ev.get("Auth") or {}).get("Authorizer") or default_auth.get(api) or "NONE"
            auth: Auth = "iam" if authorizer == "AWS_IAM" else "none" if authorizer == "NONE" else "jwt"
            routes.append(Route(ev["Method"].upper(), ev["Path"], rid, auth))
    parameters = {name: spec.get("Default") for name, spec in doc.get("Parameters", {}).items()}
    queues = {
        rid: _queue(rid, r.get("Properties") or {}) for rid, r in resources.items() if r["Type"] == "AWS::SQS::Queue"
    }
    return Template(path, tables, functions, routes, streams, parameters, resources, queues, queue_sources)


def _queue(logical_id: str, props: dict[str, Any]) -> Queue:
    redrive = props.get("RedrivePolicy") or {}
    target = redrive.get("deadLetterTargetArn")
    dead_letter_queue = target["Fn::GetAtt"][0] if isinstance(target, dict) and "Fn::GetAtt" in target else None
    return Queue(
        logical_id,
        visibility_timeout=int(props.get("VisibilityTimeout", 30)),
        retention_seconds=int(props.get("MessageRetentionPeriod", 345_600)),
        delay_seconds=int(props.get("DelaySeconds", 0)),
        dead_letter_queue=dead_letter_queue,
        max_receive_count=int(redrive["maxReceiveCount"]) if dead_letter_queue else None,
    )


def _queue_source(function: str, props: dict[str, Any]) -> QueueSource:
    queue = props["Queue"]
    if not (isinstance(queue, dict) and "Fn::GetAtt" in queue):
        raise ValueError(f"{function}: an SQS event's Queue must be !GetAtt <queue>.Arn of this template")
    return QueueSource(
        function,
        queue["Fn::GetAtt"][0],
        batch_size=int(props.get("BatchSize", 10)),
        batching_window=float(props.get("MaximumBatchingWindowInSeconds", 0)),
        partial_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
    )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _default_authorizers(resources: dict[str, Any]) -> dict[str, str]:
    return {
        rid: (r.get("Properties", {}).get("Auth") or {}).get("DefaultAuthorizer", "NONE")
        for rid, r in resources.items()
        if r["Type"] == "AWS::Serverless::HttpApi"
    }


def resolve(value: Any, refs: dict[str, str]) -> str | None:
    """A plain string for an env value (Ref/Sub of known names), or None when it cannot be known locally."""
    if isinstance(value, str | int | float | bool):
        return str(value)
    if isinstance(value, dict) and "Ref" in value:
        return refs.get(value["Ref"])
    if isinstance(value, dict) and "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
        text = value["Fn::Sub"]
        missing = [name for name in re.findall(r"\$\{([\w:.]+)\}", text) if name not in refs]
        return None if missing else re.sub(r"\$\{([\w:.]+)\}", lambda m: refs[m.group(1)], text)
    return None

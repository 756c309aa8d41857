"""The one Logger, Tracer and Metrics every handler shares."""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger(service="engage")
tracer = Tracer(service="engage")
metrics = Metrics(namespace="Engage", service="engage")

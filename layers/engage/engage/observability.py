"""The one Logger and Metrics every handler shares.

Tracing: template.yaml turns on Lambda's active X-Ray tracing, which records every invocation without
an SDK. The X-Ray SDK (Powertools' Tracer) is left out on purpose: importing it would take most of the
300 ms cold-start budget (docs/benchmarks.md) for sub-segments of calls whose counts are already fixed by
design (one GetItem and one transaction per request).
"""

from aws_lambda_powertools import Logger, Metrics

logger = Logger(service="engage")
metrics = Metrics(namespace="Engage", service="engage")

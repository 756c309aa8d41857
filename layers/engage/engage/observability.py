"""The one Logger and Metrics every handler shares.

Tracing: template.yaml turns on Lambda's active X-Ray tracing, which records every invocation without
an SDK. The X-Ray SDK (Powertools' Tracer) is left out on purpose: it adds about 120 ms to every cold
start here (docs/benchmarks.md) for sub-segments of calls whose counts are already fixed by design
(one GetItem and one transaction per request).
"""

from aws_lambda_powertools import Logger, Metrics

logger = Logger(service="engage")
metrics = Metrics(namespace="Engage", service="engage")

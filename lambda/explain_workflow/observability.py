"""The workflow functions' logging, tracing and metrics, set up once for all four handlers.

The service name comes from ``POWERTOOLS_SERVICE_NAME`` (one per function, set by the stack); the metrics
namespace is fixed here, so every function's metrics land together whatever its environment says.
"""

from __future__ import annotations

from collections.abc import Callable

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from explain_workflow.contract import METRICS_NAMESPACE

logger = Logger()
tracer = Tracer()
metrics = Metrics(namespace=METRICS_NAMESPACE)


def count(name: str, value: int = 1) -> None:
    """Add ``value`` to the metric ``name`` of this invocation (flushed when the handler returns)."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def entry_point(handler: Callable) -> Callable:
    """A Lambda handler with the invocation's context in every log line, a trace, and its metrics flushed."""
    return logger.inject_lambda_context(clear_state=True)(tracer.capture_lambda_handler(metrics.log_metrics(handler)))

"""Lambda: the workflow's failure path writes a FAILED manifest (never overwriting one)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ConfigDict

from explain_workflow import aws
from explain_workflow.failure import record_failure

logger, tracer, metrics = Logger(), Tracer(), Metrics()


class FailureEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")
    request: dict = {}
    prepare: dict | None = None
    error: dict = {}


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context) -> dict:
    failure = FailureEvent.model_validate(event)
    result = record_failure(aws.storage(), failure.model_dump(), aws.settings())
    logger.append_keys(run_id=result["run_id"])
    logger.warning("run failed", extra={"reason": result["reason"]})
    metrics.add_metric(name="RunFailed", unit=MetricUnit.Count, value=1)
    return result

"""Lambda: turn Clarify's output into results/ and the manifest."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ConfigDict

from explain_workflow import aws
from explain_workflow.clarify_format import ClarifyOutputError
from explain_workflow.postprocess import postprocess_run

logger, tracer, metrics = Logger(), Tracer(), Metrics()


class PostprocessEvent(BaseModel):
    """prepare's output is passed as is; only run_id matters here."""

    model_config = ConfigDict(extra="ignore")
    run_id: str


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context) -> dict:
    request = PostprocessEvent.model_validate(event)
    logger.append_keys(run_id=request.run_id)
    try:
        result = postprocess_run(aws.storage(), request.run_id, aws.settings())
    except ClarifyOutputError as exc:
        logger.error("Clarify output rejected", extra={"reason": exc.reason, "where": exc.where})
        metrics.add_metric(name="ClarifyOutputRejected", unit=MetricUnit.Count, value=1)
        raise
    logger.info("results written", extra={"records": result["records"]})
    metrics.add_metric(name="RecordsExplained", unit=MetricUnit.Count, value=result["records"])
    return result

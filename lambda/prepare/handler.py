"""Lambda: prepare a run (validate and freeze the input, write the analysis config)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ConfigDict

from explain_workflow import aws
from explain_workflow.dataset import InputValidationError
from explain_workflow.prepare import ALREADY_DONE, prepare_run

logger, tracer, metrics = Logger(), Tracer(), Metrics()


class PrepareEvent(BaseModel):
    """The request that starts a run (extra keys from event transformers are ignored)."""

    model_config = ConfigDict(extra="ignore")
    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    overrides: dict = {}
    attempt: int = 1  # which try of the run this execution is (the starter counts)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context) -> dict:
    request = PrepareEvent.model_validate(event)
    try:
        result = prepare_run(aws.storage(), request.model_dump(), aws.settings())
    except InputValidationError as exc:
        logger.warning("input rejected", extra={"reason": exc.reason, "where": exc.where})
        metrics.add_metric(name="InputRejected", unit=MetricUnit.Count, value=1)
        raise
    logger.append_keys(run_id=result["run_id"])
    logger.info("prepared", extra={"status": result["status"], "rows": result["rows"]})
    metric = "DuplicateRequest" if result["status"] == ALREADY_DONE else "RunPrepared"
    metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
    return result

"""Lambda: the workflow's failure path writes a FAILED manifest (never overwriting one)."""

from __future__ import annotations

from explain_workflow import aws
from explain_workflow.failure import FailureEvent, record_failure
from explain_workflow.observability import count, entry_point, logger


@entry_point
def handler(event: dict, context) -> dict:
    result = record_failure(aws.storage(), FailureEvent.model_validate(event), aws.settings())
    logger.append_keys(run_id=result.run_id)
    logger.warning("run failed", extra={"reason": result.reason})
    count("RunFailed")
    return result.model_dump(mode="json")

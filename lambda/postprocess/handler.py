"""Lambda: turn Clarify's output into results/ and the manifest."""

from __future__ import annotations

from explain_workflow import aws
from explain_workflow.contract import PrepareResult
from explain_workflow.errors import ClarifyOutputError
from explain_workflow.observability import count, entry_point, logger
from explain_workflow.postprocess import postprocess_run
from explain_workflow.runs import StaleAttemptError


@entry_point
def handler(event: dict, context) -> dict:
    prepared = PrepareResult.model_validate(event)  # the state machine passes prepare's answer as is
    logger.append_keys(run_id=prepared.run_id)
    try:
        result = postprocess_run(aws.storage(), prepared.run_id, aws.settings(), attempt=prepared.attempt)
    except ClarifyOutputError as exc:
        logger.error("Clarify output rejected", extra={"reason": exc.reason, "where": exc.where})
        count("ClarifyOutputRejected")
        raise
    except StaleAttemptError as exc:  # a newer attempt of this run owns its files and its manifest
        logger.warning("attempt overtaken", extra={"reason": str(exc), "attempt": prepared.attempt})
        raise
    logger.info("results written", extra={"records": result.records})
    count("RecordsExplained", result.records)
    return result.model_dump(mode="json")

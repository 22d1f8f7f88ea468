"""Lambda: turn Clarify's output into results/ and the manifest."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from explain_workflow import aws
from explain_workflow.clarify_format import ClarifyOutputError
from explain_workflow.observability import count, entry_point, logger
from explain_workflow.postprocess import postprocess_run


class PostprocessEvent(BaseModel):
    """prepare's output is passed as is; only run_id matters here."""

    model_config = ConfigDict(extra="ignore")
    run_id: str


@entry_point
def handler(event: dict, context) -> dict:
    run_id = PostprocessEvent.model_validate(event).run_id  # prepare's answer, passed as is
    logger.append_keys(run_id=run_id)
    try:
        result = postprocess_run(aws.storage(), run_id, aws.settings())
    except ClarifyOutputError as exc:
        logger.error("Clarify output rejected", extra={"reason": exc.reason, "where": exc.where})
        count("ClarifyOutputRejected")
        raise
    logger.info("results written", extra={"records": result.records})
    count("RecordsExplained", result.records)
    return result.model_dump(mode="json")

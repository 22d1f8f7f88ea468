"""Lambda: prepare a run (validate and freeze the input, write the analysis config)."""

from __future__ import annotations

from explain_workflow import aws
from explain_workflow.contract import RunRequest, RunStatus
from explain_workflow.errors import InputValidationError
from explain_workflow.observability import count, entry_point, logger
from explain_workflow.prepare import prepare_run


@entry_point
def handler(event: dict, context) -> dict:
    # the execution's input is the run request, validated once here
    try:
        result = prepare_run(aws.storage(), RunRequest.from_event(event), aws.settings())
    except InputValidationError as exc:
        logger.warning("input rejected", extra={"reason": exc.reason, "where": exc.where})
        count("InputRejected")
        raise
    logger.append_keys(run_id=result.run_id)
    logger.info("prepared", extra={"status": result.status, "rows": result.rows})
    count("DuplicateRequest" if result.status == RunStatus.ALREADY_DONE else "RunPrepared")
    return result.model_dump(mode="json")

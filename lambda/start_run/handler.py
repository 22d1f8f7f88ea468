"""Lambda: an S3 upload or an "Explanation Requested" event -> one execution named by the run id."""

from __future__ import annotations

from explain_workflow import aws
from explain_workflow.contract import StartStatus
from explain_workflow.observability import count, entry_point, logger
from explain_workflow.start import failure_event, start_run


@entry_point
def handler(event: dict, context) -> dict:
    result = start_run(event, aws.caller(), aws.storage(), aws.executions(), aws.settings())
    answer = result.answer()
    logger.append_keys(run_id=result.run_id)
    logger.info("start", extra=answer)
    count(f"Run{result.status.title()}")
    if result.status == StartStatus.REJECTED:
        aws.events().put_events(Entries=[failure_event(result, event, aws.starter().event_bus_name)])
    return answer

"""Lambda: an S3 upload or an "Explanation Requested" event -> one execution named by the run id."""

from __future__ import annotations

import functools
import json
import os

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from explain_workflow import aws
from explain_workflow.start import Caller, failure_event, start_run

logger, tracer, metrics = Logger(), Tracer(), Metrics()


@functools.cache
def clients():
    config = aws.CLIENT_CONFIG
    return boto3.client("stepfunctions", config=config), boto3.client("events", config=config)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context) -> dict:
    caller = Caller(
        os.environ["OWN_ACCOUNT"],
        frozenset(json.loads(os.environ.get("ALLOWED_ACCOUNTS", "[]"))),
        os.environ.get("ALLOWED_ORG_ID", "").strip(),
    )
    sfn, events = clients()
    result = start_run(event, caller, aws.storage(), sfn, os.environ["STATE_MACHINE_ARN"], aws.settings())
    logger.append_keys(run_id=result["run_id"])
    logger.info("start", extra=result)
    metrics.add_metric(name=f"Run{result['status'].title()}", unit=MetricUnit.Count, value=1)
    if result["status"] == "REJECTED":
        events.put_events(Entries=[failure_event(result, event, os.environ["EVENT_BUS_NAME"])])
    return result

"""The Executions port: the boto3 adapter (against a local Step Functions API) and the in-memory stand-in keep the
same promises, and the starter's attempt rules hold over it."""

from __future__ import annotations

import json

import boto3
import pytest

from explain_workflow.executions import ExecutionExists, StepFunctionsExecutions
from explain_workflow.runs import RESULT_FILES, RunLayout, execution_name_for, write_manifest
from explain_workflow.start import Caller, start_run
from tests.support.data import TEXTS, csv_bytes
from tests.support.executions import MemoryExecutions

OWN = "123456789012"


@pytest.fixture(params=["step-functions", "memory"])
def executions(request):
    if request.param == "memory":
        return MemoryExecutions()
    url = request.getfixturevalue("moto_url")
    sfn = boto3.client(
        "stepfunctions", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    machine = sfn.create_state_machine(
        name=f"port{len(sfn.list_state_machines()['stateMachines'])}",
        definition=json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Pass", "End": True}}}),
        roleArn=f"arn:aws:iam::{OWN}:role/sfn",
    )["stateMachineArn"]
    return StepFunctionsExecutions(sfn, machine)


def test_a_name_starts_one_execution_ever(executions):
    assert executions.status("run-1") is None
    arn = executions.start("run-1", {"bucket": "input", "key": "incoming/a.csv", "attempt": 1})
    assert ":execution:" in arn
    assert arn.endswith(":run-1")
    assert executions.status("run-1") == "RUNNING"
    with pytest.raises(ExecutionExists, match="run-1"):
        executions.start("run-1", {})
    assert executions.status("run-2") is None


def test_the_adapter_names_executions_as_step_functions_does():
    adapter = StepFunctionsExecutions(None, "arn:aws:states:eu-west-1:111122223333:stateMachine:Workflow-ab")
    assert adapter.arn("r-a2") == "arn:aws:states:eu-west-1:111122223333:execution:Workflow-ab:r-a2"
    with pytest.raises(ValueError, match="not a state machine ARN"):
        StepFunctionsExecutions(None, "arn:aws:states:eu-west-1:111122223333:activity:x").arn("r")


@pytest.fixture
def started(storage, settings):
    """A run started once through the starter, over in-memory executions and the file-system storage."""
    storage.put("input", "incoming/a.csv", csv_bytes(TEXTS), "text/csv")
    executions = MemoryExecutions()
    event = {"source": "partner.app", "detail-type": "Explanation Requested", "account": OWN,
             "detail": {"bucket": "input", "key": "incoming/a.csv"}}  # fmt: skip

    def again():
        return start_run(event, Caller(OWN), storage, executions, settings)

    first = again()
    assert (first.status, first.attempt) == ("STARTED", 1)
    return first, executions, again


def finish(storage, settings, run_id: str, results=RESULT_FILES, manifest: bytes | None = None) -> None:
    """What a SUCCEEDED attempt leaves (or a part of it): its result files and then its manifest."""
    layout = RunLayout(settings.results_bucket, run_id)
    for name in results:
        storage.put(layout.bucket, layout.results_prefix + name, b"{}", "x")
    if manifest is None:
        write_manifest(storage, layout, "SUCCEEDED", attempt=1)
    else:
        storage.put(layout.bucket, layout.manifest_key, manifest, "x")


def test_a_succeeded_attempt_is_a_duplicate(started, storage, settings):
    first, executions, again = started
    executions.end(execution_name_for(first.run_id, 1), "SUCCEEDED")
    finish(storage, settings, first.run_id)
    answer = again()
    assert (answer.status, answer.reason) == ("DUPLICATE", "attempt 1 of this run succeeded")
    assert answer.answer() == {"status": "DUPLICATE", "run_id": first.run_id, "reason": answer.reason, "attempt": 1}


def test_a_succeeded_execution_that_left_a_failed_manifest_runs_again(started, storage, settings):
    """The manifest decides over the execution's status: a FAILED one means the run is not done."""
    first, executions, again = started
    executions.end(execution_name_for(first.run_id, 1), "SUCCEEDED")
    write_manifest(storage, RunLayout(settings.results_bucket, first.run_id), "FAILED", attempt=1, reason="x")
    answer = again()
    assert (answer.status, answer.attempt, answer.reason) == ("STARTED", 2, "attempt 1 left a FAILED manifest")
    assert executions.inputs[execution_name_for(first.run_id, 2)]["attempt"] == 2


@pytest.mark.parametrize(
    ("results", "manifest", "said"),
    [
        (RESULT_FILES[1:], None, "a SUCCEEDED manifest whose results are gone"),
        ((), b"", "no manifest"),
        (RESULT_FILES, b'{"status": "SUCC', "an unreadable manifest"),
        (RESULT_FILES, b'"SUCCEEDED"', "an unreadable manifest"),
    ],
)
def test_a_succeeded_execution_without_a_complete_run_runs_again(started, storage, settings, results, manifest, said):
    """Old main said DUPLICATE after any SUCCEEDED execution unless its manifest said FAILED: a run whose results
    were deleted could never be computed again, and a torn manifest crashed the starter."""
    first, executions, again = started
    executions.end(execution_name_for(first.run_id, 1), "SUCCEEDED")
    if manifest != b"":
        finish(storage, settings, first.run_id, results, manifest)
    answer = again()
    assert (answer.status, answer.attempt, answer.reason) == ("STARTED", 2, f"attempt 1 left {said}")
    assert answer.execution_arn.endswith(f":{first.run_id}-a2")


@pytest.mark.parametrize("ended", ["FAILED", "TIMED_OUT", "ABORTED"])
def test_each_bad_end_starts_the_next_attempt(started, ended):
    first, executions, again = started
    executions.end(execution_name_for(first.run_id, 1), ended)
    answer = again()
    assert (answer.status, answer.attempt, answer.reason) == ("STARTED", 2, f"attempt 1 ended {ended}")
    assert answer.execution_arn.endswith(f":{first.run_id}-a2")

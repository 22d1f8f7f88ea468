"""Every AWS request of the workflow checked against botocore's model of the service (issue 22).

Three kinds of request, three checks (tests/support/api_model.py):
- each service task of each synthesized state machine, as written: literal members fully, ``Member.$`` by its name,
  so a task on a path no execution test takes (FindPredictJob, FindBuiltinJob) is checked too;
- each task's resolved Parameters when an execution reaches it (tests/support/local_sfn.py; the runs of
  test_workflow_offline, test_workflow_services and test_workflow_builtin);
- each SDK call a Lambda handler makes (tests/support/aws_calls.py, every test): botocore's client validates names,
  types and required members itself; the recorder adds enums, maximum lengths and patterns.
Each test below also shows the wrong request failing: a misspelt member, a wrong type, an unknown enum value, a
pattern the service refuses.
"""

from __future__ import annotations

import copy

import boto3
import botocore.exceptions
import pytest

from explain_workflow import aws
from explain_workflow.contract import SETTINGS_ENV, STARTER_SETTINGS_ENV, StarterSettings, WorkflowSettings
from infra.config import load_stage
from tests.support import aws_calls
from tests.support.api_model import all_states, definition_problems, static_problems
from tests.support.cfn import STAGES
from tests.support.lambda_context import Context
from tests.support.local_sfn import definition_from_template
from tests.support.s3 import CREDENTIALS


def definition(synthesized, stage: str) -> dict:
    config = load_stage(stage)
    return definition_from_template(synthesized.templates[stage], config.region, config.account)


@pytest.mark.parametrize("stage", STAGES)
def test_every_service_task_of_each_stage_is_a_request_the_api_model_accepts(synthesized, stage):
    states = all_states(definition(synthesized, stage))
    services = [s["Resource"] for s in states.values() if s.get("Resource", "").startswith("arn:aws:states:::")]
    assert any("createProcessingJob" in r for r in services)
    assert any("putEvents" in r for r in services)
    assert definition_problems(definition(synthesized, stage)) == []


def _task(found: dict, resource: str) -> dict:
    (state,) = [s for s in all_states(found).values() if s.get("Resource", "").endswith(resource)]
    return state


def _refused(found: dict) -> str:
    return " | ".join(definition_problems(found))


def test_a_wrong_member_name_type_or_value_in_the_clarify_branch_is_refused(synthesized):
    base = definition(synthesized, "dev")
    cases = [
        # (task, change, what the model says)
        ("createProcessingJob.sync", lambda p: p.update({"ProcessingJobNam.$": p.pop("ProcessingJobName.$")}),
         'Unknown parameter in input: "ProcessingJobNam.$"'),
        ("createProcessingJob.sync", lambda p: p["ProcessingResources"]["ClusterConfig"].update(InstanceCount="1"),
         "Invalid type for parameter ProcessingResources.ClusterConfig.InstanceCount"),
        ("createProcessingJob.sync",
         lambda p: p["ProcessingInputs"][0]["S3Input"].update(S3DataDistributionType="Sharded"),
         "S3DataDistributionType is 'Sharded', not one of"),
        ("createProcessingJob.sync", lambda p: p["NetworkConfig"].update(EnableNetworkIsolation="false"),
         "Invalid type for parameter NetworkConfig.EnableNetworkIsolation"),
        ("createTransformJob.sync", lambda p: p.update(BatchStrategy="OneRecord"), "BatchStrategy is 'OneRecord'"),
        ("createTransformJob.sync", lambda p: p["TransformOutput"].update(AssembleWith="Lines"),
         "AssembleWith is 'Lines'"),
        ("describeTransformJob", lambda p: p.update({"JobName.$": p.pop("TransformJobName.$")}),
         'Unknown parameter in input: "JobName.$"'),
        ("describeProcessingJob", lambda p: p.update({"ProcessingJobName": "cx_" + "a" * 70}),
         "ProcessingJobName has 73 characters, more than 63"),
    ]  # fmt: skip
    for resource, change, message in cases:
        found = copy.deepcopy(base)
        change(_task(found, resource)["Parameters"])
        assert message in _refused(found), (resource, message)


def test_a_wrong_eventbridge_entry_is_refused(synthesized):
    base = definition(synthesized, "dev")
    for name, change, message in [
        ("PublishSuccess", lambda e: e.update(DetailTyp=e.pop("DetailType")),
         'Unknown parameter in Entries[0]: "DetailTyp"'),
        ("PublishFailure", lambda e: e.update(EventBusName="text explanations"),
         "EventBusName 'text explanations' does not match"),
        ("PublishFailure", lambda e: e.update(Resources="arn:aws:s3:::input"),
         "Invalid type for parameter Entries[0].Resources"),
    ]:  # fmt: skip
        found = copy.deepcopy(base)
        (entry,) = all_states(found)[name]["Parameters"]["Entries"]
        change(entry)
        assert message in _refused(found), (name, message)
    # the Detail object is sent as the JSON string the API takes: as written it passes, its members are JSONPaths
    (entry,) = all_states(base)["PublishSuccess"]["Parameters"]["Entries"]
    assert isinstance(entry["Detail"], dict)
    assert static_problems("events:putEvents", {"Entries": [entry]}) == []


# ---- the functions' own SDK calls ----


@pytest.fixture
def starter(moto_url, monkeypatch):
    """The starter handler with its settings, its clients on the local AWS API."""
    for key, value in (CREDENTIALS | {"AWS_ENDPOINT_URL": moto_url, "POWERTOOLS_TRACE_DISABLED": "true"}).items():
        monkeypatch.setenv(key, value)
    labels = ["A", "B"]
    identity = {"model_name": "m", "image": "repo@sha256:aa", "artifact": "s3://art/model.tar.gz", "labels": labels}
    settings = WorkflowSettings(results_bucket="results", labels=labels, model_name="m", model_identity=identity)
    own = "123456789012"
    starter_settings = StarterSettings(
        own_account=own,
        state_machine_arn=f"arn:aws:states:us-east-1:{own}:stateMachine:m",
        event_bus_name="text-explanations-test",
    )
    boto3.client("events", endpoint_url=moto_url, region_name="us-east-1").create_event_bus(
        Name=starter_settings.event_bus_name
    )
    monkeypatch.setenv(SETTINGS_ENV, settings.model_dump_json())
    monkeypatch.setenv(STARTER_SETTINGS_ENV, starter_settings.model_dump_json())
    clear = (aws.settings, aws.starter, aws.storage, aws.caller, aws.executions, aws.events)
    for made in clear:
        made.cache_clear()
    from start_run import handler

    yield handler
    for made in clear:
        made.cache_clear()


UNEXPECTED = {"id": "e-9", "source": "partner.app", "detail-type": "Something Else", "detail": {}}


def test_a_functions_call_is_checked_against_the_model_beyond_botocores_own_validation(starter, monkeypatch):
    """The starter's PutEvents for a rejected request, as the handler sends it, passes; with a bus name the model's
    maximum length refuses (which botocore's client sends unchecked) the recorder names the function, call and
    member."""
    assert starter.handler(UNEXPECTED, Context())["status"] == "REJECTED"
    assert aws_calls.RECORDER.refused == []
    assert ("starter", "events:PutEvents", "bus") in aws_calls.RECORDER.calls

    made = starter.failure_event
    monkeypatch.setattr(starter, "failure_event", lambda *a: {**made(*a), "TraceHeader": "x" * 501})
    assert starter.handler(UNEXPECTED, Context())["status"] == "REJECTED"
    refused, aws_calls.RECORDER.refused = aws_calls.RECORDER.refused, []  # seen here; the test passes on it
    (line,) = refused
    assert line == "starter: events PutEvents: Entries[0].TraceHeader has 501 characters, more than 500"


def test_a_misspelt_member_in_a_functions_call_fails_the_call(starter, monkeypatch):
    made = starter.failure_event

    def misspelt(*args):
        entry = made(*args)
        entry["DetailTyp"] = entry.pop("DetailType")
        return entry

    monkeypatch.setattr(starter, "failure_event", misspelt)
    with pytest.raises(
        botocore.exceptions.ParamValidationError, match=r'Unknown parameter in Entries\[0\]: "DetailTyp"'
    ):
        starter.handler(UNEXPECTED, Context())
    refused, aws_calls.RECORDER.refused = aws_calls.RECORDER.refused, []
    assert [line.split(": ", 2)[:2] for line in refused] == [["starter", "events PutEvents"]]
    assert 'Unknown parameter in Entries[0]: "DetailTyp"' in refused[0]


# ---- the stand-ins' answers ----


def _resolved(params: dict, values: dict) -> dict:
    """A task's Parameters with each ``Member.$`` replaced by ``values[Member]`` (what a run resolves it to)."""
    if isinstance(params, dict):
        return {
            (k[:-2] if k.endswith(".$") else k): (values[k[:-2]] if k.endswith(".$") else _resolved(v, values))
            for k, v in params.items()
        }
    return [_resolved(v, values) for v in params] if isinstance(params, list) else params


def test_the_stand_ins_answer_in_the_shape_of_the_services_responses(synthesized):
    """A .sync task's output is the job's Describe* response: what the Clarify and Batch Transform stand-ins answer
    has exactly the members and types of botocore's DescribeProcessingJob / DescribeTransformJob output; every run
    of the offline tier checks each answer the same way (checked_binding), and a wrong one is refused."""
    from tests.support.api_model import answer_problems
    from tests.support.batch_transform import describe as transform_answer
    from tests.support.clarify_job import describe as clarify_answer

    states = all_states(definition(synthesized, "dev"))
    values = {"ProcessingJobName": "cx-run-1", "TransformJobName": "cp-run-1", "S3Uri": "s3://results/runs/run/in/",
              "S3OutputPath": "s3://results/runs/run/out/", "Value": "run"}  # fmt: skip
    job = _resolved(states["Clarify"]["Parameters"], values)
    transform = _resolved(states["Predict"]["Parameters"], values)
    assert answer_problems("sagemaker:createProcessingJob", clarify_answer(job, "Completed")) == []
    assert answer_problems("aws-sdk:sagemaker:describeProcessingJob", clarify_answer(job, "Failed", "x")) == []
    assert answer_problems("sagemaker:createTransformJob", transform_answer(transform, "Completed")) == []
    wrong = {**clarify_answer(job, "Completed"), "ProcessingJobStatu": "Completed"}
    assert 'Unknown parameter in input: "ProcessingJobStatu"' in " ".join(
        answer_problems("sagemaker:createProcessingJob", wrong)
    )
    missing = {k: v for k, v in transform_answer(transform, "Completed").items() if k != "CreationTime"}
    assert answer_problems("sagemaker:createTransformJob", missing) == [
        'Missing required parameter in input: "CreationTime"'
    ]

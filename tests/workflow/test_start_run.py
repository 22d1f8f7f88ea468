"""The starter against a real local AWS API (moto server): S3, Step Functions, EventBridge, SQS."""

from __future__ import annotations

import json

import boto3
import pytest

from explain_workflow import aws
from explain_workflow.contract import (
    SETTINGS_ENV,
    STARTER_SETTINGS_ENV,
    Limits,
    RunRequest,
    StarterSettings,
    WorkflowSettings,
)
from explain_workflow.prepare import prepare_run
from explain_workflow.storage import CLIENT_CONFIG, S3Storage
from tests.support.data import TEXTS, csv_bytes
from tests.support.faulty_s3 import Fault, faulty_proxy
from tests.support.lambda_context import Context
from tests.support.s3 import CREDENTIALS, upload

OWN, FRIEND, STRANGER = "123456789012", "444455556666", "777788889999"
BUS = "text-explanations-test"
LABELS = ["NaturalPlace", "Film", "Animal"]
MODEL = {"model_name": "Model-1a2b", "image": "repo@sha256:aa", "artifact": "s3://art/model.tar.gz", "labels": LABELS}
SETTINGS = WorkflowSettings(
    results_bucket="results",
    labels=LABELS,
    model_name="Model-1a2b",
    model_identity=MODEL,
    limits=Limits(max_num_samples=2000),
)


def prepared_run_id(env, execution_arn: str) -> str:
    """The run id prepare itself computes from the execution's input: the run the execution will be."""
    request = json.loads(env["sfn"].describe_execution(executionArn=execution_arn)["input"])
    return prepare_run(aws.storage(), RunRequest.from_event(request), aws.settings()).run_id


@pytest.fixture
def local_aws(moto_url, monkeypatch):
    url = moto_url
    for key, value in (CREDENTIALS | {"AWS_ENDPOINT_URL": url, "AWS_ENDPOINT_URL_S3": url}).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    make = lambda service: boto3.client(service, endpoint_url=url, region_name="us-east-1")  # noqa: E731
    s3, sfn, events, sqs = make("s3"), make("stepfunctions"), make("events"), make("sqs")
    for bucket in ("input", "results"):
        s3.create_bucket(Bucket=bucket)
    machine = sfn.create_state_machine(
        name=f"m{len(sfn.list_state_machines()['stateMachines'])}",
        definition=json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Pass", "End": True}}}),
        roleArn=f"arn:aws:iam::{OWN}:role/sfn",
    )["stateMachineArn"]
    if BUS not in [b["Name"] for b in events.list_event_buses()["EventBuses"]]:
        events.create_event_bus(Name=BUS)
    queue = sqs.create_queue(QueueName="failures")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="failed", EventBusName=BUS, EventPattern=json.dumps({"detail-type": ["Explanation Failed"]}))
    events.put_targets(Rule="failed", EventBusName=BUS, Targets=[{"Id": "q", "Arn": queue_arn}])
    # the functions' environment as the stack sets it: one JSON document each
    starter = StarterSettings(own_account=OWN, allowed_accounts=[FRIEND], state_machine_arn=machine, event_bus_name=BUS)
    monkeypatch.setenv(SETTINGS_ENV, SETTINGS.model_dump_json())
    monkeypatch.setenv(STARTER_SETTINGS_ENV, starter.model_dump_json())
    clear_aws_caches()
    from start_run.handler import handler

    yield {"s3": s3, "sfn": sfn, "sqs": sqs, "queue": queue, "machine": machine, "handler": handler, "starter": starter}
    sqs.delete_queue(QueueUrl=queue)
    for bucket in ("input", "results"):
        for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=item["Key"])
        s3.delete_bucket(Bucket=bucket)
    clear_aws_caches()


def clear_aws_caches() -> None:
    """The handlers read their settings and make their clients once per container: a new test is a new one."""
    for made in (aws.settings, aws.starter, aws.storage, aws.caller, aws.executions, aws.events):
        made.cache_clear()


def s3_event(head: dict, key: str) -> dict:
    return {
        "id": "e-1",
        "source": "aws.s3",
        "detail-type": "Object Created",
        "account": OWN,
        "detail": {"bucket": {"name": "input"}, "object": {"key": key, "etag": head["etag"]}},
    }


def requested(account: str, detail: dict) -> dict:
    return {"id": "e-2", "source": "partner.app", "detail-type": "Explanation Requested", "account": account,
            "detail": detail}  # fmt: skip


def failures(env) -> list[dict]:
    messages = env["sqs"].receive_message(QueueUrl=env["queue"], MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"])["detail"] for m in messages]


def test_upload_starts_one_execution_named_by_the_run_id_and_a_duplicate_starts_none(local_aws):
    env = local_aws
    head = upload(env["s3"], "incoming/a.csv", csv_bytes(TEXTS))
    first = env["handler"](s3_event(head, "incoming/a.csv"), Context())
    assert first["status"] == "STARTED"
    assert first["attempt"] == 1
    assert first["run_id"] == prepared_run_id(env, first["execution_arn"])
    again = env["handler"](s3_event(head, "incoming/a.csv"), Context())
    assert again == {
        "status": "DUPLICATE",
        "run_id": first["run_id"],
        "reason": "attempt 1 of this run is running",
        "attempt": 1,
    }
    executions = env["sfn"].list_executions(stateMachineArn=env["machine"])["executions"]
    assert [e["name"] for e in executions] == [first["run_id"]]
    started = env["sfn"].describe_execution(executionArn=executions[0]["executionArn"])
    assert json.loads(started["input"])["key"] == "incoming/a.csv"
    assert json.loads(started["input"])["attempt"] == 1


def test_a_run_whose_attempt_ended_badly_starts_the_next_attempt(local_aws):
    """Old main answered DUPLICATE for ever once an execution of the run existed, whatever its end."""
    env = local_aws
    head = upload(env["s3"], "incoming/again.csv", csv_bytes(TEXTS))
    first = env["handler"](s3_event(head, "incoming/again.csv"), Context())
    env["sfn"].stop_execution(executionArn=first["execution_arn"])  # ABORTED
    second = env["handler"](s3_event(head, "incoming/again.csv"), Context())
    assert second["status"] == "STARTED"
    assert (second["run_id"], second["attempt"]) == (first["run_id"], 2)
    assert second["reason"] == "attempt 1 ended ABORTED"
    assert second["execution_arn"].endswith(f":{first['run_id']}-a2")
    execution = env["sfn"].describe_execution(executionArn=second["execution_arn"])
    assert json.loads(execution["input"])["attempt"] == 2
    # a2 runs: the answer names it, so a caller following the run follows a2, not the aborted a1
    duplicate = env["handler"](s3_event(head, "incoming/again.csv"), Context())
    assert (duplicate["status"], duplicate["attempt"]) == ("DUPLICATE", 2)
    env["sfn"].stop_execution(executionArn=second["execution_arn"])
    assert env["handler"](s3_event(head, "incoming/again.csv"), Context())["attempt"] == 3


def test_upper_case_csv_suffix_starts_a_run(local_aws):
    """Old main refused incoming/texts.CSV (a case-sensitive suffix test)."""
    env = local_aws
    head = upload(env["s3"], "incoming/texts.CSV", csv_bytes(TEXTS))
    assert env["handler"](s3_event(head, "incoming/texts.CSV"), Context())["status"] == "STARTED"


def test_with_an_organisation_the_bus_decides_who_may_ask(local_aws, monkeypatch):
    """docs/events.md: allowed_org_id admits the organisation at the bus; old main then refused its accounts."""
    env = local_aws
    upload(env["s3"], "incoming/org.csv", csv_bytes(TEXTS))
    detail = {"bucket": "input", "key": "incoming/org.csv"}
    assert env["handler"](requested(STRANGER, detail), Context())["status"] == "REJECTED"
    failures(env)
    with_org = env["starter"].model_copy(update={"allowed_org_id": "o-abc123"})
    monkeypatch.setenv(STARTER_SETTINGS_ENV, with_org.model_dump_json())
    aws.starter.cache_clear()  # a new container with the new setting
    aws.caller.cache_clear()
    assert env["handler"](requested(STRANGER, detail), Context())["status"] == "STARTED"


def test_a_new_model_is_a_new_run_for_the_same_file(local_aws, monkeypatch):
    """Old main kept the run id of the file alone: after a new model, the same upload was a DUPLICATE."""
    env = local_aws
    head = upload(env["s3"], "incoming/model.csv", csv_bytes(TEXTS))
    first = env["handler"](s3_event(head, "incoming/model.csv"), Context())
    new_model = MODEL | {"model_name": "Model-9z8y", "image": "repo@sha256:bb"}
    monkeypatch.setenv(SETTINGS_ENV, SETTINGS.model_copy(update={"model_identity": new_model}).model_dump_json())
    aws.settings.cache_clear()
    second = env["handler"](s3_event(head, "incoming/model.csv"), Context())
    assert second["status"] == "STARTED"
    assert second["run_id"] != first["run_id"]


def test_allowed_account_request_with_overrides_is_its_own_run(local_aws):
    env = local_aws
    etag = env["s3"].put_object(Bucket="input", Key="incoming/b.csv", Body=csv_bytes(TEXTS))["ETag"].strip('"')
    detail = {"bucket": "input", "key": "incoming/b.csv", "overrides": {"granularity": "sentence"}}
    result = env["handler"](requested(FRIEND, detail), Context())
    assert result["status"] == "STARTED"
    # a request naming no version means the object as it is now: the run is pinned to that content
    execution = env["sfn"].describe_execution(executionArn=result["execution_arn"])
    assert json.loads(execution["input"])["etag"] == etag
    assert result["run_id"] == prepared_run_id(env, result["execution_arn"])
    assert env["handler"](requested(FRIEND, detail), Context())["status"] == "DUPLICATE"
    env["s3"].put_object(Bucket="input", Key="incoming/b.csv", Body=csv_bytes(TEXTS[:2]))
    changed = env["handler"](requested(FRIEND, detail), Context())
    assert changed["status"] == "STARTED"
    assert changed["run_id"] != result["run_id"]


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (requested(STRANGER, {"bucket": "input", "key": "incoming/b.csv"}), f"account {STRANGER} may not"),
        (requested(FRIEND, {"bucket": "input", "key": "incoming/missing.csv"}), "cannot be read"),
        (requested(FRIEND, {"bucket": "input"}), "lacks ['key']"),
        (
            requested(FRIEND, {"bucket": "input", "key": "incoming/b.csv", "overrides": {"colour": 1}}),
            "unknown overrides",
        ),
        (
            requested(FRIEND, {"bucket": "input", "key": "incoming/b.csv", "overrides": {"num_samples": 10**6}}),
            "num_samples must be a whole number from 1 to 2000 (limits.max_num_samples)",
        ),
        ({"source": "x", "detail-type": "Something Else", "detail": {}}, "unexpected event"),
    ],
)
def test_requests_that_cannot_start_end_in_a_failure_event(local_aws, event, reason):
    env = local_aws
    env["s3"].put_object(Bucket="input", Key="incoming/b.csv", Body=csv_bytes(TEXTS))
    result = env["handler"](event, Context())
    assert result["status"] == "REJECTED"
    assert reason in result["reason"]
    (failure,) = failures(env)
    assert failure["status"] == "FAILED"
    assert reason in failure["reason"]
    assert env["sfn"].list_executions(stateMachineArn=env["machine"])["executions"] == []


def test_an_s3_event_key_that_arrives_url_encoded_finds_its_object(local_aws):
    env = local_aws
    head = upload(env["s3"], "incoming/my texts.csv", csv_bytes(TEXTS))
    result = env["handler"](s3_event(head, "incoming/my+texts.csv"), Context())
    assert result["status"] == "STARTED"
    execution = env["sfn"].describe_execution(executionArn=result["execution_arn"])
    assert json.loads(execution["input"])["key"] == "incoming/my texts.csv"


# ---- one check of what a request may name (prepare makes it too), every AWS refusal answered ----


@pytest.mark.parametrize(
    ("detail", "reason"),
    [
        ({"bucket": "../x", "key": "incoming/b.csv"}, "is not an S3 bucket name"),
        ({"bucket": "results", "key": "runs/r-1/input/dataset.csv"}, "is the stage's results bucket"),
        ({"bucket": "results", "key": "incoming/b.csv"}, "is the stage's results bucket"),
        ({"bucket": "input", "key": "elsewhere/b.csv"}, "is not an object under incoming/ or uploads/"),
        ({"bucket": "input", "key": "incoming/"}, "is not an object under"),
    ],
)
def test_the_starter_rejects_what_a_run_may_not_read_with_a_failure_event(local_aws, detail, reason):
    """Failed before the fix: "../x" escaped as botocore's ParamValidationError (no event); runs/ of the results
    bucket and keys outside incoming/ and uploads/ were accepted, though docs/events.md says they are not."""
    env = local_aws
    env["s3"].put_object(Bucket="input", Key="elsewhere/b.csv", Body=csv_bytes(TEXTS))
    env["s3"].put_object(Bucket="results", Key="runs/r-1/input/dataset.csv", Body=csv_bytes(TEXTS))
    result = env["handler"](requested(FRIEND, detail), Context())
    assert result["status"] == "REJECTED"
    assert reason in result["reason"]
    (failure,) = failures(env)
    assert reason in failure["reason"]
    assert env["sfn"].list_executions(stateMachineArn=env["machine"])["executions"] == []


def test_an_s3_refusal_other_than_403_or_404_is_a_rejection_with_an_event(local_aws, moto_url, monkeypatch):
    """Failed before the fix: a 400 from S3's HEAD escaped the starter as a ClientError, and no event said why."""
    env = local_aws
    env["s3"].put_object(Bucket="input", Key="incoming/refused.csv", Body=csv_bytes(TEXTS))
    with faulty_proxy(moto_url) as (proxy, plan):
        # botocore asks again once (its S3 region redirector retries a 400 HEAD): every HEAD of the key is refused
        plan.faults += [Fault("bad_request", "HEAD", lambda path: "refused.csv" in path)] * 4
        client = boto3.client("s3", endpoint_url=proxy, region_name="us-east-1", config=CLIENT_CONFIG)
        with monkeypatch.context() as patch:
            patch.setattr(aws, "storage", lambda: S3Storage(client))
            result = env["handler"](requested(FRIEND, {"bucket": "input", "key": "incoming/refused.csv"}), Context())
    assert plan.injected
    assert result["status"] == "REJECTED"
    assert "S3 answered 400" in result["reason"]
    (failure,) = failures(env)
    assert "S3 answered 400" in failure["reason"]

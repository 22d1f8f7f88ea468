"""The synthesized state machine executed on this machine: real handlers, real S3 API, fake SageMaker jobs.

moto's interpreter runs the definition CDK produced; prepare, postprocess and record_failure are the
real Lambda handlers talking to a moto S3 server on 127.0.0.1; the processing job and the transform job
are fakes that answer like DescribeProcessingJob / DescribeTransformJob and write what the jobs write
(Clarify-format output; one prediction line per row of predict/input/rows.jsonl), so postprocess really runs.
"""

from __future__ import annotations

import csv
import io
import json

import pytest

from explain_workflow import aws
from explain_workflow.contract import SETTINGS_ENV, WorkflowSettings
from explain_workflow.predictions import prediction_lines
from explain_workflow.runs import RunLayout
from explain_workflow.storage import read_bytes
from infra.config import load_stage
from infra.images import clarify_image_uri
from tests.support.api_model import ApiModelError, checked_binding
from tests.support.cfn import Resolver, resources
from tests.support.clarify_job import describe
from tests.support.clarify_output import known_run, model_probabilities, write_clarify_output
from tests.support.data import TEXTS, csv_bytes
from tests.support.lambda_context import Context
from tests.support.local_sfn import LocalSfn, TaskFailed, definition_from_template, quick, workflow_lambdas
from tests.support.s3 import handler_env, remove_buckets, s3_client, upload

STAGE = "dev"


@pytest.fixture(scope="module")
def workflow(synthesized):
    template = synthesized.templates[STAGE]
    config = load_stage(STAGE)
    functions = resources(template, "AWS::Lambda::Function")
    by_handler = {f["Properties"].get("Handler"): logical_id for logical_id, f in functions.items()}
    env = functions[by_handler["prepare.handler.handler"]]["Properties"]["Environment"]["Variables"]
    env = Resolver(template, config.account, config.region)(env)  # as deployed, names by logical id
    return {
        "definition": quick(definition_from_template(template, config.region, config.account)),
        "config": config,
        "ids": by_handler,
        "env": env,
        "settings": WorkflowSettings.model_validate_json(env[SETTINGS_ENV]),
    }


@pytest.fixture(scope="module")
def two_instance_definition(tmp_path_factory):
    """The definition of the same stage with two Clarify instances (the cluster is a literal of the definition)."""
    from app import new_app
    from infra.stack import add_stage_stacks

    config = load_stage(STAGE)
    config = config.model_copy(update={"processing": config.processing.model_copy(update={"instance_count": 2})})
    outdir = tmp_path_factory.mktemp("two-instances")
    stack = add_stage_stacks(new_app(str(outdir)), config)
    template = json.loads(
        (outdir / stack.node.scope.synth().get_stack_by_name(stack.stack_name).template_file).read_text()
    )
    return quick(definition_from_template(template, config.region, config.account))


@pytest.fixture
def run(workflow, moto_url, monkeypatch):
    """A LocalSfn bound to the real handlers, with a fresh pair of buckets."""
    # the stage's settings as synthesized, with this test's results bucket
    settings = workflow["settings"].model_copy(update={"results_bucket": "results"})
    handler_env(monkeypatch, moto_url, workflow["env"] | {SETTINGS_ENV: settings.model_dump_json()})
    client = s3_client(moto_url)
    for bucket in ("input", "results"):
        client.create_bucket(Bucket=bucket)

    from prepare.handler import handler as prepare

    state = {"events": [], "clarify": None, "transform": None, "describe": None, "prepare_failures": 0}
    labels = workflow["settings"].labels

    def fake_clarify(params: dict) -> dict:
        """Completes like a Clarify job: writes Clarify's files under the output URI, answers DescribeProcessingJob."""
        if state["clarify"] is not None:
            return state["clarify"](params)
        write_clarify_files(params, labels)
        return describe(params, "Completed")

    def fake_transform(params: dict) -> dict:
        if state["transform"] is not None:
            return state["transform"](params)
        return transform(params, labels)

    def describe_job(params: dict) -> dict:
        return state["describe"](params)

    def put_events(params: dict) -> dict:
        state["events"].extend(params["Entries"])
        return {"Entries": [{"EventId": str(len(state["events"]))}], "FailedEntryCount": 0}

    def flaky_prepare(event):
        if state["prepare_failures"]:
            state["prepare_failures"] -= 1
            raise type("Lambda.TooManyRequestsException", (Exception,), {})("Rate exceeded")
        return prepare(event, Context())

    ids = workflow["ids"]
    answers: list[str] = []  # the fakes' answers the API model refuses
    sfn = LocalSfn(
        lambdas=workflow_lambdas(ids, prepare=flaky_prepare),
        services={
            key: checked_binding(key, binding, answers)
            for key, binding in {
                "sagemaker:createProcessingJob": fake_clarify,
                "sagemaker:createTransformJob": fake_transform,
                "aws-sdk:sagemaker:describeProcessingJob": describe_job,
                "events:putEvents": put_events,
            }.items()
        },
    )

    def execute(request: dict, name: str = "run", definition: dict | None = None):
        result = sfn.execute(definition or workflow["definition"], request, name=name)
        if answers:
            raise ApiModelError("; ".join(answers))
        return result

    yield execute, client, state
    remove_buckets(client, ("input", "results"))
    aws.settings.cache_clear()
    aws.storage.cache_clear()


def run_id_of(params: dict) -> str:
    return params["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"].split("/")[-3]


def frozen_texts(run_id: str) -> list[str]:
    layout = RunLayout("results", run_id)
    rows = list(csv.reader(io.StringIO(read_bytes(aws.storage(), "results", layout.dataset_key).decode())))
    return [r[1] for r in rows]


def write_clarify_files(params: dict, labels: list[str], texts: list[str] | None = None, split: int | None = None):
    run_id = run_id_of(params)
    run = known_run(texts or frozen_texts(run_id), labels)
    write_clarify_output(aws.storage(), RunLayout("results", run_id), run, split=split, predictions=False)


def transform(params: dict, labels: list[str]) -> dict:
    """What the Batch Transform job does with the contract's settings: one output line per input line, the input's
    row_id joined with the model's answer (here fixed per row by the run, as the Clarify fake's attributions are)."""
    source = params["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
    bucket, prefix = source.removeprefix("s3://").split("/", 1)
    rows = [json.loads(line) for line in read_bytes(aws.storage(), bucket, prefix + "rows.jsonl").decode().splitlines()]
    probabilities = model_probabilities(known_run([r["text"] for r in rows], labels))
    output = params["TransformOutput"]["S3OutputPath"]
    out_bucket, out_prefix = output.removeprefix("s3://").split("/", 1)
    lines = b"".join(prediction_lines([(r["row_id"], p) for r, p in zip(rows, probabilities, strict=True)], labels))
    aws.storage().put(out_bucket, out_prefix + "rows.jsonl.out", lines, "application/jsonlines")
    return {
        "TransformJobName": params["TransformJobName"],
        "TransformJobArn": f"arn:aws:sagemaker:eu-west-1:111111111111:transform-job/{params['TransformJobName']}",
        "TransformJobStatus": "Completed",
        "ModelName": params["ModelName"],
        "TransformInput": params["TransformInput"],
        "TransformOutput": params["TransformOutput"],
        "TransformResources": params["TransformResources"],
        "CreationTime": "2026-11-24T00:00:00Z",
    }


def detail_of(event: dict) -> dict:
    detail = event["Detail"]
    return json.loads(detail) if isinstance(detail, str) else detail


def manifest(client, run_id: str) -> dict:
    return json.loads(client.get_object(Bucket="results", Key=f"runs/{run_id}/manifest.json")["Body"].read())


def test_success_path_and_the_parameters_each_task_received(run, workflow):
    execute, client, state = run
    result = execute(upload(client, "incoming/good.csv", csv_bytes(TEXTS)))
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert main_path(result) == ["Prepare", "AlreadyDone?", "Explain", "Postprocess", "PublishSuccess", "Done"]
    assert {"Clarify", "ClarifyDone", "Predict", "PredictDone"} <= set(result.path)  # both branches ran
    prepared = result.output["prepare"]
    (job,) = [params for name, params in result.calls if name == "sagemaker:createProcessingJob"]
    config = workflow["config"]
    assert job["ProcessingJobName"] == prepared["job_name"]
    assert job["AppSpecification"]["ImageUri"] == clarify_image_uri(config.region)
    assert job["RoleArn"].split("/")[-1].startswith("WorkflowClarifyJobRole")
    assert job["ProcessingInputs"][0]["S3Input"]["S3Uri"] == prepared["dataset_s3_uri"]
    assert job["ProcessingInputs"][1]["S3Input"]["S3Uri"] == prepared["config_s3_uri"]
    assert job["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] == prepared["output_s3_uri"]
    assert job["ProcessingResources"]["ClusterConfig"]["InstanceType"] == config.processing.instance_type
    assert job["StoppingCondition"]["MaxRuntimeInSeconds"] == config.processing.max_runtime_seconds
    assert result.output["result"]["status"] == "SUCCEEDED"
    assert manifest(client, prepared["run_id"])["status"] == "SUCCEEDED"
    (event,) = state["events"]
    assert event["DetailType"] == "Explanation Succeeded"
    assert detail_of(event)["run_id"] == prepared["run_id"]
    assert detail_of(event)["attempt"] == 1
    # the transform job ran beside Clarify over the frozen rows, with our model, as the contract says
    (predict,) = [params for name, params in result.calls if name == "sagemaker:createTransformJob"]
    assert predict["TransformJobName"] == prepared["predict"]["job_name"]
    assert predict["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == prepared["predict"]["input_s3_uri"]
    assert predict["TransformOutput"]["S3OutputPath"] == prepared["predict"]["output_s3_uri"]
    assert predict["ModelName"].startswith("HostingModel")
    records = client.get_object(Bucket="results", Key=f"runs/{prepared['run_id']}/results/records.jsonl")
    lines = [json.loads(line) for line in records["Body"].read().decode().splitlines()]
    expected = model_probabilities(known_run(TEXTS, workflow["settings"].labels))
    assert [line["probabilities"] for line in lines] == [
        dict(zip(workflow["settings"].labels, p, strict=True)) for p in expected
    ] or [line["probabilities"] for line in lines] == expected  # the model's own answers, joined by row_id


def test_the_handlers_calls_are_recorded_for_the_authorization_inventory(run):
    """The recorder (tests/support/aws_calls.py) sees what the real handlers call, attributed to each function."""
    from tests.support.aws_calls import RECORDER, listed

    execute, client, _ = run
    result = execute(upload(client, "incoming/recorded.csv", csv_bytes(TEXTS)))
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    run_id = result.output["prepare"]["run_id"]
    recorded = set(RECORDER.calls)
    assert ("prepare", "s3:GetObject", "input:incoming/recorded.csv") in recorded, sorted(recorded)
    assert ("postprocess", "s3:PutObject", f"results:runs/{run_id}/manifest.json") in recorded
    assert {fn for fn, _, _ in recorded} >= {"prepare", "postprocess"}
    assert all(listed(*call) for call in recorded)
    assert not listed("postprocess", "s3:DeleteObject", f"results:runs/{run_id}/results/records.jsonl")
    assert not listed("starter", "iam:PassRole", "*")


def main_path(result) -> list[str]:
    """The states entered outside the Parallel's branches, in order."""
    inner = {"Clarify", "ClarifyDone", "Predict", "PredictDone", "FindClarifyJob", "ClarifyJobStatus?",
             "WaitClarifyJob", "FindPredictJob", "PredictJobStatus?", "WaitPredictJob"}  # fmt: skip
    return [name for name in result.path if name not in inner]


def test_duplicate_request_starts_no_second_job(run):
    execute, client, _ = run
    request = upload(client, "incoming/twice.csv", csv_bytes(TEXTS))
    assert execute(request, name="first").status == "SUCCEEDED"
    again = execute(request, name="second")
    assert again.status == "SUCCEEDED"
    assert again.path == ["Prepare", "AlreadyDone?", "AlreadyDone"]
    assert not [c for c in again.calls if c[0] in ("sagemaker:createProcessingJob", "sagemaker:createTransformJob")]


def test_bad_input_fails_visibly_with_a_failed_manifest_and_event(run):
    execute, client, state = run
    result = execute(upload(client, "incoming/bad.csv", b"label,body\nx,y\n"))
    assert result.status == "FAILED"
    assert result.error == "ExplanationFailed"
    assert result.path == ["Prepare", "RecordFailure", "PublishFailure", "Failed"]
    failure = result.output if result.output else None
    assert failure is None  # a failed execution has no output; the manifest and the event say why
    (event,) = state["events"]
    detail = detail_of(event)
    assert event["DetailType"] == "Explanation Failed"
    assert "no column named 'text'" in detail["reason"]
    assert manifest(client, detail["run_id"])["reason"].startswith("no column named 'text'")


def test_clarify_job_failure_is_recorded(run):
    execute, client, state = run
    state["clarify"] = lambda params: (_ for _ in ()).throw(
        TaskFailed("States.TaskFailed", json.dumps(describe(params, "Failed", "ClientError: endpoint failed")))
    )
    result = execute(upload(client, "incoming/clarify-fails.csv", csv_bytes(TEXTS)))
    assert result.status == "FAILED"
    assert main_path(result) == ["Prepare", "AlreadyDone?", "Explain", "RecordFailure", "PublishFailure", "Failed"], (
        result.error,
        result.cause,
        result.path,
    )
    detail = detail_of(state["events"][0])
    assert detail["reason"] == "States.TaskFailed: ClientError: endpoint failed"
    assert manifest(client, detail["run_id"])["status"] == "FAILED"


def test_truncated_clarify_output_fails_in_postprocess(run, workflow):
    execute, client, state = run

    def truncated(params):
        write_clarify_files(params, workflow["settings"].labels, texts=TEXTS[:2])
        return describe(params, "Completed")

    state["clarify"] = truncated
    result = execute(upload(client, "incoming/truncated.csv", csv_bytes(TEXTS)))
    assert result.status == "FAILED"
    assert result.path[-4:] == ["Postprocess", "RecordFailure", "PublishFailure", "Failed"]
    detail = detail_of(state["events"][0])
    written = manifest(client, detail["run_id"])
    assert written["stage"] == "postprocess"  # record_failure kept postprocess's own, more precise manifest
    assert "ends after 2 lines" in written["reason"]
    assert not client.list_objects_v2(Bucket="results", Prefix=f"runs/{detail['run_id']}/results/").get("KeyCount")


def test_throttled_prepare_is_retried_then_succeeds(run):
    execute, client, state = run
    state["prepare_failures"] = 1
    result = execute(upload(client, "incoming/retry.csv", csv_bytes(TEXTS)))
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    prepare_calls = [c for c in result.calls if c[0].startswith("WorkflowPrepareFn")]
    assert len(prepare_calls) == 2


def test_request_for_a_missing_object_fails_visibly(run):
    execute, _, state = run
    result = execute({"bucket": "input", "key": "incoming/never-uploaded.csv"})
    assert result.status == "FAILED"
    assert result.path == ["Prepare", "RecordFailure", "PublishFailure", "Failed"]
    assert "cannot be read" in detail_of(state["events"][0])["reason"]


def test_multi_instance_run_merges_clarify_part_files(run, workflow, two_instance_definition):
    """Scale-out (docs/events.md): more Clarify instances, whose local values come back as part files."""
    execute, client, state = run

    def two_instances(params):
        assert params["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 2
        write_clarify_files(params, workflow["settings"].labels, split=2)
        return describe(params, "Completed")

    state["clarify"] = two_instances
    result = execute(upload(client, "incoming/large.csv", csv_bytes(TEXTS)), definition=two_instance_definition)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    run_id = result.output["prepare"]["run_id"]
    parts = client.list_objects_v2(Bucket="results", Prefix=f"runs/{run_id}/clarify/explanations_shap/")["Contents"]
    assert len(parts) == 2
    records = client.get_object(Bucket="results", Key=f"runs/{run_id}/results/records.jsonl")["Body"].read()
    assert [json.loads(line)["text"] for line in records.decode().splitlines()] == TEXTS


def test_a_create_call_that_finds_its_job_existing_follows_that_job(run, workflow):
    """SageMaker accepted the first CreateProcessingJob but its answer was lost (throttled): the retry finds the name
    taken ("must be unique"). The run follows the existing job to its end instead of failing on the name."""
    execute, client, state = run
    jobs: dict[str, list[str]] = {}  # job name -> the statuses DescribeProcessingJob answers, in turn
    labels = workflow["settings"].labels

    def create(params):
        name = params["ProcessingJobName"]
        if name in jobs:
            raise TaskFailed(
                "SageMaker.AmazonSageMakerException",
                f"Job name must be unique within an AWS account and region, and a job with this name already exists "
                f"(arn:aws:sagemaker:eu-west-1:111111111111:processing-job/{name})",
            )
        jobs[name] = ["InProgress", "Completed"]
        write_clarify_files(params, labels)  # the job runs (and finishes) although its creation's answer was lost
        state["created"] = params
        raise TaskFailed("ThrottlingException", "Rate exceeded")

    def describe_existing(params):
        name = params["ProcessingJobName"]
        if name not in jobs:
            raise TaskFailed("SageMaker.ResourceNotFoundException", f"Could not find job {name}")
        status = jobs[name].pop(0) if len(jobs[name]) > 1 else jobs[name][0]
        return describe(state["created"], status)

    state["clarify"], state["describe"] = create, describe_existing
    result = execute(upload(client, "incoming/lost-answer.csv", csv_bytes(TEXTS)))
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    creates = [c for c in result.calls if c[0] == "sagemaker:createProcessingJob"]
    assert len(creates) == 4  # the first call and three retries: every retry finds the name taken
    assert [c[1]["ProcessingJobName"] for c in result.calls if c[0] == "aws-sdk:sagemaker:describeProcessingJob"] == [
        result.output["prepare"]["job_name"]
    ] * 2  # followed: InProgress, then Completed
    assert "WaitClarifyJob" in result.path
    assert manifest(client, result.output["prepare"]["run_id"])["status"] == "SUCCEEDED"


def test_a_create_call_that_fails_before_any_job_exists_fails_the_run_with_its_own_error(run):
    execute, client, state = run

    def create(params):
        raise TaskFailed("SageMaker.AmazonSageMakerException", "ResourceLimitExceeded: the account's instance quota")

    def describe_missing(params):
        raise TaskFailed("SageMaker.ResourceNotFoundException", f"Could not find job {params['ProcessingJobName']}")

    state["clarify"], state["describe"] = create, describe_missing
    result = execute(upload(client, "incoming/quota.csv", csv_bytes(TEXTS)))
    assert result.status == "FAILED"
    assert "ClarifyNotCreated" in result.path
    detail = detail_of(state["events"][0])
    assert detail["reason"].startswith("SageMaker.AmazonSageMakerException: ResourceLimitExceeded")


def test_a_failed_run_requested_again_runs_as_attempt_2_and_succeeds(run, workflow):
    """The starter starts attempt n+1 (execution <run_id>-a2, input attempt 2) for a run whose manifest says FAILED."""
    execute, client, state = run
    request = upload(client, "incoming/second-try.csv", csv_bytes(TEXTS))
    state["clarify"] = lambda params: (_ for _ in ()).throw(
        TaskFailed("States.TaskFailed", json.dumps(describe(params, "Failed", "ClientError: endpoint failed")))
    )
    first = execute(request, name="first-try")
    assert first.status == "FAILED"
    run_id = detail_of(state["events"][0])["run_id"]
    assert manifest(client, run_id)["status"] == "FAILED"

    state["clarify"], state["events"] = None, []
    second = execute({**request, "attempt": 2}, name=f"{run_id}-a2")
    assert second.status == "SUCCEEDED", (second.error, second.cause)
    prepared = second.output["prepare"]
    assert prepared["run_id"] == run_id
    assert prepared["attempt"] == 2
    (job,) = [c[1] for c in second.calls if c[0] == "sagemaker:createProcessingJob"]
    (predict,) = [c[1] for c in second.calls if c[0] == "sagemaker:createTransformJob"]
    assert job["ProcessingJobName"].endswith("-2")
    assert predict["TransformJobName"].endswith("-2")
    assert manifest(client, run_id)["status"] == "SUCCEEDED"
    assert detail_of(state["events"][0])["attempt"] == 2


def test_a_request_for_a_million_samples_is_refused_before_any_job(run, workflow):
    """The stage's limits.max_num_samples (synthesized into prepare's settings) bounds what any caller may ask for."""
    execute, client, state = run
    request = {**upload(client, "incoming/greedy.csv", csv_bytes(TEXTS)), "overrides": {"num_samples": 1_000_000}}
    result = execute(request)
    assert result.status == "FAILED"
    assert not [c for c in result.calls if c[0].startswith("sagemaker:")]
    assert "num_samples" in detail_of(state["events"][0])["reason"]
    assert workflow["settings"].limits.max_num_samples == workflow["config"].limits.max_num_samples

"""A builtin stage (issue 21): its synthesized state machine executed on this machine, end to end.

moto's interpreter runs the definition CDK produced for the dev stage with ``explainer.engine`` "builtin" (N = 1 and
N = 2 instances, one synth); prepare, postprocess and record_failure are the real Lambda handlers on a moto S3 server
on 127.0.0.1. The createProcessingJob binding is a stand-in for SageMaker Processing written from its documentation
(CreateProcessingJob, ProcessingS3Input, ProcessingS3Output, "How Amazon SageMaker Processing Runs Your Processing
Container Image"): per instance it downloads each input under its LocalPath (ShardedByS3Key: that instance's share of
the objects; FullyReplicated: all of them), writes /opt/ml/config/resourceconfig.json, runs the image's entry point
(``python -m textexplain.job``, what ``explain-job`` execs) in a subprocess with the job's Environment, uploads each
output's LocalPath to its S3Uri, and answers like DescribeProcessingJob (Failed, with a FailureReason, when an
instance exits non-zero). The model is a real fastText model trained in the session, uploaded where the stage's
artifact is.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from explain_workflow import aws
from explain_workflow.contract import SETTINGS_ENV, WorkflowSettings
from infra.config import ROOT, StageConfig, load_stage
from infra.images import clarify_image_uri
from tests.support.api_model import ApiModelError, all_states, checked_binding, definition_problems
from tests.support.cfn import Resolver, resources
from tests.support.clarify_job import describe
from tests.support.data import csv_bytes
from tests.support.local_sfn import LocalSfn, TaskFailed, definition_from_template, quick, workflow_lambdas
from tests.support.s3 import CREDENTIALS, remove_buckets, s3_client, upload

STAGE = "dev"
SHARDED = "dev-sharded"  # the same stage with two instances, synthesized beside it in one app
ARTIFACT_BUCKET, ARTIFACT_KEY = "dev-models-111111111111", "text-classifier/model.tar.gz"


def builtin(config: StageConfig, stage: str, instances: int) -> StageConfig:
    data = config.model_dump()
    data.update(stage=stage, explainer={"engine": "builtin"})
    data["processing"] = {**data["processing"], "instance_count": instances}
    return StageConfig.model_validate(data)


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    """One synth: the dev stage as builtin with one instance, and with two; cdk-nag over both."""
    import aws_cdk as cdk
    from cdk_nag import AwsSolutionsChecks, NIST80053R5Checks

    from app import new_app
    from infra.stack import add_stage_stacks

    outdir = tmp_path_factory.mktemp("builtin")
    app = new_app(str(outdir))
    configs = {1: builtin(load_stage(STAGE), STAGE, 1), 2: builtin(load_stage(STAGE), SHARDED, 2)}
    stacks = {n: add_stage_stacks(app, config) for n, config in configs.items()}
    cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    cdk.Aspects.of(app).add(NIST80053R5Checks(verbose=True))
    assembly = app.synth()
    templates = {
        n: json.loads((outdir / assembly.get_stack_by_name(s.stack_name).template_file).read_text())
        for n, s in stacks.items()
    }
    return {"configs": configs, "stacks": stacks, "templates": templates}


def settings_of(template: dict, config: StageConfig) -> tuple[dict, dict]:
    functions = resources(template, "AWS::Lambda::Function")
    by_handler = {f["Properties"].get("Handler"): logical_id for logical_id, f in functions.items()}
    env = functions[by_handler["prepare.handler.handler"]]["Properties"]["Environment"]["Variables"]
    return by_handler, Resolver(template, config.account, config.region)(env)


# ---- SageMaker Processing, as its documentation describes it ----


def split_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


class Processing:
    """CreateProcessingJob (.sync) on this machine: one directory per instance stands for its volume."""

    def __init__(self, client, workdir: Path):
        self.client, self.workdir = client, workdir
        self.kill_host: int | None = None  # index of an instance whose container dies (SIGKILL, as an OOM kill)
        self.jobs: list[dict] = []

    def local(self, host_root: Path, container_path: str) -> Path:
        return host_root / container_path.lstrip("/")

    def objects(self, uri: str) -> list[str]:
        bucket, prefix = split_uri(uri)
        keys = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(o["Key"] for o in page.get("Contents", []))
        return sorted(keys)

    def download_inputs(self, params: dict, host_root: Path, index: int, count: int) -> dict[str, list[str]]:
        got = {}
        for spec in params["ProcessingInputs"]:
            s3_input = spec["S3Input"]
            assert s3_input["S3DataType"] == "S3Prefix"
            assert s3_input["S3InputMode"] == "File"
            bucket, prefix = split_uri(s3_input["S3Uri"])
            keys = self.objects(s3_input["S3Uri"])
            if s3_input["S3DataDistributionType"] == "ShardedByS3Key":  # each instance ~1/N of the objects
                keys = keys[index::count]
            target = self.local(host_root, s3_input["LocalPath"])
            target.mkdir(parents=True, exist_ok=True)
            for key in keys:
                relative = key[len(prefix) :].lstrip("/") or key.rsplit("/", 1)[-1]
                path = target / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(self.client.get_object(Bucket=bucket, Key=key)["Body"].read())
            got[spec["InputName"]] = [key.rsplit("/", 1)[-1] for key in keys]
        return got

    def upload_outputs(self, params: dict, host_root: Path) -> None:
        for output in params["ProcessingOutputConfig"]["Outputs"]:
            s3_output = output["S3Output"]
            bucket, prefix = split_uri(s3_output["S3Uri"])
            local = self.local(host_root, s3_output["LocalPath"])
            for path in sorted(p for p in local.rglob("*") if p.is_file()):
                key = prefix.rstrip("/") + "/" + path.relative_to(local).as_posix()
                self.client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())

    def __call__(self, params: dict) -> dict:
        assert params["AppSpecification"]["ContainerEntrypoint"] == ["explain-job"]
        assert params["NetworkConfig"]["EnableNetworkIsolation"] is True
        count = params["ProcessingResources"]["ClusterConfig"]["InstanceCount"]
        hosts = [f"algo-{i + 1}" for i in range(count)]
        job = {"params": params, "inputs": [], "exit_codes": []}
        self.jobs.append(job)
        running = []
        for index, host in enumerate(hosts):
            host_root = self.workdir / params["ProcessingJobName"] / host
            job["inputs"].append(self.download_inputs(params, host_root, index, count))
            config = self.local(host_root, "/opt/ml/config/resourceconfig.json")
            config.parent.mkdir(parents=True, exist_ok=True)
            config.write_text(json.dumps({"current_host": host, "hosts": hosts}))
            env = {
                "PATH": os.environ["PATH"],
                "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("", "lambda", "container")),
                **params.get("Environment", {}),
            }
            process = subprocess.Popen(
                [sys.executable, "-m", "textexplain.job", "--root", str(self.local(host_root, "/opt/ml/processing")),
                 "--resource-config", str(config), "--workers", "1",
                 "--message-file", str(self.local(host_root, "/opt/ml/output/message"))],
                env=env, cwd=host_root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            if index == self.kill_host:
                process.send_signal(signal.SIGKILL)
            running.append((host_root, process))
        failed = []
        for host_root, process in running:
            _, stderr = process.communicate(timeout=300)
            job["exit_codes"].append(process.returncode)
            if process.returncode == 0:
                self.upload_outputs(params, host_root)  # an instance that finished: its outputs (worst case)
            else:
                message = self.local(host_root, "/opt/ml/output/message")
                failed.append((process.returncode, message.read_text() if message.exists() else stderr[-1024:]))
        if failed:
            code, message = failed[0]
            reason = f"AlgorithmError: See job logs for more information (exit code {code})"
            raise TaskFailed("States.TaskFailed", json.dumps(describe(params, "Failed", reason, message)))
        return describe(params, "Completed")


@pytest.fixture
def run(stages, moto_url, monkeypatch, trained_model, tmp_path):
    """Execute a builtin stage's definition: (execute(request, instances, name), client, state)."""
    client = s3_client(moto_url)
    for bucket in ("input", "results", ARTIFACT_BUCKET):
        client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=ARTIFACT_BUCKET, Key=ARTIFACT_KEY, Body=trained_model.tarball.read_bytes())
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_url)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)

    processing = Processing(client, tmp_path)
    state = {"events": [], "processing": processing}

    def put_events(params: dict) -> dict:
        state["events"].extend(params["Entries"])
        return {"Entries": [{"EventId": str(len(state["events"]))}], "FailedEntryCount": 0}

    def execute(request: dict, instances: int, name: str = "run", edit=None):
        template, config = stages["templates"][instances], stages["configs"][instances]
        ids, env = settings_of(template, config)
        settings = WorkflowSettings.model_validate_json(env[SETTINGS_ENV]).model_copy(
            update={"results_bucket": "results"}
        )
        assert settings.engine == "builtin"
        assert settings.processing.instance_count == instances
        for key, value in (env | {SETTINGS_ENV: settings.model_dump_json()}).items():
            monkeypatch.setenv(key, value)
        aws.settings.cache_clear()
        aws.storage.cache_clear()
        answers: list[str] = []  # the stand-ins' answers the API model refuses
        sfn = LocalSfn(
            lambdas=workflow_lambdas(ids),
            services={
                key: checked_binding(key, binding, answers)
                for key, binding in {
                    "sagemaker:createProcessingJob": processing,
                    "events:putEvents": put_events,
                }.items()
            },
        )
        definition = quick(definition_from_template(template, config.region, config.account))
        if edit is not None:
            edit(definition)
        result = sfn.execute(definition, request, name=name, timeout=600)
        if answers:
            raise ApiModelError("; ".join(answers))
        return result

    yield execute, client, state
    remove_buckets(client, ("input", "results", ARTIFACT_BUCKET))
    aws.settings.cache_clear()
    aws.storage.cache_clear()


def texts_of(corpus, n: int) -> list[str]:
    return [example.text for example in corpus[:n]]


def keys_under(client, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket="results", Prefix=prefix).get("Contents", []))


def records_of(client, run_id: str) -> list[dict]:
    body = client.get_object(Bucket="results", Key=f"runs/{run_id}/results/records.jsonl")["Body"].read()
    return [json.loads(line) for line in body.decode().splitlines()]


def manifest(client, run_id: str) -> dict:
    return json.loads(client.get_object(Bucket="results", Key=f"runs/{run_id}/manifest.json")["Body"].read())


def detail_of(event: dict) -> dict:
    return json.loads(event["Detail"]) if isinstance(event["Detail"], str) else event["Detail"]


def model_probabilities(trained_model, texts: list[str]) -> np.ndarray:
    from fasttext_server.model import Classifier

    return Classifier.load(trained_model.model_dir, trained_model.labels).predict(texts)


REQUEST_OPTIONS = {"num_samples": 48, "seed": 11}  # a small budget: the job really explains every row


@pytest.mark.parametrize("instances", [1, 2])
def test_a_builtin_run_succeeds_with_every_rows_record_and_the_models_own_prediction(
    run, stages, corpus, trained_model, instances
):
    execute, client, state = run
    texts = texts_of(corpus, 5)
    request = {**upload(client, f"incoming/builtin-{instances}.csv", csv_bytes(texts)), "overrides": REQUEST_OPTIONS}
    result = execute(request, instances)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert [n for n in result.path if n in ("Prepare", "Builtin", "Postprocess", "PublishSuccess", "Done")] == [
        "Prepare", "Builtin", "Postprocess", "PublishSuccess", "Done"
    ]  # fmt: skip
    assert not [n for n in result.path if n.startswith(("Predict", "Clarify"))]  # no Batch Transform, no Clarify
    prepared = result.output["prepare"]
    run_id = prepared["run_id"]
    # prepare wrote N shards; SageMaker's ShardedByS3Key gave each instance its own, the config and model to all
    shards = [f"dataset.part-{i:05d}.csv" for i in range(instances)]
    assert keys_under(client, f"runs/{run_id}/input/") == [f"runs/{run_id}/input/{s}" for s in shards]
    (job,) = state["processing"].jobs
    assert [inputs["dataset"] for inputs in job["inputs"]] == [[s] for s in shards]
    assert all(inputs["model"] == ["model.tar.gz"] for inputs in job["inputs"])
    assert all(inputs["analysis_config"] == ["analysis_config.json"] for inputs in job["inputs"])
    assert job["exit_codes"] == [0] * instances
    params = job["params"]
    assert params["ProcessingJobName"] == prepared["job_name"] == f"cx-{run_id}-1"
    # each instance wrote its own parts, joined by row_id in postprocess
    assert keys_under(client, f"runs/{run_id}/predict/output/") == [
        f"runs/{run_id}/predict/output/rows.part-{i:05d}.jsonl.out" for i in range(instances)
    ]
    records = records_of(client, run_id)
    assert [r["row_id"] for r in records] == list(range(1, len(texts) + 1))
    assert [r["text"] for r in records] == texts
    expected = model_probabilities(trained_model, texts)
    for record, probabilities in zip(records, expected, strict=True):
        got = [record["probabilities"][label] for label in trained_model.labels]
        assert np.allclose(got, np.minimum(probabilities, 1.0), atol=1e-4), record["row_id"]
        assert record["predicted_label"] == trained_model.labels[int(np.argmax(probabilities))]
        assert record["units"]  # explained, not just predicted
    assert manifest(client, run_id)["status"] == "SUCCEEDED"
    (event,) = state["events"]
    assert event["DetailType"] == "Explanation Succeeded"
    assert detail_of(event)["records"] == len(texts)


def test_a_fault_in_one_shard_fails_the_run_publishes_nothing_and_the_next_request_is_attempt_2(run, corpus):
    execute, client, state = run
    texts = texts_of(corpus, 4)
    request = {**upload(client, "incoming/one-shard-dies.csv", csv_bytes(texts)), "overrides": REQUEST_OPTIONS}
    state["processing"].kill_host = 1  # the second instance's container is killed; the first finishes its shard
    first = execute(request, 2, name="first")
    assert first.status == "FAILED"
    assert first.error == "ExplanationFailed"
    assert [n for n in first.path if n in ("Builtin", "Postprocess", "RecordFailure", "PublishFailure", "Failed")] == [
        "Builtin", "RecordFailure", "PublishFailure", "Failed"
    ]  # fmt: skip
    assert state["processing"].jobs[0]["exit_codes"] == [0, -signal.SIGKILL]
    (event,) = state["events"]
    assert event["DetailType"] == "Explanation Failed"
    run_id = detail_of(event)["run_id"]
    assert "AlgorithmError" in detail_of(event)["reason"]
    assert manifest(client, run_id)["status"] == "FAILED"
    assert keys_under(client, f"runs/{run_id}/results/") == []  # nothing published early
    # the finished instance's parts are there (the worst case), and must not mix into the next attempt
    assert keys_under(client, f"runs/{run_id}/predict/output/") == [
        f"runs/{run_id}/predict/output/rows.part-00000.jsonl.out"
    ]

    state["processing"].kill_host, state["events"] = None, []
    second = execute({**request, "attempt": 2}, 2, name=f"{run_id}-a2")
    assert second.status == "SUCCEEDED", (second.error, second.cause)
    assert second.output["prepare"]["run_id"] == run_id
    assert second.output["prepare"]["attempt"] == 2
    assert state["processing"].jobs[1]["params"]["ProcessingJobName"] == f"cx-{run_id}-2"
    assert [r["text"] for r in records_of(client, run_id)] == texts
    assert manifest(client, run_id)["status"] == "SUCCEEDED"
    assert detail_of(state["events"][0])["attempt"] == 2


def test_a_misspelt_or_mistyped_builtin_request_member_fails_the_test(run, stages, corpus):
    """The builtin engine's CreateProcessingJob, resolved as the run sends it, is checked against botocore's
    SageMaker model like Clarify's: a member the model does not know, or a string where it wants a number, fails
    the run's test naming the task and the member (issue 22), before the stand-in runs any job."""
    execute, client, state = run

    def request(key: str) -> dict:
        return {**upload(client, key, csv_bytes(texts_of(corpus, 2))), "overrides": REQUEST_OPTIONS}

    def misspelt(definition):
        app = all_states(definition)["Builtin"]["Parameters"]["AppSpecification"]
        app["ContainerEntrypont"] = app.pop("ContainerEntrypoint")

    with pytest.raises(
        ApiModelError,
        match=r'task sagemaker:createProcessingJob:.*Unknown parameter in AppSpecification: "ContainerEntrypont"',
    ):
        execute(request("incoming/misspelt.csv"), 1, name="misspelt", edit=misspelt)

    def mistyped(definition):
        all_states(definition)["Builtin"]["Parameters"]["ProcessingResources"]["ClusterConfig"]["InstanceCount"] = "2"

    with pytest.raises(
        ApiModelError, match=r"Invalid type for parameter ProcessingResources\.ClusterConfig\.InstanceCount"
    ):
        execute(request("incoming/mistyped.csv"), 2, name="mistyped", edit=mistyped)
    assert state["processing"].jobs == []  # refused before any job ran


# ---- the synthesized templates ----


def test_every_service_task_of_a_builtin_stage_is_a_request_the_api_model_accepts(stages):
    """As written, before any run: Builtin, FindBuiltinJob (reached only when a create call finds its job
    existing) and both PutEvents tasks, for one and two instances (tests/support/api_model.py)."""
    for instances, template in stages["templates"].items():
        config = stages["configs"][instances]
        definition = definition_from_template(template, config.region, config.account)
        assert {"Builtin", "FindBuiltinJob", "PublishSuccess", "PublishFailure"} <= set(all_states(definition))
        assert definition_problems(definition) == []


def test_the_builtin_job_is_the_contracts_and_no_batch_transform_runs(stages):
    for instances, template in stages["templates"].items():
        config = stages["configs"][instances]
        states = all_states(definition_from_template(template, config.region, config.account))
        assert not [name for name in states if name.startswith(("Predict", "Clarify"))]
        params = states["Builtin"]["Parameters"]
        (model,) = resources(template, "AWS::SageMaker::Model").values()
        resolve = Resolver(template, config.account, config.region)
        container = resolve(model["Properties"]["PrimaryContainer"])
        assert params["AppSpecification"] == {"ImageUri": container["Image"], "ContainerEntrypoint": ["explain-job"]}
        assert "ContainerArguments" not in params["AppSpecification"]
        assert params["Environment"] == {k: container["Environment"][k] for k in ("LABELS", "MAX_TEXT_CHARS")}
        inputs = {i["InputName"]: i["S3Input"] for i in params["ProcessingInputs"]}
        assert inputs["dataset"]["S3Uri.$"] == "$.prepare.dataset_s3_uri"
        assert inputs["dataset"]["LocalPath"] == "/opt/ml/processing/input/data"
        assert inputs["dataset"]["S3DataDistributionType"] == "ShardedByS3Key"
        assert inputs["analysis_config"]["LocalPath"] == "/opt/ml/processing/input/config"
        assert inputs["analysis_config"]["S3DataDistributionType"] == "FullyReplicated"
        assert inputs["model"]["S3Uri"] == container["ModelDataUrl"] == f"s3://{ARTIFACT_BUCKET}/{ARTIFACT_KEY}"
        assert inputs["model"]["LocalPath"] == "/opt/ml/processing/input/model"
        outputs = {o["OutputName"]: o["S3Output"] for o in params["ProcessingOutputConfig"]["Outputs"]}
        assert outputs["analysis_result"] == {
            "S3Uri.$": "$.prepare.output_s3_uri",
            "LocalPath": "/opt/ml/processing/output",
            "S3UploadMode": "EndOfJob",
        }
        assert outputs["predictions"] == {
            "S3Uri.$": "$.prepare.predict.output_s3_uri",
            "LocalPath": "/opt/ml/processing/predictions",
            "S3UploadMode": "EndOfJob",
        }
        assert params["NetworkConfig"]["EnableNetworkIsolation"] is True
        assert params["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == instances
        assert params["Tags"] == [{"Key": "explanation-run", "Value.$": "$.prepare.run_id"}]
        assert params["RoleArn"].split("/")[-1].startswith("WorkflowBuiltinJobRole")  # fmt: skip
        assert not resources(template, "AWS::IAM::Role").keys() & {"WorkflowClarifyJobRole"}
        assert clarify_image_uri(config.region) not in json.dumps(template)


def test_cdk_nag_reports_nothing_unsuppressed_for_a_builtin_stage(stages):
    from aws_cdk.assertions import Annotations, Match

    for stack in stages["stacks"].values():
        annotations = Annotations.from_stack(stack)
        assert [e.entry.data for e in annotations.find_error("*", Match.string_like_regexp(".*"))] == []
        warnings = annotations.find_warning("*", Match.string_like_regexp("(AwsSolutions|NIST).*"))
        assert [w.entry.data for w in warnings] == []


def test_a_clarify_stage_is_unchanged_except_where_the_engine_decides(synthesized, stages):
    """The dev stage as synthesized (clarify) against the same stage as builtin: the differences are exactly the job
    role, the state machine and its policy, the model role's Batch Transform grant and the functions' settings (the
    engine); every other resource, stateful or not, is the same. The clarify stage keeps Clarify's image, its
    Predict branch, its job role, and settings with no engine key."""
    # asset hashes (code, layer, image) are of the directories at each synth, which other work may edit in between
    unhashed = lambda template: json.loads(re.sub(r"\b[0-9a-f]{64}\b", "<asset>", json.dumps(template)))  # noqa: E731
    clarify = unhashed(synthesized.templates[STAGE])["Resources"]
    built = unhashed(stages["templates"][1])["Resources"]
    assert sorted(set(clarify) - set(built)) == sorted(i for i in clarify if i.startswith("WorkflowClarifyJobRole"))
    assert sorted(set(built) - set(clarify)) == sorted(i for i in built if i.startswith("WorkflowBuiltinJobRole"))
    differing = {i for i in set(clarify) & set(built) if clarify[i] != built[i]}
    expected = ("WorkflowStateMachine", "HostingExecutionRole", "WorkflowPrepareFn", "WorkflowPostprocessFn",
                "WorkflowRecordFailureFn", "TriggerStarterFn")  # fmt: skip
    assert {i for i in differing if not i.startswith(expected)} == set()
    for logical_id in differing:
        if clarify[logical_id]["Type"] == "AWS::Lambda::Function":
            before, after = clarify[logical_id]["Properties"], built[logical_id]["Properties"]
            assert {k: v for k, v in before.items() if k != "Environment"} == {
                k: v for k, v in after.items() if k != "Environment"
            }
    config = load_stage(STAGE)
    states = all_states(definition_from_template(synthesized.templates[STAGE], config.region, config.account))
    assert states["Clarify"]["Parameters"]["AppSpecification"] == {"ImageUri": clarify_image_uri(config.region)}
    assert "Predict" in states
    assert "Builtin" not in states
    _, env = settings_of(synthesized.templates[STAGE], config)
    assert "engine" not in json.loads(env[SETTINGS_ENV])


def test_a_builtin_stage_refuses_what_its_shards_cannot_honour():
    dev = load_stage(STAGE).model_dump()
    with pytest.raises(ValueError, match="median"):
        StageConfig.model_validate({**dev, "explainer": {"engine": "builtin"}, "clarify": {"agg_method": "median"},
                                    "processing": {"instance_count": 2}})  # fmt: skip
    with pytest.raises(ValueError, match="endpoint"):
        StageConfig.model_validate({**dev, "explainer": {"engine": "builtin"}, "hosting": {"endpoint_name": "e"}})
    with pytest.raises(ValueError, match="engine"):
        StageConfig.model_validate({**dev, "explainer": {"engine": "sagemaker"}})
    assert StageConfig.model_validate({**dev, "clarify": {"agg_method": "median"},
                                       "processing": {"instance_count": 2}}).explainer.engine == "clarify"  # fmt: skip

"""The synthesized state machine run through stand-ins of Batch Transform and Clarify written from AWS's
documentation (tests/support/batch_transform.py, clarify_job.py), calling the real container over HTTP with a fastText
model trained in the session, for both hosting modes: byoc (our container) and pipeline (our pre-adapter, the
BlazingText stand-in of tests/container/test_pipeline_mode.py, our post-adapter, in series as an inference pipeline).

Every task's resolved Parameters are checked against botocore's API model on the way (tests/support/api_model.py).
Each test below that guards a finding of issue 22 says what failed before the fix.
"""

from __future__ import annotations

import copy
import json
import re
from unittest import mock

import numpy as np
import pytest

from explain_workflow import aws, clarify_format
from explain_workflow.contract import SETTINGS_ENV, WorkflowSettings
from explain_workflow.errors import ClarifyOutputError
from fasttext_server.model import Classifier
from infra.config import load_stage
from infra.constructs.sagemaker_jobs import CREATE_ERRORS
from tests.support.api_model import ApiModelError, all_states, checked_binding, definition_problems
from tests.support.batch_transform import BatchTransform
from tests.support.cfn import Resolver, resources
from tests.support.clarify_job import ClarifyJob
from tests.support.clarify_job import describe as describe_processing
from tests.support.data import TEXTS, csv_bytes
from tests.support.endpoint import Endpoint
from tests.support.local_sfn import LocalSfn, TaskFailed, definition_from_template, quick, workflow_lambdas
from tests.support.s3 import handler_env, remove_buckets, s3_client, upload
from textexplain.serving import ServeProcess

STAGE = "dev"
SAMPLES = {"num_samples": 64}  # few samples: the real container answers every one of them


def _synth(tmp_path_factory, name: str, **updates):
    from app import new_app
    from infra.stack import add_stage_stacks

    config = load_stage(STAGE)
    for field, values in updates.items():
        config = config.model_copy(update={field: getattr(config, field).model_copy(update=values)})
    outdir = tmp_path_factory.mktemp(name)
    stack = add_stage_stacks(new_app(str(outdir)), config)
    path = outdir / stack.node.scope.synth().get_stack_by_name(stack.stack_name).template_file
    return config, json.loads(path.read_text())


def _stage(config, template) -> dict:
    functions = resources(template, "AWS::Lambda::Function")
    ids = {f["Properties"].get("Handler"): logical_id for logical_id, f in functions.items()}
    env = functions[ids["prepare.handler.handler"]]["Properties"]["Environment"]["Variables"]
    env = Resolver(template, config.account, config.region)(env)
    ((model_id, model),) = resources(template, "AWS::SageMaker::Model").items()
    props = model["Properties"]
    containers = props.get("Containers") or [props["PrimaryContainer"]]
    return {
        "config": config,
        "definition": quick(definition_from_template(template, config.region, config.account)),
        "ids": ids,
        "env": env,
        "settings": WorkflowSettings.model_validate_json(env[SETTINGS_ENV]),
        "model_id": model_id,
        "containers": containers,
    }


@pytest.fixture(scope="module")
def stages(synthesized, tmp_path_factory) -> dict:
    config = load_stage(STAGE)
    byoc = _stage(config, synthesized.templates[STAGE]) if config.hosting.mode == "byoc" else None
    pipeline = _stage(*_synth(tmp_path_factory, "pipeline", hosting={"mode": "pipeline"}))
    two = _stage(*_synth(tmp_path_factory, "two-instances", processing={"instance_count": 2}))
    return {"byoc": byoc, "pipeline": pipeline, "two-instances": two}


@pytest.fixture(scope="module")
def servers(trained_model, stages):
    """Every container of each stage's model, started with the environment the template gives it."""
    started, chains = [], {}
    for mode, stage in stages.items():
        urls = []
        for container in stage["containers"]:
            env = dict(container.get("Environment") or {})
            if "blazingtext" in json.dumps(container.get("Image")):  # AWS's container: our BlazingText stand-in
                env = {"SERVE_MODE": "blazingtext", "LABELS": json.dumps(stage["settings"].labels)}
            env = {k: v for k, v in env.items() if isinstance(v, str)}
            server = ServeProcess(trained_model.model_dir, None, workers=1, extra_env=env).start()
            started.append(server)
            urls.append(server.url)
        chains[mode] = Endpoint(tuple(urls))
    yield chains
    for server in started:
        server.stop()


@pytest.fixture
def run(stages, servers, moto_url, monkeypatch):
    client = s3_client(moto_url)
    for bucket in ("input", "results"):
        client.create_bucket(Bucket=bucket)

    def execute(mode: str, request: dict, name: str = "run", edit=None, clarify=ClarifyJob, describe=None):
        """Run ``mode``'s definition (changed by ``edit``) with a ``clarify`` stand-in class and a describe binding."""
        stage = stages[mode]
        settings = stage["settings"].model_copy(update={"results_bucket": "results"})
        handler_env(monkeypatch, moto_url, stage["env"] | {SETTINGS_ENV: settings.model_dump_json()})

        endpoints = {stage["model_id"]: servers[mode]}
        jobs = {"clarify": clarify(client, endpoints), "transform": BatchTransform(client, endpoints)}
        events: list[dict] = []
        answers: list[str] = []  # the stand-ins' answers the API model refuses

        def put_events(params):
            events.extend(params["Entries"])
            return {"Entries": [{"EventId": str(len(events))}], "FailedEntryCount": 0}

        ids = stage["ids"]
        sfn = LocalSfn(
            lambdas=workflow_lambdas(ids),
            services={
                key: checked_binding(key, binding, answers)
                for key, binding in {
                    "sagemaker:createProcessingJob": jobs["clarify"],
                    "sagemaker:createTransformJob": jobs["transform"],
                    "aws-sdk:sagemaker:describeProcessingJob": describe or _no_job,
                    "events:putEvents": put_events,
                }.items()
            },
        )
        jobs["sfn"], jobs["events"] = sfn, events
        definition = copy.deepcopy(stage["definition"])
        if edit is not None:
            edit(definition)
        result = sfn.execute(definition, {**request, "overrides": SAMPLES}, name=name)
        if answers:  # a stand-in answered what the service's API model would not: the stand-in is wrong
            raise ApiModelError("; ".join(answers))
        return result, jobs

    yield execute, client
    remove_buckets(client, ("input", "results"))
    aws.settings.cache_clear()
    aws.storage.cache_clear()


def _no_job(params):
    raise TaskFailed("SageMaker.ResourceNotFoundException", f"Could not find job {params['ProcessingJobName']}")


def _records(client, run_id: str) -> list[dict]:
    body = client.get_object(Bucket="results", Key=f"runs/{run_id}/results/records.jsonl")["Body"].read()
    return [json.loads(line) for line in body.decode().splitlines()]


def _manifest(client, run_id: str) -> dict:
    return json.loads(client.get_object(Bucket="results", Key=f"runs/{run_id}/manifest.json")["Body"].read())


def _task(definition: dict, resource: str) -> dict:
    (state,) = [s for s in all_states(definition).values() if resource in s.get("Resource", "")]
    return state


@pytest.mark.parametrize("mode", ["byoc", "pipeline"])
def test_a_run_through_the_documented_services_and_the_real_container(run, stages, trained_model, mode):
    """Done-when of issue 22: both jobs call the real model; the records equal fastText's own predictions."""
    if stages[mode] is None:
        pytest.skip(f"the {STAGE} stage is not hosted as {mode}")
    execute, client = run
    result, jobs = execute(mode, upload(client, f"incoming/{mode}.csv", csv_bytes(TEXTS)))
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    labels = stages[mode]["settings"].labels
    records = _records(client, result.output["prepare"]["run_id"])
    assert [r["text"] for r in records] == TEXTS
    expected = Classifier(trained_model.model, labels).predict(TEXTS)
    for record, probs in zip(records, expected, strict=True):
        got = [record["probabilities"][label] for label in labels]
        # fastText's float32 softmax can carry a sure class just past 1; postprocess publishes min(p, 1)
        np.testing.assert_allclose(got, np.minimum(probs, 1.0), atol=1e-6)
        assert record["predicted_label"] == labels[int(np.argmax(probs))]
        assert "".join(u["text"] for u in record["units"]) != ""  # Clarify's units came through postprocess
    # the transform sent each whole {"row_id", "text"} line, one per request; Clarify sent quoted headerless CSV
    assert [json.loads(body) for body in jobs["transform"].requests] == [
        {"row_id": i, "text": t} for i, t in enumerate(TEXTS, start=1)
    ]
    assert all(body.startswith(b'"') for body in jobs["clarify"].requests)
    assert len(jobs["clarify"].requests) >= len(TEXTS)


def test_the_old_input_filter_is_refused_by_the_documented_transform(run, stages):
    """Before: the Predict task sent InputFilter "$.text": what the container then receives is undocumented (a JSON
    string or the raw text); the stand-in refuses to guess, so that definition fails here. After: no filter, the
    container reads the whole object (previous test)."""
    execute, client = run

    def old_filter(definition):
        _task(definition, "createTransformJob")["Parameters"]["DataProcessing"]["InputFilter"] = "$.text"

    mode = "byoc" if stages["byoc"] else "pipeline"
    result, jobs = execute(mode, upload(client, "incoming/filtered.csv", csv_bytes(TEXTS)), edit=old_filter)
    assert result.status == "FAILED"
    (event,) = jobs["events"]
    assert "not documented" in event["Detail"]["reason"]
    assert _manifest(client, event["Detail"]["run_id"])["status"] == "FAILED"


def test_a_multi_instance_clarify_job_with_spark_part_names_is_read(run, stages):
    """Before: a two-instance Clarify job's part-00000-<uuid>-c000.json files, _SUCCESS marker and .crc checksums
    made postprocess fail ("unexpected file explanations_shap/_SUCCESS"); after: the parts are read in name order."""
    execute, client = run
    result, _ = execute("two-instances", upload(client, "incoming/two.csv", csv_bytes(TEXTS)))
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    run_id = result.output["prepare"]["run_id"]
    names = [o["Key"].rsplit("/", 1)[-1] for o in client.list_objects_v2(
        Bucket="results", Prefix=f"runs/{run_id}/clarify/explanations_shap/")["Contents"]]  # fmt: skip
    assert "_SUCCESS" in names
    assert any(n.startswith("part-00001-") for n in names)
    assert [r["text"] for r in _records(client, run_id)] == TEXTS
    # the reader of before the fix (out.jsonl and out.part files only) refuses the same listing by name
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="results", Prefix=f"runs/{run_id}/clarify/")["Contents"]]
    never = re.compile(r"(?!)")
    with (
        mock.patch.object(clarify_format, "_SPARK_PART", never),
        mock.patch.object(clarify_format, "_SPARK_MARKER", never),
        pytest.raises(ClarifyOutputError, match="unexpected file explanations_shap/"),
    ):
        clarify_format.out_keys(keys, f"runs/{run_id}/clarify/")


@pytest.mark.parametrize("error", ["SageMaker.ResourceInUse", "SageMaker.ResourceInUseException"])
def test_every_documented_duplicate_name_error_follows_the_existing_job(run, stages, error):
    """Before: only SageMaker.AmazonSageMakerException was caught; a taken name reported as ResourceInUse(Exception)
    failed the run although its job ran. After: the run follows the job of that name to its end."""
    execute, client = run
    created: dict = {}

    class LostAnswer(ClarifyJob):
        def __call__(self, params):
            name = params["ProcessingJobName"]
            if name in created:
                raise TaskFailed(error, f"Resource already exists: {name}")
            self.run(params)  # the job runs, but the create call's answer is lost
            created[name] = params
            raise TaskFailed("ThrottlingException", "Rate exceeded")

    def describe(params):
        name = params["ProcessingJobName"]
        if name not in created:
            raise TaskFailed("SageMaker.ResourceNotFoundException", f"Could not find job {name}")
        return describe_processing(created[name], "Completed")

    mode = "byoc" if stages["byoc"] else "pipeline"

    def old_catch(definition):  # the Catch of before the fix
        _task(definition, "createProcessingJob")["Catch"][0]["ErrorEquals"] = CREATE_ERRORS

    before = upload(client, f"incoming/{error}-before.csv", csv_bytes(TEXTS))
    result, _ = execute(mode, before, name="before", edit=old_catch, clarify=LostAnswer, describe=describe)
    assert result.status == "FAILED"  # its job ran to the end, yet the run failed on the name
    request = upload(client, f"incoming/{error}.csv", csv_bytes(TEXTS))
    result, _ = execute(mode, request, clarify=LostAnswer, describe=describe)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert "FindClarifyJob" in result.path
    assert _manifest(client, result.output["prepare"]["run_id"])["status"] == "SUCCEEDED"


def test_a_misspelt_or_mistyped_request_member_fails_the_test(run, stages):
    """The API-model check itself: a member name the model does not know, or a string where it wants a number,
    fails the run's test with the task and the member named (the deliberately wrong requests of issue 22)."""
    execute, client = run
    mode = "byoc" if stages["byoc"] else "pipeline"

    def misspelt(definition):
        params = _task(definition, "createTransformJob")["Parameters"]
        params["BatchStrateg"] = params.pop("BatchStrategy")

    with pytest.raises(ApiModelError, match='Unknown parameter in input: "BatchStrateg"'):
        execute(mode, upload(client, "incoming/misspelt.csv", csv_bytes(TEXTS)), edit=misspelt)

    def mistyped(definition):
        _task(definition, "createProcessingJob")["Parameters"]["StoppingCondition"]["MaxRuntimeInSeconds"] = "3600"

    with pytest.raises(ApiModelError, match="MaxRuntimeInSeconds"):
        execute(mode, upload(client, "incoming/mistyped.csv", csv_bytes(TEXTS)), name="second", edit=mistyped)


@pytest.mark.parametrize("mode", ["pipeline", "two-instances"])
def test_every_service_task_of_the_other_hosting_and_instance_shapes_is_accepted_by_the_api_model(stages, mode):
    """The byoc dev stage is checked in tests/infra/test_api_models.py; the pipeline model and the two-instance job
    change the Clarify and Predict requests, so their definitions are checked as written too."""
    assert definition_problems(stages[mode]["definition"]) == []


class CategoricalClarify(ClarifyJob):
    """Clarify when it infers the text column to be categorical (short or repeated texts): the column is explained
    as one value, each attribution without a description of a unit. The record keeps the published layout's keys
    with data_type "categorical" (the notebook names categorical as one of the inferred types); that the values
    then come without ``description`` is an assumption (docs/workflow.md)."""

    def run(self, params: dict) -> None:
        super().run(params)
        (output,) = params["ProcessingOutputConfig"]["Outputs"]
        bucket, _, prefix = output["S3Output"]["S3Uri"].removeprefix("s3://").partition("/")
        key = prefix.rstrip("/") + "/explanations_shap/out.jsonl"
        lines = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines()
        records = []
        for line in lines:
            record = json.loads(line)
            (feature,) = record["explanations"]
            values = np.sum([a["attribution"] for a in feature["attributions"]], axis=0).tolist()
            feature.update(data_type="categorical", attributions=[{"attribution": values}])
            records.append(json.dumps(record) + "\n")
        self.s3.put_object(Bucket=bucket, Key=key, Body="".join(records).encode())


def test_a_text_column_clarify_took_for_categorical_fails_with_one_message_naming_it_and_the_fix(run, stages):
    """Before: the reader met attributions without ``description`` and the run failed with "unexpected record shape
    (KeyError: 'description')", naming neither the column nor what to do. After: one message naming the column, why
    (Clarify inferred the type) and the fix (longer, varied texts, or the builtin engine)."""
    execute, client = run
    mode = "byoc" if stages["byoc"] else "pipeline"
    result, jobs = execute(
        mode, upload(client, "incoming/categorical.csv", csv_bytes(TEXTS)), clarify=CategoricalClarify
    )
    assert result.status == "FAILED"
    (event,) = jobs["events"]
    reason = event["Detail"]["reason"]
    assert "column 'text' was explained as a categorical feature" in reason
    assert "Clarify inferred its type" in reason
    assert "explainer engine 'builtin'" in reason
    assert "KeyError" not in reason
    assert _manifest(client, event["Detail"]["run_id"])["status"] == "FAILED"
    # the reader of before the fix on the same line: a bare shape error
    key = f"runs/{event['Detail']['run_id']}/clarify/explanations_shap/out.jsonl"
    line = client.get_object(Bucket="results", Key=key)["Body"].read().decode().splitlines()[0]
    labels = stages[mode]["settings"].labels
    with (
        mock.patch.object(clarify_format, "_refuse_categorical", return_value=None),
        pytest.raises(ClarifyOutputError, match=r"unexpected record shape \(KeyError: 'description'\)"),
    ):
        clarify_format.parse_local_line(line, 1, len(labels), "explanations_shap/out.jsonl")

"""The second deploy: what each everyday change does to a deployed stage, by CDK's own diff engine.

Each change a team makes (new container code, a new model artifact, new labels, new Clarify settings, an added
allowed account, a new stage in the pipeline) is synthesized before and after and diffed with
``@aws-cdk/cloudformation-diff`` (the engine of ``cdk diff``, installed from package-lock.json by ``make test``). No
stateful resource may be replaced or destroyed, and no resource with a fixed name replaced (CloudFormation cannot
create the new one beside the old). A new model must deploy as a new model, which the functions then name.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from explain_workflow.contract import SETTINGS_ENV
from infra.config import ROOT, StageConfig, load_stage
from tests.support.image import copy_image_context
from tests.support.synth import synth

DIFF = ROOT / "tests" / "support" / "cfn_diff.js"
ENGINE = ROOT / "node_modules" / "@aws-cdk" / "cloudformation-diff"
STATEFUL = {"AWS::S3::Bucket", "AWS::KMS::Key", "AWS::ECR::Repository", "AWS::Logs::LogGroup", "AWS::SQS::Queue",
            "AWS::SNS::Topic", "AWS::Events::EventBus", "AWS::KMS::Alias"}  # fmt: skip
REPLACING = {"WILL_REPLACE", "MAY_REPLACE", "WILL_DESTROY", "WILL_ORPHAN"}
NAME_PROPERTIES = {"BucketName", "EventBusName", "Name", "RepositoryName", "ModelName", "FunctionName", "RoleName",
                   "TopicName", "QueueName", "StateMachineName", "LogGroupName", "AliasName",
                   "EndpointName"}  # fmt: skip

pytestmark = pytest.mark.skipif(
    not ENGINE.is_dir(), reason="npm package @aws-cdk/cloudformation-diff not installed (make test runs npm ci)"
)


def diff(old: dict, new: dict, tmp: Path) -> list[dict]:
    (tmp / "old.json").write_text(json.dumps(old))
    (tmp / "new.json").write_text(json.dumps(new))
    out = subprocess.run(["node", str(DIFF), str(tmp / "old.json"), str(tmp / "new.json")], capture_output=True,
                         text=True, check=True, cwd=ROOT)  # fmt: skip
    return json.loads(out.stdout)


def fixed_names(template: dict) -> set[str]:
    """Resources whose name is set in the template, not generated: CloudFormation cannot replace them."""
    return {lid for lid, r in template["Resources"].items()
            if any(isinstance(r.get("Properties", {}).get(p), str) for p in NAME_PROPERTIES)}  # fmt: skip


def assert_safe(changes: list[dict], before: dict) -> None:
    named = fixed_names(before)
    unsafe = [c for c in changes if c["impact"] in REPLACING and (c["type"] in STATEFUL or c["logicalId"] in named)]
    assert unsafe == []


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    config = load_stage("dev")
    return config, synth(config, tmp_path_factory.mktemp("before"))


def changed(config: StageConfig, **updates) -> StageConfig:
    data = config.model_dump()
    for path, value in updates.items():
        section, _, field = path.partition("__")
        if field:
            data[section] = {**data[section], field: value}
        else:
            data[section] = value
    return StageConfig.model_validate(data)


def by_type(changes: list[dict]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for change in changes:
        found.setdefault(change["type"], set()).add(change["impact"])
    return found


MODEL_CHANGES = {
    "new labels": {"model__labels": [*load_stage("dev").model.labels, "Newcomer"]},
    "new model artifact": {"model__artifact_s3_uri": "s3://dev-models-111111111111/text-classifier/v2/model.tar.gz"},
    "new artifact version at the same URI": {"model__artifact_version": "training-run-42"},
    "a raised text limit": {"limits__max_text_chars": 20_000},  # prepare's and the container's one limit
}


@pytest.mark.parametrize("change", sorted(MODEL_CHANGES))
def test_a_new_model_deploys_as_a_new_model_and_nothing_stateful_is_replaced(base, tmp_path, change):
    config, before = base
    after = synth(changed(config, **MODEL_CHANGES[change]), tmp_path / "after")
    changes = diff(before, after, tmp_path)
    assert_safe(changes, before)
    assert by_type(changes)["AWS::SageMaker::Model"] == {"WILL_REPLACE"}
    (model_id,) = [c["logicalId"] for c in changes if c["type"] == "AWS::SageMaker::Model"]
    assert "ModelName" not in after["Resources"][model_id]["Properties"]  # generated: replaceable
    functions = [
        r for r in after["Resources"].values() if r["Type"] == "AWS::Lambda::Function" and "Layers" in r["Properties"]
    ]
    for function in functions:  # every function names the model CloudFormation creates, from the next run on
        settings = function["Properties"]["Environment"]["Variables"][SETTINGS_ENV]
        assert {"Fn::GetAtt": [model_id, "ModelName"]} in settings["Fn::Join"][1]
    assert {c["impact"] for c in changes if c["type"] == "AWS::Lambda::Function"} <= {"WILL_UPDATE"}
    # the state machine's Predict step names it by the same GetAtt, which CloudFormation resolves again once the model
    # is replaced (the template text may not change: the diff need not list it), so the next execution uses it
    assert by_type(changes).get("AWS::StepFunctions::StateMachine", {"WILL_UPDATE"}) == {"WILL_UPDATE"}
    (machine,) = [r for r in after["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"]
    assert {"Fn::GetAtt": [model_id, "ModelName"]} in machine["Properties"]["DefinitionString"]["Fn::Join"][1]


def test_new_container_code_is_a_new_image_and_a_new_model(base, tmp_path):
    config, before = base
    context = copy_image_context(tmp_path / "context")
    (context / "container" / "fasttext_server" / "release_note.txt").write_text("a change to the serving code\n")
    after = synth(config, tmp_path / "after", image_context=context)
    changes = diff(before, after, tmp_path)
    assert_safe(changes, before)
    assert by_type(changes)["AWS::SageMaker::Model"] == {"WILL_REPLACE"}
    # the image is part of the settings' model_identity: a new environment, so a new run id for the new image
    assert "WILL_UPDATE" in by_type(changes)["AWS::Lambda::Function"]


def test_new_clarify_settings_update_only_the_functions(base, tmp_path):
    config, before = base
    after = synth(changed(config, clarify__num_samples=400, clarify__granularity="sentence"), tmp_path / "after")
    changes = diff(before, after, tmp_path)
    assert_safe(changes, before)
    assert by_type(changes) == {"AWS::Lambda::Function": {"WILL_UPDATE"}}


def test_an_added_allowed_account_adds_a_bus_policy_and_replaces_nothing(base, tmp_path):
    config, before = base
    after = synth(changed(config, events__allowed_accounts=["555566667777"]), tmp_path / "after")
    changes = diff(before, after, tmp_path)
    assert_safe(changes, before)
    assert by_type(changes)["AWS::Events::EventBusPolicy"] == {"WILL_CREATE"}
    assert not [c for c in changes if c["impact"] in REPLACING]


def test_a_new_stage_in_the_pipeline_leaves_the_other_stages_and_the_pipelines_state_alone(tmp_path):
    from app import new_app
    from infra.multi_account import PipelineConfig, PipelineStack, load_json

    def pipeline(stages: list[str], outdir: Path) -> tuple[dict, dict]:
        app = new_app(str(outdir))
        config = load_json("pipeline.json", PipelineConfig).model_copy(update={"stages": stages})
        PipelineStack(app, "TextExplanations-pipeline", config=config)
        app.synth()
        stage_templates = {p.name: json.loads(p.read_text()) for p in outdir.glob("assembly-*/*.template.json")}
        return json.loads((outdir / "TextExplanations-pipeline.template.json").read_text()), stage_templates

    before, stages_before = pipeline(["dev", "prod"], tmp_path / "before")
    after, stages_after = pipeline(["dev", "staging", "prod"], tmp_path / "after")
    changes = diff(before, after, tmp_path)
    assert_safe(changes, before)
    assert by_type(changes)["AWS::CodePipeline::Pipeline"] == {"WILL_UPDATE"}
    for name, template in stages_before.items():  # dev and prod deploy exactly what they deployed before
        assert stages_after[name] == template, name
    assert set(stages_after) - set(stages_before)  # staging's stacks are new


def test_new_dependencies_in_the_layer_are_a_new_layer_version_that_every_function_takes(base, tmp_path, monkeypatch):
    """A new Powertools (or pydantic) pin rebuilds the layer: a new layer version, replaced (it has no name of its
    own), and the four functions updated to it; nothing stateful moves."""
    from infra.constructs import layer

    built = layer.build_layer_directory(layer.layer_distributions(layer.pinned_requirements()))
    changed_layer = tmp_path / "layer"
    shutil.copytree(built, changed_layer)
    (changed_layer / "python" / "aws_lambda_powertools" / "release_note.txt").write_text("a new Powertools release\n")
    monkeypatch.setattr(layer, "build_layer_directory", lambda dists, parent=None: changed_layer)
    config, before = base
    after = synth(config, tmp_path / "after")
    changes = diff(before, after, tmp_path)
    assert_safe(changes, before)
    assert by_type(changes)["AWS::Lambda::LayerVersion"] == {"WILL_REPLACE"}
    (layer_id,) = [c["logicalId"] for c in changes if c["type"] == "AWS::Lambda::LayerVersion"]
    assert "LayerName" not in after["Resources"][layer_id]["Properties"]
    # each function names the layer by Ref, which CloudFormation resolves again to the new version's ARN once the
    # layer is replaced (the function's template text is unchanged, so the diff need not list it); none is replaced
    assert {c["impact"] for c in changes if c["type"] == "AWS::Lambda::Function"} <= {"WILL_UPDATE"}
    ours = [
        r for r in after["Resources"].values() if r["Type"] == "AWS::Lambda::Function" and "Layers" in r["Properties"]
    ]
    assert len(ours) == 4
    assert all(function["Properties"]["Layers"] == [{"Ref": layer_id}] for function in ours)


@pytest.fixture(scope="module")
def builtin_dev(base, tmp_path_factory):
    """The dev stage with explainer.engine "builtin" (issue 21), synthesized once for both directions."""
    config, _ = base
    return synth(changed(config, explainer={"engine": "builtin"}), tmp_path_factory.mktemp("builtin"))


@pytest.mark.parametrize("direction", ["clarify to builtin", "builtin to clarify"])
def test_switching_a_stage_between_engines_replaces_nothing_stateful(base, builtin_dev, tmp_path, direction):
    """One job role goes and the other comes; the state machine, its role's policy, the model role's policy and the
    functions' settings update in place. No bucket, key, repository, log group, bus, queue, topic or model is
    touched, so runs, results and the model survive the switch either way."""
    _, clarify = base
    before, after = (clarify, builtin_dev) if direction == "clarify to builtin" else (builtin_dev, clarify)
    changes = diff(before, after, tmp_path)
    assert_safe(changes, before)
    assert [c for c in changes if c["type"] in STATEFUL | {"AWS::SageMaker::Model"}] == []
    gone = {c["logicalId"] for c in changes if c["impact"] in REPLACING}
    came = {c["logicalId"] for c in changes if c["impact"] == "WILL_CREATE"}
    old_role, new_role = (
        ("WorkflowClarifyJobRole", "WorkflowBuiltinJobRole")
        if direction == "clarify to builtin"
        else ("WorkflowBuiltinJobRole", "WorkflowClarifyJobRole")
    )
    assert gone
    assert all(i.startswith(old_role) for i in gone)
    assert came
    assert all(i.startswith(new_role) for i in came)
    updated = {c["type"] for c in changes if c["impact"] == "WILL_UPDATE"}
    in_place = {"AWS::StepFunctions::StateMachine", "AWS::IAM::Policy", "AWS::Lambda::Function", "AWS::IAM::Role"}
    assert updated <= in_place
    for change in changes:  # a kept role changes only its cdk-nag metadata (the suppressions' reasons)
        if change["type"] == "AWS::IAM::Role" and change["impact"] == "WILL_UPDATE":
            logical_id = change["logicalId"]
            assert before["Resources"][logical_id]["Properties"] == after["Resources"][logical_id]["Properties"]
    assert by_type(changes)["AWS::StepFunctions::StateMachine"] == {"WILL_UPDATE"}


def test_switching_online_explanations_from_clarify_to_builtin_replaces_nothing_stateful(tmp_path):
    """staging (online_explainer true): the Clarify endpoint config goes, a new one without an explainer and the
    explain model come, the endpoint takes the new config in place; the stage's model, role and data are untouched."""
    clarify = load_stage("staging")
    before = synth(clarify, tmp_path / "clarify")
    after = synth(changed(clarify, explainer={"engine": "builtin"}), tmp_path / "builtin")
    changes = diff(before, after, tmp_path)
    assert_safe(changes, before)
    online = {c["logicalId"]: (c["type"], c["impact"]) for c in changes if c["logicalId"].startswith("Online")}
    kinds = {kind: impact for kind, impact in online.values()}
    # the endpoint is not in the diff: its EndpointConfigName is a GetAtt of the replaced config, which CloudFormation
    # resolves at deploy time and applies as an update (EndpointConfigName updates with no interruption)
    assert kinds == {"AWS::SageMaker::Model": "WILL_CREATE", "AWS::SageMaker::EndpointConfig": "WILL_REPLACE"}
    (endpoint,) = [k for k, r in before["Resources"].items() if r["Type"] == "AWS::SageMaker::Endpoint"]
    assert before["Resources"][endpoint] == after["Resources"][endpoint]
    assert [c for c in changes if c["logicalId"].startswith("Hosting") and c["type"] == "AWS::SageMaker::Model"] == []
    assert [c for c in changes if c["type"] in STATEFUL] == []

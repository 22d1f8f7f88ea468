"""The stage's online explainer by engine (issue 21): with "clarify" Clarify's explainer config over the stage's
model, as before; with "builtin" a second model of our image in SERVE_MODE=explain behind an endpoint config with no
explainer. Synthesized from staging (the stage with online_explainer true) and its builtin twin."""

from __future__ import annotations

import json

import pytest

from infra.config import StageConfig, load_stage
from tests.support.cfn import resources
from tests.support.synth import synth


def builtin(config: StageConfig) -> StageConfig:
    return StageConfig.model_validate({**config.model_dump(), "explainer": {"engine": "builtin"}})


@pytest.fixture(scope="module")
def staging():
    return load_stage("staging")


@pytest.fixture(scope="module")
def templates(staging, tmp_path_factory):
    return {
        "clarify": synth(staging, tmp_path_factory.mktemp("online-clarify")),
        "builtin": synth(builtin(staging), tmp_path_factory.mktemp("online-builtin")),
    }


def online(template: dict, kind: str) -> dict:
    return {k: v for k, v in resources(template, kind).items() if k.startswith("Online")}


def test_the_clarify_engine_keeps_clarifys_explainer_over_the_stages_model(templates, staging):
    template = templates["clarify"]
    assert online(template, "AWS::SageMaker::Model") == {}
    (config,) = online(template, "AWS::SageMaker::EndpointConfig").values()
    explainer = config["Properties"]["ExplainerConfig"]["ClarifyExplainerConfig"]
    assert explainer["ShapConfig"]["NumberOfSamples"] == min(staging.clarify.num_samples, 100)
    (model_id,) = [k for k in resources(template, "AWS::SageMaker::Model") if k.startswith("Hosting")]
    assert config["Properties"]["ProductionVariants"][0]["ModelName"] == {"Fn::GetAtt": [model_id, "ModelName"]}


def test_the_builtin_engine_serves_our_image_in_explain_mode_without_clarify(templates, staging):
    template = templates["builtin"]
    (config,) = online(template, "AWS::SageMaker::EndpointConfig").values()
    assert "ExplainerConfig" not in config["Properties"]
    assert "KmsKeyId" in config["Properties"]
    ((explain_id, explain),) = online(template, "AWS::SageMaker::Model").items()
    (variant,) = config["Properties"]["ProductionVariants"]
    assert variant["ModelName"] == {"Fn::GetAtt": [explain_id, "ModelName"]}
    assert variant["InstanceType"] == staging.hosting.online_instance_type
    ((_, stage_model),) = [(k, v) for k, v in resources(template, "AWS::SageMaker::Model").items() if k != explain_id]
    ours, theirs = explain["Properties"], stage_model["Properties"]
    # staging hosts in "pipeline" mode: our adapters (our image) around BlazingText's container (the artifact)
    containers = theirs.get("Containers") or [theirs["PrimaryContainer"]]
    (artifact,) = [c["ModelDataUrl"] for c in containers if "ModelDataUrl" in c]
    ours_env = {k: v for k, v in containers[-1]["Environment"].items() if k != "SERVE_MODE"}
    # the same image, artifact and execution role as the stage's model: no new principal, no new permission
    assert ours["PrimaryContainer"]["Image"] == containers[-1]["Image"]
    assert ours["PrimaryContainer"]["ModelDataUrl"] == artifact
    assert ours["ExecutionRoleArn"] == theirs["ExecutionRoleArn"]
    assert ours["EnableNetworkIsolation"] is True
    clarify = staging.clarify
    assert ours["PrimaryContainer"]["Environment"] == {
        **ours_env,
        "SERVE_MODE": "explain",
        "EXPLAIN_NUM_SAMPLES": str(min(clarify.num_samples, 100)),
        "EXPLAIN_GRANULARITY": clarify.granularity,
        "EXPLAIN_LANGUAGE": clarify.language,
        "EXPLAIN_BASELINE": clarify.baseline,
        "EXPLAIN_SEED": str(clarify.seed or 0),
    }
    assert json.loads(ours["PrimaryContainer"]["Environment"]["LABELS"]) == staging.model.labels
    assert online(template, "AWS::IAM::Role") == {}
    assert online(template, "AWS::IAM::Policy") == {}


def test_the_explain_models_settings_start_the_server(templates, trained_model):
    """The environment the template gives the explain model is one the server accepts (its own parser)."""
    from fasttext_server.explain_mode import ExplainSettings

    ((_, explain),) = online(templates["builtin"], "AWS::SageMaker::Model").items()
    env = explain["Properties"]["PrimaryContainer"]["Environment"]
    settings = ExplainSettings.from_env(env)
    assert settings.num_samples <= 100

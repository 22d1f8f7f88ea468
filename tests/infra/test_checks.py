"""Third-party checks of the synthesized app: cdk-nag, cfn-lint, the SDK's image URIs and analysis-config schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk.assertions import Annotations, Match

from explain_workflow import analysis_config
from explain_workflow.contract import WorkflowSettings
from infra.config import ConfigError, load_stage
from infra.images import BLAZINGTEXT_REGISTRIES, CLARIFY_REGISTRIES, blazingtext_image_uri, clarify_image_uri
from tests.support.cfn import STAGES, Resolver, resources


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("part", ["stacks", "image_stacks"])
def test_cdk_nag_aws_solutions_and_nist_report_nothing_unsuppressed(synthesized, stage, part):
    annotations = Annotations.from_stack(getattr(synthesized, part)[stage])
    errors = annotations.find_error("*", Match.string_like_regexp(".*"))
    warnings = annotations.find_warning("*", Match.string_like_regexp("(AwsSolutions|NIST).*"))
    assert [e.entry.data for e in errors] == []
    assert [w.entry.data for w in warnings] == []


@pytest.mark.parametrize("stage", STAGES)
def test_every_suppression_has_a_specific_reason(synthesized, stage):
    reasons = []
    for res in synthesized.templates[stage]["Resources"].values():
        for rule in res.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
            reasons.append((rule["id"], rule["reason"]))
    assert reasons
    for rule_id, reason in reasons:
        assert len(reason) >= 60, (rule_id, reason)


def test_cfn_lint_finds_no_errors(synthesized):
    templates = sorted(str(p) for p in synthesized.outdir.glob("*.template.json"))
    assert len(templates) == 2 * len(STAGES)  # each stage: its image repository, then the stage
    result = subprocess.run([cfn_lint(), "--format", "json", "--", *templates], capture_output=True, text=True)
    assert result.returncode in (0, 2, 4, 6, 8, 10, 12, 14), result.stderr  # bit flags of what it found
    findings = json.loads(result.stdout)
    errors = [f for f in findings if f["Level"] == "Error"]
    assert errors == []


def cfn_lint() -> str:
    """The cfn-lint of this environment (``python -m cfnlint`` does not run it: the package has no __main__)."""
    return str(Path(sys.executable).parent / "cfn-lint")


def test_blazingtext_image_map_equals_the_sagemaker_sdk_for_every_region():
    from sagemaker.core import image_uris
    from sagemaker.core.image_uris import config_for_framework

    sdk_regions = sorted(config_for_framework("blazingtext")["versions"]["1"]["registries"])
    assert sorted(BLAZINGTEXT_REGISTRIES) == sdk_regions
    for region in sdk_regions:
        assert blazingtext_image_uri(region) == image_uris.retrieve("blazingtext", region), region


def test_clarify_image_map_equals_the_sagemaker_sdk_for_every_region():
    from sagemaker.core import image_uris
    from sagemaker.core.image_uris import config_for_framework

    sdk_regions = sorted(config_for_framework("clarify")["processing"]["versions"]["1.0"]["registries"])
    assert sorted(CLARIFY_REGISTRIES) == sdk_regions
    for region in sdk_regions:
        assert clarify_image_uri(region) == image_uris.retrieve("clarify", region), region
    with pytest.raises(ValueError, match="not available"):
        clarify_image_uri("xx-nowhere-1")


@pytest.mark.parametrize("stage", STAGES)
def test_the_workflow_analysis_config_passes_the_sdk_schema(synthesized, stage):
    """Build the analysis config exactly as prepare will, from the environment the template gives it."""
    from sagemaker.core.clarify import ANALYSIS_CONFIG_SCHEMA_V1_0

    template = synthesized.templates[stage]
    stage_config = load_stage(stage)
    resolve = Resolver(template, stage_config.account, stage_config.region)
    functions = resources(template, "AWS::Lambda::Function")
    (prepare,) = [f for f in functions.values() if f["Properties"].get("Handler") == "prepare.handler.handler"]
    env = resolve(prepare["Properties"]["Environment"]["Variables"])
    settings = WorkflowSettings.from_env(env)
    config = analysis_config.build(settings, settings.defaults, endpoint_name_prefix="sm-clarify-run")
    ANALYSIS_CONFIG_SCHEMA_V1_0.validate(config)
    if stage_config.hosting.endpoint_name:  # an existing endpoint: no temporary one
        assert config["predictor"]["endpoint_name"] == stage_config.hosting.endpoint_name
        assert "model_name" not in config["predictor"]
    else:
        (model_id,) = resources(template, "AWS::SageMaker::Model")
        assert config["predictor"]["model_name"] == resolve.name(model_id)  # the generated name, as deployed
    assert config["predictor"]["label_headers"] == stage_config.model.labels


def test_synth_is_deterministic(synthesized, tmp_path):
    from app import build_app

    app = build_app(STAGES, outdir=str(tmp_path))
    assembly = app.synth()
    for stage in STAGES:
        again = json.loads(
            (tmp_path / assembly.get_stack_by_name(f"TextExplanations-{stage}").template_file).read_text()
        )
        assert again == synthesized.templates[stage]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"account": "12", "region": "eu-west-1", "model": {"labels": ["a", "b"], "artifact_s3_uri": "s3://b/k"}},
         "account"),
        ({"account": "111111111111", "region": "eu-west-1", "model": {"labels": ["a", "b"]}},
         "exactly one of artifact_s3_uri and artifact_path"),
        ({"account": "111111111111", "region": "eu-west-1",
          "model": {"labels": ["a", "a"], "artifact_s3_uri": "s3://bucket/k"}}, "labels must be unique"),
        ({"account": "111111111111", "region": "eu-west-1", "colour": "red",
          "model": {"labels": ["a", "b"], "artifact_s3_uri": "s3://bucket/k"}}, "colour"),
        ({"account": "111111111111", "region": "eu-west-1",
          "model": {"labels": ["a", "b"], "artifact_s3_uri": "s3://bucket/k", "image_source": "repository"}},
         "image_tag"),
        ({"account": "111111111111", "region": "eu-west-1",
          "model": {"labels": ["a", "b"], "artifact_s3_uri": "s3://bucket/k",
                    "artifact_kms_key_arn": "arn:aws:kms:us-east-1:555555555555:key/k"}},
         "only from its own region"),
        ({"account": "111111111111", "region": "eu-west-1", "clarify": {"num_samples": 6000},
          "model": {"labels": ["a", "b"], "artifact_s3_uri": "s3://bucket/k"}}, "over limits.max_num_samples"),
        ({"account": "111111111111", "region": "eu-west-1", "limits": {"max_num_samples": 1000000},
          "model": {"labels": ["a", "b"], "artifact_s3_uri": "s3://bucket/k"}}, "limits.max_num_samples"),
    ],
)  # fmt: skip
def test_stage_config_errors_name_the_file_and_field(tmp_path, content, message):
    (tmp_path / "bad.json").write_text(json.dumps(content))
    with pytest.raises(ConfigError) as info:
        load_stage("bad", tmp_path)
    assert "bad.json" in str(info.value)
    assert message in str(info.value)


def test_unknown_stage_lists_the_known_ones(tmp_path):
    with pytest.raises(ConfigError, match=r"known stages: \['dev', 'prod', 'staging'\]"):
        load_stage("qa")

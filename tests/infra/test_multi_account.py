"""Multi-account pieces, synthesized: the model-artifact account's grants and the CDK pipeline of the stages."""

from __future__ import annotations

import json

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Annotations, Match, Template

from infra.config import ConfigError, load_stage
from infra.multi_account import (
    ArtifactsConfig,
    ModelArtifactsStack,
    load_json,
    model_role_pattern,
)


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory):
    from app import build_app

    outdir = tmp_path_factory.mktemp("multi")
    app = build_app(outdir=str(outdir), context={"multi_account": "true"})  # as `cdk synth -c multi_account=true`
    config = load_json("artifacts.json", ArtifactsConfig)
    readers = [load_stage(s) for s in config.readers]
    app.synth()
    stacks = {s.node.id: s for s in app.node.children if isinstance(s, cdk.Stack)}
    return {
        "artifacts": stacks["TextExplanations-artifacts"],
        "pipeline": stacks["TextExplanations-pipeline"],
        "support": [s for name, s in stacks.items() if name.startswith("cross-region-stack-")],
        "readers": readers,
        "outdir": outdir,
        "config": config,
    }


@pytest.mark.parametrize("name", ["artifacts", "pipeline", "support"])
def test_cdk_nag_reports_nothing_unsuppressed(synthesized, name):
    """Both packs app.py adds (AwsSolutions, NIST 800-53 R5), over the stacks `synth -c multi_account=true` makes."""
    stacks = synthesized[name] if isinstance(synthesized[name], list) else [synthesized[name]]
    assert stacks
    for stack in stacks:
        annotations = Annotations.from_stack(stack)
        assert [e.entry.data for e in annotations.find_error("*", Match.string_like_regexp(".*"))] == []
        found = annotations.find_warning("*", Match.string_like_regexp("(AwsSolutions|NIST).*"))
        assert [w.entry.data for w in found] == []


@pytest.mark.parametrize("name", ["artifacts", "pipeline"])
def test_wildcard_suppressions_name_their_wildcards(synthesized, name):
    """Even on the roles CDK Pipelines generates, an IAM5 suppression accepts only the wildcards it lists."""
    template = Template.from_stack(synthesized[name]).to_json()
    for logical_id, resource in template["Resources"].items():
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
            if rule["id"] in ("AwsSolutions-IAM4", "AwsSolutions-IAM5"):
                assert rule.get("applies_to"), f"{logical_id}: {rule['id']} suppressed for any finding"


def test_the_artifacts_key_is_exported_and_named_by_the_alias_the_stages_use(synthesized):
    """Its key id is made at deploy time: stages name it by its alias, which the stack creates and outputs."""
    template = Template.from_stack(synthesized["artifacts"]).to_json()
    config = synthesized["config"]
    (alias,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::KMS::Alias"]
    assert alias["Properties"]["AliasName"] == config.key_alias
    outputs = template["Outputs"]
    assert outputs["ArtifactsKeyArn"]["Export"] == {"Name": "text-explainer-models-key-arn"}
    assert outputs["ArtifactsKeyAlias"]["Value"] == config.key_alias_arn
    for stage in synthesized["readers"]:
        assert stage.model.artifact_kms_key_arn == config.key_alias_arn


def test_artifact_bucket_and_key_admit_only_the_stages_model_roles(synthesized):
    template = Template.from_stack(synthesized["artifacts"]).to_json()
    stages = synthesized["readers"]
    grants = [
        st
        for r in template["Resources"].values()
        if r["Type"] == "AWS::S3::BucketPolicy"
        for st in r["Properties"]["PolicyDocument"]["Statement"]
        if "aws:PrincipalArn" in json.dumps(st.get("Condition", {}))
    ]
    assert len(grants) == len(stages)
    for stage in stages:
        (grant,) = [g for g in grants if g["Condition"]["ArnLike"]["aws:PrincipalArn"] == model_role_pattern(stage)]
        assert grant["Action"] == "s3:GetObject"
        assert f":iam::{stage.account}:root" in json.dumps(grant["Principal"])
    (key,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::KMS::Key"]
    decrypt = [st for st in key["Properties"]["KeyPolicy"]["Statement"] if st["Action"] == "kms:Decrypt"]
    assert len(decrypt) == len(stages)
    assert key["Properties"]["EnableKeyRotation"] is True


def test_pipeline_deploys_the_stages_in_order_with_approval_before_prod(synthesized):
    template = Template.from_stack(synthesized["pipeline"]).to_json()
    (pipeline,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::CodePipeline::Pipeline"]
    stages = pipeline["Properties"]["Stages"]
    names = [s["Name"] for s in stages]
    assert names[:2] == ["Source", "Build"]
    assert names[-3:] == ["Dev", "Staging", "Prod"]
    approvals = {s["Name"]: [a for a in s["Actions"] if a["ActionTypeId"]["Category"] == "Approval"] for s in stages}
    assert [name for name, found in approvals.items() if found] == ["Prod"]
    prod = stages[-1]["Actions"]
    deploy_orders = [a["RunOrder"] for a in prod if a["ActionTypeId"]["Category"] == "Deploy"]
    assert approvals["Prod"][0]["RunOrder"] < min(deploy_orders)
    assert pipeline["Properties"]["PipelineType"] == "V2"
    stack_names = [a["Configuration"].get("StackName") for a in prod if a["ActionTypeId"]["Category"] == "Deploy"]
    assert "TextExplanations-prod" in stack_names


def test_artifact_readers_must_use_this_bucket_in_its_region(tmp_path):
    """SageMaker reads a model artifact only in the model's own region: caught at synth, not at deploy."""
    config = load_json("artifacts.json", ArtifactsConfig)
    staging = load_stage("staging")
    elsewhere = staging.model_copy(update={"region": "eu-central-1"})
    with pytest.raises(ConfigError, match="only from its own region"):
        ModelArtifactsStack(cdk.App(outdir=str(tmp_path)), "a", config=config, readers=[elsewhere])
    with pytest.raises(ConfigError, match="not this bucket"):
        ModelArtifactsStack(cdk.App(outdir=str(tmp_path)), "a", config=config, readers=[load_stage("dev")])


def test_a_reader_naming_a_key_that_the_artifacts_stack_does_not_make_is_refused(tmp_path):
    """The artifacts key's id is made at deploy time: a key ARN in a stage config can only be a placeholder."""
    config = load_json("artifacts.json", ArtifactsConfig)
    placeholder = load_stage("staging").model.model_copy(
        update={"artifact_kms_key_arn": "arn:aws:kms:us-east-1:555555555555:key/11111111-2222-3333-4444-555555555555"}
    )
    staging = load_stage("staging").model_copy(update={"model": placeholder})
    with pytest.raises(ConfigError, match="made at deploy"):
        ModelArtifactsStack(cdk.App(outdir=str(tmp_path)), "a", config=config, readers=[staging])

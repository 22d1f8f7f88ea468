"""Multi-account pieces, synthesized: the model-artifact account's grants and the CDK pipeline of the stages."""

from __future__ import annotations

import json
import subprocess
import sys

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Annotations, Match, Template
from cdk_nag import AwsSolutionsChecks

from infra.config import ConfigError, load_stage
from infra.multi_account import (
    ArtifactsConfig,
    ModelArtifactsStack,
    PipelineConfig,
    PipelineStack,
    load_json,
    model_role_pattern,
)


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory):
    from app import new_app

    outdir = tmp_path_factory.mktemp("multi")
    app = new_app(str(outdir))
    config = load_json("artifacts.json", ArtifactsConfig)
    readers = [load_stage(s) for s in config.readers]
    artifacts = ModelArtifactsStack(app, "TextExplanations-artifacts", config=config, readers=readers)
    pipeline = PipelineStack(app, "TextExplanations-pipeline", config=load_json("pipeline.json", PipelineConfig))
    cdk.Aspects.of(app).add(AwsSolutionsChecks())
    app.synth()
    return {"artifacts": artifacts, "pipeline": pipeline, "readers": readers, "outdir": outdir}


@pytest.mark.parametrize("name", ["artifacts", "pipeline"])
def test_cdk_nag_reports_nothing_unsuppressed(synthesized, name):
    annotations = Annotations.from_stack(synthesized[name])
    assert [e.entry.data for e in annotations.find_error("*", Match.string_like_regexp(".*"))] == []
    assert [w.entry.data for w in annotations.find_warning("*", Match.string_like_regexp("AwsSolutions.*"))] == []


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


def test_cfn_lint_on_the_multi_account_templates(synthesized):
    templates = sorted(str(p) for p in synthesized["outdir"].glob("*.template.json"))
    result = subprocess.run(
        [sys.executable, "-m", "cfnlint", "--format", "json", *templates], capture_output=True, text=True
    )
    assert [f for f in json.loads(result.stdout or "[]") if f["Level"] == "Error"] == []


def test_artifact_readers_must_use_this_bucket_in_its_region(tmp_path):
    """SageMaker reads a model artifact only in the model's own region: caught at synth, not at deploy."""
    config = load_json("artifacts.json", ArtifactsConfig)
    staging = load_stage("staging")
    elsewhere = staging.model_copy(update={"region": "eu-central-1"})
    with pytest.raises(ConfigError, match="only from its own region"):
        ModelArtifactsStack(cdk.App(outdir=str(tmp_path)), "a", config=config, readers=[elsewhere])
    with pytest.raises(ConfigError, match="not this bucket"):
        ModelArtifactsStack(cdk.App(outdir=str(tmp_path)), "a", config=config, readers=[load_stage("dev")])

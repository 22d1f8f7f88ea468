"""Multi-account pieces: the model-artifact account's grants, and the CDK pipeline that deploys the stages.

- ``ModelArtifactsStack`` (deployed in the account that owns model artifacts): a KMS-encrypted bucket whose
  bucket and key policies let only the model execution roles of the listed stages read it.
- ``PipelineStack`` (deployed in a tooling account): CDK Pipelines deploying the stages in the order of
  ``config/pipeline.json``, with a manual approval before prod. Stage accounts are bootstrapped with
  ``cdk bootstrap --trust <tooling account>`` (docs/deploy.md).
"""

from __future__ import annotations

import json

import aws_cdk as cdk
from aws_cdk import Duration, RemovalPolicy, Stack, Stage, pipelines
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct
from pydantic import BaseModel, ConfigDict, Field

from infra.config import ROOT, ConfigError, StageConfig, load_stage
from infra.constructs.model import model_role_path
from infra.constructs.policies import resource_regex
from infra.stack import add_stage_stacks


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# The pipeline's own build: the suite, then the synth of every stack the pipeline deploys (itself and the stages).
# Without `-c multi_account=true` the synth holds no pipeline, and self-mutation and the stage deploys find nothing.
SYNTH_COMMANDS = ["make test", "npx aws-cdk@2 synth -c multi_account=true"]


class ArtifactsConfig(_Strict):
    account: str = Field(pattern=r"^\d{12}$")
    region: str
    bucket_name: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{2,62}$")
    # the artifacts key's alias: its key id is made at deploy time, so stages name the key by this alias
    key_alias: str = Field("alias/text-explainer-models", pattern=r"^alias/[a-zA-Z0-9/_-]{1,250}$")
    readers: list[str]  # stage names whose model roles may read

    @property
    def key_alias_arn(self) -> str:
        return f"arn:aws:kms:{self.region}:{self.account}:{self.key_alias}"


class PipelineConfig(_Strict):
    account: str = Field(pattern=r"^\d{12}$")
    region: str
    repository: str  # owner/name of the source repository
    branch: str = "main"
    connection_arn: str  # a CodeStar / CodeConnections connection to the repository
    stages: list[str]  # deployment order; the last one is production and waits for approval


def model_role_pattern(stage: StageConfig) -> str:
    """The stage's model role, by the IAM path the stage gives it (aws:PrincipalArn carries a role's path): not by
    the name CloudFormation generates for it, whose form no document promises."""
    return f"arn:aws:iam::{stage.account}:role{model_role_path(stage.stage)}*"


def _check_readers(config: ArtifactsConfig, readers: list[StageConfig]) -> None:
    """Each reader stage must take its artifact from this bucket, in this bucket's region, decrypted with its key."""
    for stage in readers:
        uri = stage.model.artifact_s3_uri or ""
        if not uri.startswith(f"s3://{config.bucket_name}/"):
            raise ConfigError(f"stage {stage.stage} reads its model from {uri or 'a local file'}, not this bucket")
        if stage.model.artifact_kms_key_arn != config.key_alias_arn:
            raise ConfigError(
                f"stage {stage.stage}: model.artifact_kms_key_arn is {stage.model.artifact_kms_key_arn!r}; the "
                f"artifacts bucket is encrypted with the key behind {config.key_alias_arn} (a key id made at deploy "
                "time)"
            )
        if stage.region != config.region:
            raise ConfigError(
                f"stage {stage.stage} is in {stage.region} and the artifacts bucket in {config.region}: SageMaker "
                "reads a model artifact only from its own region"
            )


class ModelArtifactsStack(Stack):
    def __init__(self, scope: Construct, id: str, *, config: ArtifactsConfig, readers: list[StageConfig]):
        _check_readers(config, readers)
        super().__init__(scope, id, env=cdk.Environment(account=config.account, region=config.region))
        key = kms.Key(
            self,
            "ArtifactsKey",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
            alias=config.key_alias,
            description="Encrypts the model artifacts the stages read",
        )
        logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(365))],
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.bucket = s3.Bucket(
            self,
            "Artifacts",
            bucket_name=config.bucket_name,  # other accounts' stage configs refer to it by name
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            server_access_logs_bucket=logs,
            removal_policy=RemovalPolicy.RETAIN,
        )
        for stage in readers:
            principal = iam.AccountPrincipal(stage.account)
            condition = {"ArnLike": {"aws:PrincipalArn": model_role_pattern(stage)}}
            self.bucket.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=f"ModelRoleOf{stage.stage.title()}",
                    principals=[principal],
                    actions=["s3:GetObject"],
                    resources=[self.bucket.arn_for_objects("*")],
                    conditions=condition,
                )
            )
            if stage.explainer.engine == "builtin":
                # the builtin job takes the artifact as an S3Prefix processing input, which SageMaker lists
                artifact_key = stage.model.artifact_s3_uri.removeprefix(f"s3://{config.bucket_name}/")
                self.bucket.add_to_resource_policy(
                    iam.PolicyStatement(
                        sid=f"ListArtifactFor{stage.stage.title()}",
                        principals=[principal],
                        actions=["s3:ListBucket"],
                        resources=[self.bucket.bucket_arn],
                        conditions={**condition, "StringEquals": {"s3:prefix": artifact_key}},
                    )
                )
            key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=f"DecryptFor{stage.stage.title()}",
                    principals=[principal],
                    actions=["kms:Decrypt"],
                    resources=["*"],  # in a key policy, "*" is this key
                    conditions={**condition, "StringEquals": {"kms:ViaService": f"s3.{config.region}.amazonaws.com"}},
                )
            )
        self.key = key
        cdk.CfnOutput(self, "ArtifactsBucketName", value=self.bucket.bucket_name)
        cdk.CfnOutput(self, "ArtifactsKeyArn", value=key.key_arn, export_name="text-explainer-models-key-arn")
        cdk.CfnOutput(self, "ArtifactsKeyAlias", value=config.key_alias_arn)
        for bucket in (self.bucket, logs):
            NagSuppressions.add_resource_suppressions(
                bucket,
                [
                    NagPackSuppression(
                        id="NIST.800.53.R5-S3BucketReplicationEnabled",
                        reason="model artifacts are reproducible from training and versioned here; a copy in another "
                        "region is of no use to SageMaker, which reads an artifact only in its own region",
                    )
                ],
            )
        NagSuppressions.add_resource_suppressions(
            logs,
            [
                NagPackSuppression(
                    id="NIST.800.53.R5-S3DefaultEncryptionKMS",
                    reason="S3 server access logs cannot be delivered to a bucket encrypted with SSE-KMS; SSE-S3 is "
                    "the strongest encryption the log delivery supports",
                ),
                NagPackSuppression(
                    id="NIST.800.53.R5-S3BucketLoggingEnabled",
                    reason="this is the access-log bucket of the artifacts bucket; logging it into itself would loop",
                ),
            ],
        )


class ExplanationStage(Stage):
    def __init__(self, scope: Construct, id: str, *, config: StageConfig):
        super().__init__(scope, id, env=cdk.Environment(account=config.account, region=config.region))
        # the same stacks and names as a direct deploy, so roles and outputs are named alike
        add_stage_stacks(self, config)


class PipelineStack(Stack):
    def __init__(self, scope: Construct, id: str, *, config: PipelineConfig):
        super().__init__(scope, id, env=cdk.Environment(account=config.account, region=config.region))
        source = pipelines.CodePipelineSource.connection(
            config.repository, config.branch, connection_arn=config.connection_arn
        )
        self.pipeline = pipelines.CodePipeline(
            self,
            "Pipeline",
            cross_account_keys=True,  # artifacts encrypted with a key the stage accounts may use
            enable_key_rotation=True,
            pipeline_type=codepipeline.PipelineType.V2,
            synth=pipelines.ShellStep("Synth", input=source, commands=SYNTH_COMMANDS),
        )
        self._stages(config)
        self.pipeline.build_pipeline()  # now, so its generated roles exist to be annotated below
        NagSuppressions.add_resource_suppressions(self.pipeline, PIPELINE_FINDINGS, apply_to_children=True)
        # CodePipeline adds a support stack (its replication bucket and key) for each other region it deploys to
        for support in cross_region_support_stacks(self):
            NagSuppressions.add_stack_suppressions(support, SUPPORT_STACK_FINDINGS, apply_to_nested_stacks=True)

    def _stages(self, config: PipelineConfig) -> None:
        last = config.stages[-1]
        for name in config.stages:
            approval = [pipelines.ManualApprovalStep(f"Promote to {name}")] if name == last else []
            self.pipeline.add_stage(ExplanationStage(self, name.title(), config=load_stage(name)), pre=approval)


PIPELINE_FINDINGS = [
    NagPackSuppression(
        id="AwsSolutions-IAM5",
        reason="CDK Pipelines generates these roles and grants: its artifact and cross-region replication buckets "
        "and their key (CDK's grant actions s3:GetObject*, s3:List*, kms:GenerateDataKey*, ...), CodeBuild log groups "
        "and report groups named per project, starting its CodeBuild builds and describing stacks (Resource::*), and "
        "self-mutation assuming the cdk bootstrap roles of the stage accounts (arn:*:iam::<account>:role/*)",
        applies_to=[
            *(
                f"Action::{action}"
                for action in (
                    "kms:GenerateDataKey*",
                    "kms:ReEncrypt*",
                    "s3:Abort*",
                    "s3:DeleteObject*",
                    "s3:GetBucket*",
                    "s3:GetObject*",
                    "s3:List*",
                )
            ),
            "Resource::*",
            resource_regex(r"^Resource::<PipelineArtifactsBucket[A-F0-9]{8}\.Arn>\/\*$"),
            resource_regex(r"^Resource::arn:aws[a-z-]*:s3:::[a-z0-9-]+pipeline[a-z0-9]*bucket[a-z0-9]+\/\*$"),
            resource_regex(r"^Resource::arn:\*:iam::\d{12}:role\/\*$"),
            resource_regex(
                r"^Resource::arn:aws[a-z-]*:codebuild:[a-z0-9-]+:\d{12}:report-group\/(<Pipeline[A-Za-z]+[A-F0-9]{8}>-)?\*$"
            ),
            resource_regex(
                r"^Resource::arn:aws[a-z-]*:logs:[a-z0-9-]+:\d{12}:log-group:\/aws\/codebuild\/"
                r"(\*|<Pipeline[A-Za-z]+[A-F0-9]{8}>:\*)$"
            ),
        ],
    ),
    NagPackSuppression(
        id="NIST.800.53.R5-IAMNoInlinePolicy",
        reason="CDK Pipelines writes one policy per generated role (source, build, assets, self-mutation, pipeline), "
        "each for that role's own action; shared managed policies could only be broader",
    ),
    *[
        NagPackSuppression(
            id=rule,
            reason="the pipeline artifact bucket holds transient build artifacts, read and written only by "
            "the pipeline's roles; it is KMS-encrypted with a rotating key and TLS-only, and every artifact is "
            "rebuilt from the source repository",
        )
        for rule in (
            "AwsSolutions-S1",
            "NIST.800.53.R5-S3BucketLoggingEnabled",
            "NIST.800.53.R5-S3BucketReplicationEnabled",
            "NIST.800.53.R5-S3BucketVersioningEnabled",
        )
    ],
]
SUPPORT_STACK_FINDINGS = [
    NagPackSuppression(
        id=rule,
        reason="CodePipeline's cross-region replication bucket: it holds copies of the pipeline's transient "
        "artifacts for deploy actions in that region, KMS-encrypted, rebuilt on every pipeline run",
    )
    for rule in (
        "AwsSolutions-S1",
        "NIST.800.53.R5-S3BucketLoggingEnabled",
        "NIST.800.53.R5-S3BucketReplicationEnabled",
        "NIST.800.53.R5-S3BucketVersioningEnabled",
    )
]


def cross_region_support_stacks(pipeline_stack: Stack) -> list[Stack]:
    app = pipeline_stack.node.scope
    return [c for c in app.node.children if isinstance(c, Stack) and c.node.id.startswith("cross-region-stack-")]


def load_json(name: str, model):
    return model.model_validate(json.loads((ROOT / "config" / name).read_text(encoding="utf-8")))

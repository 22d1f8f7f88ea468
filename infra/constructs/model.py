"""The container image and the SageMaker model Clarify explains."""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import ArnFormat, CfnDeletionPolicy, Stack
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from explain_workflow.contract import project_name
from infra.config import ROOT, HostingSettings, ModelSettings
from infra.constructs.policies import accept_inline_policy, allow_wildcards, resource_regex
from infra.images import blazingtext_image_uri


def model_role_path(stage: str) -> str:
    """The IAM path of a stage's model role. Another account's artifacts grant names the role by this path
    (``role/<path>*``), which is ours to set; the name CloudFormation generates is not (its form is undocumented)."""
    return f"/{project_name(stage)}/model/"


def split_s3_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


class ModelHosting(Construct):
    """The BYOC image (an asset, or a tag in the stage's repository) and a network-isolated model."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: ModelSettings,
        hosting: HostingSettings,
        repository_name: str,
        role_path: str,
        max_text_chars: int,
        image_context: Path = ROOT,
    ):
        super().__init__(scope, id)
        stack = Stack.of(self)
        self.role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="The text model: pull its image, read its artifact, write its logs",
            path=role_path,
        )
        if settings.image_source == "asset":
            # the checkout is the build context; its .dockerignore admits (and CDK hashes) only what the image copies
            asset = ecr_assets.DockerImageAsset(
                self, "Image", directory=str(image_context), file="container/Dockerfile"
            )
            asset.repository.grant_pull(self.role)
            image = asset.image_uri
            self._image_repository: ecr.IRepository = asset.repository
        else:  # the tag your CI pushed to the stage's repository (its own stack, deployed first)
            repository = ecr.Repository.from_repository_name(self, "Repository", repository_name)
            repository.grant_pull(self.role)
            image = repository.repository_uri_for_tag(settings.image_tag)
            self._image_repository = repository

        if settings.artifact_path:
            artifact = s3_assets.Asset(self, "Artifact", path=str(ROOT / settings.artifact_path))
            artifact.grant_read(self.role)
            model_data_url = artifact.s3_object_url
            self._artifact_object = (artifact.s3_bucket_name, artifact.s3_object_key)
        else:
            bucket, key = split_s3_uri(settings.artifact_s3_uri)
            self.role.add_to_policy(
                iam.PolicyStatement(
                    actions=["s3:GetObject"],
                    resources=[
                        stack.format_arn(service="s3", region="", account="", resource=bucket, resource_name=key)
                    ],
                )
            )
            model_data_url = settings.artifact_s3_uri
            self._artifact_object = (bucket, key)
        self._artifact_kms_key_arn = settings.artifact_kms_key_arn
        if settings.artifact_kms_key_arn:
            statement = artifact_key_statement(settings.artifact_kms_key_arn)
            self.role.add_to_policy(statement)
            if statement.sid == "ArtifactKeyByAlias":
                allow_wildcards(
                    self.role,
                    reason="an artifact key named by its alias is any key of that account and region carrying the "
                    "alias (kms:ResourceAliases), which the key's own policy narrows to this stage's model role",
                    applies_to=[resource_regex(r"^Resource::arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/\*$")],
                )
        log_groups = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name="/aws/sagemaker/Endpoints/*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[log_groups, f"{log_groups}:log-stream:*"],
            )
        )
        labels = json.dumps(settings.labels)
        # every property of a SageMaker model is create-only: a new image, artifact (version) or label set replaces
        # the model, which CloudFormation can do only because the model's name is generated
        ours = {
            "LABELS": labels,
            # the stage's one text limit (limits.max_text_chars), which prepare applies too: without it the container
            # keeps its default, and a stage that raises the limit admits texts its endpoint refuses with 413
            "MAX_TEXT_CHARS": str(max_text_chars),
            **({"ARTIFACT_VERSION": settings.artifact_version} if settings.artifact_version else {}),
        }
        if hosting.mode == "byoc":
            containers = {
                "primary_container": sagemaker.CfnModel.ContainerDefinitionProperty(
                    image=image, model_data_url=model_data_url, environment=ours
                )
            }
        else:  # the "pipeline" mode: our adapters around AWS's built-in BlazingText container, in series
            containers = {
                "containers": [
                    sagemaker.CfnModel.ContainerDefinitionProperty(
                        image=image, environment={"SERVE_MODE": "pre-adapter", **ours}
                    ),
                    sagemaker.CfnModel.ContainerDefinitionProperty(
                        image=blazingtext_image_uri(stack.region), model_data_url=model_data_url
                    ),
                    sagemaker.CfnModel.ContainerDefinitionProperty(
                        image=image, environment={"SERVE_MODE": "post-adapter", **ours}
                    ),
                ],
                "inference_execution_config": sagemaker.CfnModel.InferenceExecutionConfigProperty(mode="Serial"),
            }
        self.model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=self.role.role_arn,
            enable_network_isolation=True,
            **containers,
        )
        # a run started before an update names the model it started with (its execution input, its Clarify and
        # transform jobs): a replaced model is kept, not deleted under it; a model costs nothing while unused. Deleting
        # the stack still deletes the current model.
        self.model.cfn_options.update_replace_policy = CfnDeletionPolicy.RETAIN
        self.model.cfn_options.deletion_policy = CfnDeletionPolicy.DELETE
        # the role must hold its permissions before SageMaker checks image and artifact access
        self.model.node.add_dependency(self.role.node.find_child("DefaultPolicy"))
        # what the builtin explanation job runs (workflow.py): the model's own image, artifact and environment
        self.image_uri, self.artifact_s3_uri, self.environment = image, model_data_url, ours
        self.model_name = self.model.attr_model_name  # generated by CloudFormation, new with each replacement
        self.model_arn = self.model.attr_model_arn
        # MODEL_IDENTITY: what decides the model's answers; a run's id includes it
        self.identity = {
            "model_name": self.model_name,
            "image": image,
            "artifact": model_data_url,
            "artifact_version": settings.artifact_version,
            "labels": list(settings.labels),
        }
        accept_inline_policy(self.role)
        allow_wildcards(
            self.role,
            reason="ecr:GetAuthorizationToken (of the image pull) has no resource-level permissions; endpoint log "
            "groups are named by SageMaker at endpoint creation (/aws/sagemaker/Endpoints/<temporary name>)",
            applies_to=[
                "Resource::*",
                resource_regex(
                    r"^Resource::arn:aws[a-z-]*:logs:[a-z0-9-]+:\d+:log-group:\/aws\/sagemaker\/Endpoints\/\*.*$"
                ),
            ],
        )

    def grant_model_use(self, role: iam.Role) -> None:
        """What a job that runs this model in its own image needs: pull the image, read the artifact (and list its
        key: SageMaker lists an S3Prefix processing input), decrypt it through S3 with its key when it has one."""
        stack = Stack.of(self)
        self._image_repository.grant_pull(role)
        bucket, key = self._artifact_object
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadModelArtifact",
                actions=["s3:GetObject"],
                resources=[stack.format_arn(service="s3", region="", account="", resource=bucket, resource_name=key)],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ListModelArtifact",
                actions=["s3:ListBucket"],
                resources=[stack.format_arn(service="s3", region="", account="", resource=bucket)],
                conditions={"StringEquals": {"s3:prefix": key}},
            )
        )
        if self._artifact_kms_key_arn:
            statement = artifact_key_statement(self._artifact_kms_key_arn)
            role.add_to_policy(statement)
            if statement.sid == "ArtifactKeyByAlias":
                allow_wildcards(
                    role,
                    reason="an artifact key named by its alias is any key of that account and region carrying the "
                    "alias (kms:ResourceAliases), which the key's own policy narrows to this stage's model path",
                    applies_to=[resource_regex(r"^Resource::arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/\*$")],
                )


def artifact_key_statement(key_or_alias_arn: str) -> iam.PolicyStatement:
    """kms:Decrypt of the artifact's key, through S3 only.

    A key ARN is granted as such. An alias ARN names a key that another stack (ModelArtifactsStack) creates with an id
    nobody knows in advance: the grant then covers the keys of that account and region that carry the alias
    (kms:ResourceAliases), which the key's own policy narrows to this stage's model role.
    """
    partition, region, account, resource = (lambda p: (p[1], p[3], p[4], p[5]))(key_or_alias_arn.split(":", 5))
    via_s3 = {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}}
    if resource.startswith("key/"):
        return iam.PolicyStatement(actions=["kms:Decrypt"], resources=[key_or_alias_arn], conditions=via_s3)
    return iam.PolicyStatement(
        sid="ArtifactKeyByAlias",
        actions=["kms:Decrypt"],
        resources=[f"arn:{partition}:kms:{region}:{account}:key/*"],
        conditions={**via_s3, "ForAnyValue:StringEquals": {"kms:ResourceAliases": [resource]}},
    )

"""The container image and the SageMaker model Clarify explains."""

from __future__ import annotations

import json

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from cdk_nag import NagSuppressions
from constructs import Construct

from infra.config import ROOT, HostingSettings, ModelSettings
from infra.images import blazingtext_image_uri


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
        model_name: str,
    ):
        super().__init__(scope, id)
        # a fixed, lower-case name: the workflow's analysis config and the job role's IAM refer to it
        self.model_name = model_name
        stack = Stack.of(self)
        self.role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="The text model: pull its image, read its artifact, write its logs",
        )
        if settings.image_source == "asset":
            asset = ecr_assets.DockerImageAsset(self, "Image", directory=str(ROOT / "container"))
            asset.repository.grant_pull(self.role)
            image = asset.image_uri
        else:  # the tag your CI pushed to the stage's repository (its own stack, deployed first)
            repository = ecr.Repository.from_repository_name(self, "Repository", repository_name)
            repository.grant_pull(self.role)
            image = repository.repository_uri_for_tag(settings.image_tag)

        if settings.artifact_path:
            artifact = s3_assets.Asset(self, "Artifact", path=str(ROOT / settings.artifact_path))
            artifact.grant_read(self.role)
            model_data_url = artifact.s3_object_url
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
        if settings.artifact_kms_key_arn:
            self.role.add_to_policy(
                iam.PolicyStatement(actions=["kms:Decrypt"], resources=[settings.artifact_kms_key_arn])
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
        if hosting.mode == "byoc":
            containers = {
                "primary_container": sagemaker.CfnModel.ContainerDefinitionProperty(
                    image=image, model_data_url=model_data_url, environment={"LABELS": labels}
                )
            }
        else:  # Option A: our adapters around AWS's built-in BlazingText container, in series
            containers = {
                "containers": [
                    sagemaker.CfnModel.ContainerDefinitionProperty(
                        image=image, environment={"SERVE_MODE": "pre-adapter", "LABELS": labels}
                    ),
                    sagemaker.CfnModel.ContainerDefinitionProperty(
                        image=blazingtext_image_uri(stack.region), model_data_url=model_data_url
                    ),
                    sagemaker.CfnModel.ContainerDefinitionProperty(
                        image=image, environment={"SERVE_MODE": "post-adapter", "LABELS": labels}
                    ),
                ],
                "inference_execution_config": sagemaker.CfnModel.InferenceExecutionConfigProperty(mode="Serial"),
            }
        self.model = sagemaker.CfnModel(
            self,
            "Model",
            model_name=model_name,
            execution_role_arn=self.role.role_arn,
            enable_network_isolation=True,
            **containers,
        )
        # the role must hold its permissions before SageMaker checks image and artifact access
        self.model.node.add_dependency(self.role.node.find_child("DefaultPolicy"))
        NagSuppressions.add_resource_suppressions(
            self.role,
            [
                {
                    "id": "AwsSolutions-IAM5",
                    "reason": "ecr:GetAuthorizationToken has no resource-level permissions; endpoint log groups are "
                    "named by SageMaker at endpoint creation (/aws/sagemaker/Endpoints/<temporary name>)",
                },
            ],
            apply_to_children=True,
        )

"""The stage's ECR repository for the model image, in a stack of its own.

A model that pulls ``<repository>:<tag>`` can only be created once that tag exists, and a tag can only be pushed once
the repository exists: so the repository is deployed first, by its own stack, under a fixed name that CI pushes to.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Environment, RemovalPolicy, Stack, Tags
from aws_cdk import aws_ecr as ecr
from constructs import Construct

from infra.config import StageConfig


def image_repository_name(config: StageConfig) -> str:
    return f"text-explanations-{config.stage}"


class ImageRepositoryStack(Stack):
    """Immutable tags, scan on push, KMS encryption, lifecycle rules; retained in stages that retain data."""

    def __init__(self, scope: Construct, id: str, *, config: StageConfig, **kwargs):
        super().__init__(scope, id, env=Environment(account=config.account, region=config.region), **kwargs)
        Tags.of(self).add("project", "clarify-text-explanations")
        Tags.of(self).add("stage", config.stage)
        self.repository = ecr.Repository(
            self,
            "Repository",
            repository_name=image_repository_name(config),
            image_tag_mutability=ecr.TagMutability.IMMUTABLE,
            image_scan_on_push=True,
            encryption=ecr.RepositoryEncryption.KMS,
            removal_policy=RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY,
            lifecycle_rules=[
                ecr.LifecycleRule(
                    description="drop untagged layers",
                    tag_status=ecr.TagStatus.UNTAGGED,
                    max_image_age=Duration.days(14),
                ),
                ecr.LifecycleRule(description="keep the newest 20 images", max_image_count=20),
            ],
        )
        CfnOutput(self, "RepositoryUri", value=self.repository.repository_uri)

"""The stage's ECR repository for the model image (its own stack deploys it before the stage: infra/stack.py)."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ecr as ecr
from constructs import Construct


class ImageRepository(Construct):
    """Fixed name, immutable tags, scan on push, KMS encryption, lifecycle rules; retained where data is."""

    def __init__(self, scope: Construct, id: str, *, repository_name: str, retain: bool):
        super().__init__(scope, id)
        self.repository = ecr.Repository(
            self,
            "Repository",
            repository_name=repository_name,
            image_tag_mutability=ecr.TagMutability.IMMUTABLE,
            image_scan_on_push=True,
            encryption=ecr.RepositoryEncryption.KMS,
            removal_policy=RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY,
            # a repository with images cannot be deleted: where the stage keeps no data, empty it on delete
            empty_on_delete=not retain,
            lifecycle_rules=[
                ecr.LifecycleRule(
                    description="drop untagged layers",
                    tag_status=ecr.TagStatus.UNTAGGED,
                    max_image_age=Duration.days(14),
                ),
                ecr.LifecycleRule(description="keep the newest 20 images", max_image_count=20),
            ],
        )

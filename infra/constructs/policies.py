"""IAM statements several constructs grant, and the cdk-nag wording for the wildcards they contain.

Each helper returns exactly the actions its use needs (CDK's ``grant_*`` methods would add wildcard actions); the
constructs that attach a statement with a wildcard resource suppress AwsSolutions-IAM5 for that resource pattern only,
next to the grant (``allow_wildcards``).
"""

from __future__ import annotations

import re

from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import IConstruct

from explain_workflow.contract import READABLE_PREFIXES, RUNS_PREFIX


def job_run_access(results_bucket: s3.IBucket, *, reads: list[str], writes: str) -> list[iam.PolicyStatement]:
    """What a SageMaker job's role needs of a run: read ``runs/*/<reads>/``, write ``runs/*/<writes>/``, list runs/."""
    return [
        iam.PolicyStatement(
            actions=["s3:GetObject"], resources=[results_bucket.arn_for_objects(f"{RUNS_PREFIX}*/{p}/*") for p in reads]
        ),
        iam.PolicyStatement(
            actions=["s3:PutObject", "s3:AbortMultipartUpload"],
            resources=[results_bucket.arn_for_objects(f"{RUNS_PREFIX}*/{writes}/*")],
        ),
        iam.PolicyStatement(
            actions=["s3:ListBucket"],
            resources=[results_bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{RUNS_PREFIX}*"]}},
        ),
    ]


def read_input_objects(input_bucket: s3.IBucket) -> iam.PolicyStatement:
    """Read access to the input keys a run may name (incoming/ and the CLI's uploads/), nothing else there."""
    return iam.PolicyStatement(
        actions=["s3:GetObject", "s3:GetObjectVersion"],
        resources=[input_bucket.arn_for_objects(f"{prefix}*") for prefix in READABLE_PREFIXES],
    )


def grant_for_aws_resources(key: kms.IKey) -> iam.PolicyStatement:
    """kms:CreateGrant only for grants an AWS service makes on the caller's behalf (SageMaker's encrypted volumes)."""
    return iam.PolicyStatement(
        actions=["kms:CreateGrant"], resources=[key.key_arn], conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}}
    )


def use_key(key: kms.IKey, *extra: str) -> iam.PolicyStatement:
    """Exactly the KMS actions S3 SSE-KMS reads and writes need (grant_encrypt_decrypt uses wildcards)."""
    return iam.PolicyStatement(
        actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", *extra], resources=[key.key_arn]
    )


# ---- cdk-nag: how the findings about these statements are accepted ----


def resource_regex(pattern: str) -> dict:
    """An ``applies_to`` entry matching IAM5 finding ids (``Resource::<arn>``) by a regular expression."""
    return {"regex": f"/{pattern}/g"}


def readable_inputs_regex() -> dict:
    """The IAM5 finding of ``read_input_objects``: ``<input bucket>/<prefix>*`` for each readable prefix."""
    prefixes = "|".join(re.escape(p.rstrip("/")) for p in READABLE_PREFIXES)
    return resource_regex(rf"^Resource::<StorageInput[A-Z0-9]+\.Arn>\/({prefixes})\/\*$")


def allow_wildcards(role: IConstruct, *, reason: str, applies_to: list[str | dict]) -> None:
    """Accept AwsSolutions-IAM5 on ``role`` (and its default policy) for exactly the wildcard resources listed."""
    NagSuppressions.add_resource_suppressions(
        role, [NagPackSuppression(id="AwsSolutions-IAM5", reason=reason, applies_to=applies_to)], apply_to_children=True
    )


def accept_inline_policy(role: iam.IRole) -> None:
    """NIST.800.53.R5-IAMNoInlinePolicy on a role whose policy CDK generates from this stack's grants."""
    NagSuppressions.add_resource_suppressions(
        role,
        [
            NagPackSuppression(
                id="NIST.800.53.R5-IAMNoInlinePolicy",
                reason=f"{role.node.path}: its policy is generated for this one role from grants on this "
                "stack's own resources; a managed policy would be shared and could only be broader",
            )
        ],
        apply_to_children=True,
    )

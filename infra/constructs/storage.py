"""Buckets and their key: input (incoming/), results (runs/), and server access logs."""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from explain_workflow.contract import RUNS_PREFIX


class ExplanationStorage(Construct):
    """KMS-encrypted, TLS-only, private buckets; EventBridge notifications on the input bucket."""

    def __init__(self, scope: Construct, id: str, *, retain: bool, results_expire_days: int):
        super().__init__(scope, id)
        removal = RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY
        self.key = kms.Key(
            self,
            "DataKey",
            description="Encrypts explanation inputs, results, logs and notifications",
            enable_key_rotation=True,
            removal_policy=removal,
        )
        # CloudWatch Logs creates a KMS-encrypted log group only if the key policy admits its regional service,
        # limited here to log groups of this account and region.
        stack = Stack.of(self)
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchLogsOfThisAccount",
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
                actions=[
                    "kms:Encrypt",
                    "kms:Decrypt",
                    "kms:ReEncryptFrom",
                    "kms:ReEncryptTo",
                    "kms:GenerateDataKey",
                    "kms:GenerateDataKeyWithoutPlaintext",
                    "kms:DescribeKey",
                ],
                resources=["*"],  # in a key policy, "*" is this key
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": stack.format_arn(
                            service="logs",
                            resource="log-group",
                            resource_name="*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    }
                },
            )
        )
        common = {
            "block_public_access": s3.BlockPublicAccess.BLOCK_ALL,
            "enforce_ssl": True,
            "removal_policy": removal,
            # a stage that keeps no data (dev) must also be deletable once it has data: versioned buckets are emptied
            # (every version) by CDK's auto-delete handler when the stack is deleted
            "auto_delete_objects": not retain,
            "object_ownership": s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        }
        # Server access logs cannot be delivered to an SSE-KMS bucket: S3-managed keys here.
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(expiration=Duration.days(365), noncurrent_version_expiration=Duration.days(30))
            ],
            **common,
        )
        data = {
            **common,
            "encryption": s3.BucketEncryption.KMS,
            "encryption_key": self.key,
            "bucket_key_enabled": True,
            "versioned": True,
            "server_access_logs_bucket": self.access_logs,
        }
        abort_uploads = s3.LifecycleRule(abort_incomplete_multipart_upload_after=Duration.days(7))
        self.input_bucket = s3.Bucket(
            self,
            "Input",
            event_bridge_enabled=True,
            server_access_logs_prefix="input/",
            lifecycle_rules=[s3.LifecycleRule(noncurrent_version_expiration=Duration.days(30)), abort_uploads],
            **data,
        )
        self.results_bucket = s3.Bucket(
            self,
            "Results",
            server_access_logs_prefix="results/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    prefix=RUNS_PREFIX,
                    expiration=Duration.days(results_expire_days),
                    noncurrent_version_expiration=Duration.days(7),
                ),
                abort_uploads,
            ],
            **data,
        )
        for bucket in (self.input_bucket, self.results_bucket, self.access_logs):
            NagSuppressions.add_resource_suppressions(
                bucket,
                [
                    NagPackSuppression(
                        id="NIST.800.53.R5-S3BucketReplicationEnabled",
                        reason=f"{bucket.node.id}: versioned in one region; inputs are the users' own uploads and "
                        "results are reproducible from them, so a cross-region copy is a per-team choice",
                    )
                ],
            )
        NagSuppressions.add_resource_suppressions(
            self.access_logs,
            [
                NagPackSuppression(
                    id="NIST.800.53.R5-S3DefaultEncryptionKMS",
                    reason="S3 server access logs cannot be delivered to a bucket encrypted with SSE-KMS; SSE-S3 is "
                    "the strongest encryption the log delivery supports",
                )
            ],
        )
        _accept_notifications_handler(self.input_bucket)


def _accept_notifications_handler(bucket: s3.Bucket) -> None:
    """What CDK adds to switch on EventBridge notifications of ``bucket``: a policy on the bucket, and a singleton
    Lambda at the stack's root that applies it at deployment."""
    NagSuppressions.add_resource_suppressions(
        bucket.node.find_child("Notifications").node.find_child("HandlerPolicy"),
        [
            NagPackSuppression(
                id="NIST.800.53.R5-IAMNoInlinePolicy",
                reason="CDK's bucket-notifications policy for the input bucket: s3:PutBucketNotification on that "
                "bucket only, attached to CDK's singleton handler role",
            )
        ],
        apply_to_children=True,
    )
    for child in Stack.of(bucket).node.children:
        if child.node.id.startswith("BucketNotificationsHandler"):
            # Lambda's default memory, said explicitly (cfn-lint-serverless ES1005 asks every function to size itself)
            function = child.node.try_find_child("Resource")
            if function is not None:
                function.add_property_override("MemorySize", 128)
            NagSuppressions.add_resource_suppressions(
                child,
                [
                    NagPackSuppression(
                        id="AwsSolutions-IAM4",
                        reason="CDK's own bucket-notifications custom resource uses AWSLambdaBasicExecutionRole; it "
                        "runs only at deployment to switch on EventBridge notifications of the input bucket",
                        applies_to=[
                            "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
                        ],
                    ),
                    NagPackSuppression(
                        id="NIST.800.53.R5-IAMNoInlinePolicy",
                        reason="CDK's bucket-notifications custom resource: its inline policy allows "
                        "s3:PutBucketNotification only",
                    ),
                ],
                apply_to_children=True,
            )

"""Buckets and their key: input (incoming/), results (runs/), and server access logs."""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct


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
                    prefix="runs/",
                    expiration=Duration.days(results_expire_days),
                    noncurrent_version_expiration=Duration.days(7),
                ),
                abort_uploads,
            ],
            **data,
        )

"""The project's Lambda functions, built one way: the lambda/ asset, the Powertools layer, X-Ray, an encrypted
environment and log group, and a role of their own that may write only to that log group (grants add the rest)."""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import ROOT

ASSET_EXCLUDE = ["**/__pycache__", "**/*.pyc", "**/requirements.txt"]


def project_function(
    scope: Construct,
    name: str,
    *,
    handler: str,
    timeout: Duration,
    memory: int,
    environment: dict[str, str],
    key: kms.IKey,
    layer: lambda_.ILayerVersion,
    retention: logs.RetentionDays,
    removal: RemovalPolicy,
    purpose: str,
    reserved_concurrency: int,
) -> lambda_.Function:
    """``<name>Fn`` with ``<name>FnLogs`` and ``<name>FnRole`` beside it in ``scope``."""
    log_group = logs.LogGroup(scope, f"{name}FnLogs", retention=retention, encryption_key=key, removal_policy=removal)
    role = iam.Role(
        scope, f"{name}FnRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=purpose
    )
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[log_group.log_group_arn, f"{log_group.log_group_arn}:log-stream:*"],
        )
    )
    # Lambda decrypts a customer-key environment with the function's own role, before the handler runs; the
    # encryption context Lambda uses names the function (a function's own ARN here would be a circular reference)
    role.add_to_policy(
        iam.PolicyStatement(
            sid="DecryptOwnEnvironment",
            actions=["kms:Decrypt"],
            resources=[key.key_arn],
            conditions={
                "StringLike": {
                    "kms:EncryptionContext:aws:lambda:FunctionArn": Stack.of(scope).format_arn(
                        service="lambda",
                        resource="function",
                        resource_name="*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                }
            },
        )
    )
    return lambda_.Function(
        scope,
        f"{name}Fn",
        runtime=lambda_.Runtime.PYTHON_3_11,
        architecture=lambda_.Architecture.X86_64,
        handler=handler,
        code=lambda_.Code.from_asset(str(ROOT / "lambda"), exclude=ASSET_EXCLUDE),
        layers=[layer],
        timeout=timeout,
        memory_size=memory,
        environment={**environment, "POWERTOOLS_SERVICE_NAME": name.lower()},
        environment_encryption=key,
        tracing=lambda_.Tracing.ACTIVE,
        log_group=log_group,
        role=role,
        reserved_concurrent_executions=reserved_concurrency,
    )

"""The project's Lambda functions, built one way: the lambda/ asset, the shared layer, X-Ray, an encrypted
environment and log group, and a role of their own that may write only to that log group (grants add the rest)."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from infra.config import ROOT
from infra.constructs.policies import accept_inline_policy, allow_wildcards, resource_regex

ASSET_EXCLUDE = ["**/__pycache__", "**/*.pyc", "**/requirements.txt"]


@dataclass(frozen=True, kw_only=True)
class FunctionDefaults:
    """What every function of a stage shares; the stack makes it once and hands it to each construct with functions."""

    key: kms.IKey  # encrypts the environment and the log group
    layer: lambda_.ILayerVersion
    log_retention: logs.RetentionDays
    removal: RemovalPolicy  # of the log groups
    reserved_concurrency: int


_RETENTION = {
    1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS", 30: "ONE_MONTH",
    60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS", 150: "FIVE_MONTHS", 180: "SIX_MONTHS",
    365: "ONE_YEAR", 400: "THIRTEEN_MONTHS", 545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS", 1827: "FIVE_YEARS",
    3653: "TEN_YEARS",
}  # fmt: skip


def retention_days(days: int) -> logs.RetentionDays:
    """The shortest CloudWatch Logs retention that keeps at least ``days``."""
    chosen = min((d for d in _RETENTION if d >= days), default=3653)
    return getattr(logs.RetentionDays, _RETENTION[chosen])


def project_function(
    scope: Construct,
    name: str,
    *,
    handler: str,
    timeout: Duration,
    memory: int,
    environment: dict[str, str],
    defaults: FunctionDefaults,
    purpose: str,
) -> lambda_.Function:
    """``<name>Fn`` with ``<name>FnLogs`` and ``<name>FnRole`` beside it in ``scope``.

    The caller accepts the function's NIST.800.53.R5-LambdaDLQ finding itself: whether failures can reach a
    dead-letter queue depends on how the function is invoked.
    """
    key = defaults.key
    log_group = logs.LogGroup(
        scope,
        f"{name}FnLogs",
        retention=defaults.log_retention,
        encryption_key=key,
        removal_policy=defaults.removal,
    )
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
    fn = lambda_.Function(
        scope,
        f"{name}Fn",
        runtime=lambda_.Runtime.PYTHON_3_11,
        architecture=lambda_.Architecture.X86_64,
        handler=handler,
        code=lambda_.Code.from_asset(str(ROOT / "lambda"), exclude=ASSET_EXCLUDE),
        layers=[defaults.layer],
        timeout=timeout,
        memory_size=memory,
        environment={**environment, "POWERTOOLS_SERVICE_NAME": name.lower()},
        environment_encryption=key,
        tracing=lambda_.Tracing.ACTIVE,
        log_group=log_group,
        role=role,
        reserved_concurrent_executions=defaults.reserved_concurrency,
    )
    NagSuppressions.add_resource_suppressions(
        fn,
        [
            NagPackSuppression(
                id="AwsSolutions-L1",
                reason="Python 3.11 on purpose: the code is tested on 3.11 and the layer is checked against the "
                "3.11 runtime; moving runtime is a tested change of its own",
            ),
            NagPackSuppression(
                id="NIST.800.53.R5-LambdaInsideVPC",
                reason="the function talks only to AWS APIs (S3, KMS, and for the starter Step Functions and "
                "EventBridge) and holds no network-reachable resource; teams that require a VPC add one with "
                "endpoints for those APIs (docs/deploy.md)",
            ),
        ],
    )
    accept_inline_policy(role)
    allow_wildcards(
        role,
        reason="xray:PutTraceSegments/PutTelemetryRecords have no resource-level permissions; Lambda creates the "
        "log streams of the function's own log group",
        applies_to=[
            "Resource::*",
            resource_regex(rf"^Resource::<[A-Za-z0-9]*{name}FnLogs[A-F0-9]{{8}}\.Arn>:log-stream:\*$"),
        ],
    )
    return fn


def accept_no_dead_letter_queue(fn: lambda_.IFunction, reason: str) -> None:
    """NIST.800.53.R5-LambdaDLQ, with the reason that fits how ``fn`` is invoked."""
    NagSuppressions.add_resource_suppressions(fn, [NagPackSuppression(id="NIST.800.53.R5-LambdaDLQ", reason=reason)])

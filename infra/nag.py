"""cdk-nag findings this design accepts: each on the resource it concerns, each with its specific reason.

Anything not listed here fails the nag test, so a new finding is a decision someone has to write down.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from cdk_nag import NagPackSuppression, NagSuppressions


def _regex(pattern: str) -> dict:
    return {"regex": f"/{pattern}/g"}


def suppress_known_findings(stack: Stack) -> None:
    from infra.stack import TextExplanationStack  # for the attribute names only

    assert isinstance(stack, TextExplanationStack)
    storage, workflow = stack.storage, stack.workflow

    for role in (c for c in stack.node.find_all() if isinstance(c, iam.Role)):
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

    for fn in [*workflow.functions, stack.trigger.starter]:
        NagSuppressions.add_resource_suppressions(
            fn,
            [
                NagPackSuppression(
                    id="AwsSolutions-L1",
                    reason="Python 3.11 on purpose: the code is tested on 3.11 and the Powertools layer is the "
                    "python311 build; moving runtime is a tested change of its own",
                ),
                NagPackSuppression(
                    id="NIST.800.53.R5-LambdaDLQ",
                    reason="invoked synchronously by the state machine, which retries and catches every failure "
                    "into the FAILED-manifest path; an async dead-letter queue would never receive anything",
                ),
                NagPackSuppression(
                    id="NIST.800.53.R5-LambdaInsideVPC",
                    reason="the function talks only to S3 and KMS APIs and holds no network-reachable resource; "
                    "teams that require a VPC add one with S3 and KMS endpoints (docs/deploy.md)",
                ),
            ],
        )
        NagSuppressions.add_resource_suppressions(
            fn.role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="xray:PutTraceSegments/PutTelemetryRecords have no resource-level permissions; S3 access "
                    "is limited to runs/* (results) and incoming/* (inputs) because run ids are created at run "
                    "time; log streams of the function's own log group are created by Lambda",
                    applies_to=[
                        "Resource::*",
                        _regex(r"^Resource::<StorageResults[A-Z0-9]+\.Arn>\/runs\/\*$"),
                        _regex(r"^Resource::<StorageInput[A-Z0-9]+\.Arn>\/(incoming|uploads)\/\*$"),
                        _regex(r"^Resource::<(Workflow|Trigger)[A-Za-z]+FnLogs[A-Z0-9]+\.Arn>:log-stream:\*$"),
                    ],
                )
            ],
            apply_to_children=True,
        )

    NagSuppressions.add_resource_suppressions(
        stack.trigger.starter.role,
        [
            NagPackSuppression(
                id="AwsSolutions-IAM5",
                reason="the starter looks up the executions named by a run id that is made at run time (<run_id>, "
                "<run_id>-a<n>), among the executions of this one state machine, and reads that run's manifest",
                applies_to=[
                    _regex(
                        r"^Resource::arn:aws[a-z-]*:states:[a-z0-9-]+:\d+:execution:<Workflow[A-Za-z0-9]+\.Name>:\*$"
                    ),
                    _regex(r"^Resource::<StorageResults[A-Z0-9]+\.Arn>\/runs\/\*\/manifest\.json$"),
                ],
            )
        ],
        apply_to_children=True,
    )

    NagSuppressions.add_resource_suppressions(
        workflow.job_role,
        [
            NagPackSuppression(
                id="AwsSolutions-IAM5",
                reason="Clarify reads runs/<run_id>/input|config and writes runs/<run_id>/clarify for run ids made "
                "at run time; it creates, invokes and deletes temporary endpoints named sm-clarify-*; SageMaker "
                "names processing-job log groups per job; cloudwatch:PutMetricData has no resource-level "
                "permission and is limited to the processing-jobs namespace by a condition",
                applies_to=[
                    "Resource::*",
                    _regex(r"^Resource::<StorageResults[A-Z0-9]+\.Arn>\/runs\/\*\/(input|config|clarify)\/\*$"),
                    _regex(r"^Resource::arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d+:endpoint(-config)?\/sm-clarify-\*$"),
                    _regex(
                        r"^Resource::arn:aws[a-z-]*:logs:[a-z0-9-]+:\d+:log-group:\/aws\/sagemaker\/ProcessingJobs\*.*$"
                    ),
                ],
            )
        ],
        apply_to_children=True,
    )
    NagSuppressions.add_resource_suppressions(
        workflow.state_machine.role,
        [
            NagPackSuppression(
                id="AwsSolutions-IAM5",
                reason="X-Ray and the delivery of execution logs have no resource-level permissions; the state "
                "machine may invoke the versions of its three functions (<arn>:*); processing and transform jobs are "
                "named cx-<run_id>-<n> and cp-<run_id>-<n> at run time",
                applies_to=[
                    "Resource::*",
                    _regex(r"^Resource::<Workflow(Prepare|Postprocess|RecordFailure)Fn[A-Z0-9]+\.Arn>:\*$"),
                    _regex(r"^Resource::arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d+:(processing|transform)-job\/c[xp]-\*$"),
                ],
            )
        ],
        apply_to_children=True,
    )

    for bucket in (storage.input_bucket, storage.results_bucket, storage.access_logs):
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
        storage.access_logs,
        [
            NagPackSuppression(
                id="NIST.800.53.R5-S3DefaultEncryptionKMS",
                reason="S3 server access logs cannot be delivered to a bucket encrypted with SSE-KMS; SSE-S3 is "
                "the strongest encryption the log delivery supports",
            )
        ],
    )
    NagSuppressions.add_resource_suppressions(
        stack.trigger.dead_letters,
        [
            NagPackSuppression(
                id="AwsSolutions-SQS3",
                reason="this queue is itself the dead-letter queue of the upload rule's target",
            )
        ],
    )
    _suppress_cdk_notifications_handler(stack)
    NagSuppressions.add_resource_suppressions_by_path(
        stack,
        f"/{stack.node.path}/Storage/Input/Notifications/HandlerPolicy/Resource",
        [
            NagPackSuppression(
                id="NIST.800.53.R5-IAMNoInlinePolicy",
                reason="CDK's bucket-notifications policy for the input bucket: s3:PutBucketNotification on that "
                "bucket only, attached to CDK's singleton handler role",
            )
        ],
    )


def _suppress_cdk_notifications_handler(stack: Stack) -> None:
    """The singleton Lambda that CDK adds to configure bucket notifications (EventBridge on the input bucket)."""
    for child in stack.node.children:
        if child.node.id.startswith("BucketNotificationsHandler"):
            NagSuppressions.add_resource_suppressions(
                child,
                [
                    NagPackSuppression(
                        id="AwsSolutions-IAM4",
                        reason="CDK's own bucket-notifications custom resource uses AWSLambdaBasicExecutionRole; it "
                        "runs only at deployment to switch on EventBridge notifications of the input bucket",
                    ),
                    NagPackSuppression(
                        id="NIST.800.53.R5-IAMNoInlinePolicy",
                        reason="CDK's bucket-notifications custom resource: its inline policy allows "
                        "s3:PutBucketNotification only",
                    ),
                ],
                apply_to_children=True,
            )

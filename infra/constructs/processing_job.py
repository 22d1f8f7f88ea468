"""A Step Functions task that runs a SageMaker processing job and waits for it (``createProcessingJob.sync``).

aws-cdk-lib has no construct for this integration (aws/aws-cdk#9537) and ``CustomState`` adds no
IAM, so this construct builds the state and grants the state machine exactly what the integration
needs: create/describe/stop/tag jobs named by its prefix, pass only the job role to SageMaker, and
manage the managed EventBridge rule Step Functions uses to learn that the job ended.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

SYNC_RESOURCE = "arn:{partition}:states:::sagemaker:createProcessingJob.sync"
EVENTS_RULE = "StepFunctionsGetEventsForSageMakerProcessingJobsRule"


class ProcessingJobTask(Construct):
    """``state`` runs the job described by ``parameters`` (JSONPath allowed); ``grant(role)`` adds its IAM."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        parameters: dict,
        job_role: iam.IRole,
        job_name_prefix: str,
        result_path: str = "$.clarify",
        timeout_seconds: int | None = None,
    ):
        super().__init__(scope, id)
        stack = Stack.of(self)
        self.job_role = job_role
        self.job_arn_pattern = stack.format_arn(
            service="sagemaker", resource="processing-job", resource_name=f"{job_name_prefix}*"
        )
        state: dict = {
            "Type": "Task",
            "Resource": SYNC_RESOURCE.format(partition=stack.partition),
            "Parameters": parameters,
            "ResultPath": result_path,
        }
        if timeout_seconds:
            state["TimeoutSeconds"] = timeout_seconds
        # the state's name in the definition is this construct's id ("Clarify"), as for any other task
        self.state = sfn.CustomState(self, id, state_json=state)

    def grant(self, role: iam.IRole) -> None:
        stack = Stack.of(self)
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ManageProcessingJobs",
                actions=[
                    "sagemaker:CreateProcessingJob",
                    "sagemaker:DescribeProcessingJob",
                    "sagemaker:StopProcessingJob",
                    "sagemaker:AddTags",
                    "sagemaker:ListTags",
                ],
                resources=[self.job_arn_pattern],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="PassJobRoleToSageMakerOnly",
                actions=["iam:PassRole"],
                resources=[self.job_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="SyncCompletionRule",
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[
                    stack.format_arn(
                        service="events",
                        resource="rule",
                        resource_name=EVENTS_RULE,
                        arn_format=ArnFormat.SLASH_RESOURCE_NAME,
                    )
                ],
            )
        )

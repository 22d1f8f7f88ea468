"""Step Functions states that run a SageMaker job and wait for it (``create<Kind>.sync``), and follow a job that
already exists instead of failing on "name must be unique".

aws-cdk-lib has no task for processing jobs (aws/aws-cdk#9537) and ``CustomState`` adds no IAM, so this construct
builds the states and grants the state machine exactly what the integration needs: create/describe/stop/tag jobs named
by its prefix, pass only the job's role to SageMaker, and manage the managed EventBridge rule Step Functions uses to
learn that the job ended.

Job names are deterministic (``<prefix><run_id>-<attempt>``), so a create call that is retried after SageMaker had
already accepted it (a lost answer, a throttled retry, a redriven execution) finds the name taken. Then the job with
that name is described and followed to its end, rather than failing the run.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.constructs.policies import allow_wildcards, resource_regex

# What the optimized integration reports when the create call itself fails (throttled, refused, or "name must be
# unique" when the job exists already); a job that ran and failed is States.TaskFailed instead.
CREATE_ERRORS = ["ThrottlingException", "SageMaker.AmazonSageMakerException"]
# Every name under which a taken job name can come back: SageMaker's API model calls the error ResourceInUse, the
# SDK integrations' convention adds "Exception", and the optimized integration has reported it as
# AmazonSageMakerException ("must be unique"). Each means "a job of that name exists": follow it, never retry it.
DUPLICATE_NAME_ERRORS = ["SageMaker.ResourceInUse", "SageMaker.ResourceInUseException"]


@dataclass(frozen=True)
class JobKind:
    api: str  # the API's noun: create<api>, describe<api>
    arn_resource: str
    name_field: str
    status_field: str
    events_rule: str  # the managed rule Step Functions uses for .sync

    @property
    def lower(self) -> str:
        return self.api[0].lower() + self.api[1:]


PROCESSING = JobKind(
    "ProcessingJob", "processing-job", "ProcessingJobName", "ProcessingJobStatus",
    "StepFunctionsGetEventsForSageMakerProcessingJobsRule",
)  # fmt: skip
TRANSFORM = JobKind(
    "TransformJob", "transform-job", "TransformJobName", "TransformJobStatus",
    "StepFunctionsGetEventsForSageMakerTransformJobsRule",
)  # fmt: skip


class SageMakerJob(Construct):
    """``chain`` runs the job described by ``parameters`` (JSONPath allowed) and ends when it completed; it fails with
    the job's error otherwise. ``grant(role)`` adds the IAM for it."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        kind: JobKind,
        parameters: dict,
        job_name_path: str,
        job_name_prefix: str,
        passed_role: iam.IRole | None = None,
        create_conditions: dict | None = None,
        result_path: str,
        timeout_seconds: int | None = None,
        poll_seconds: int = 60,
    ):
        super().__init__(scope, id)
        stack = Stack.of(self)
        self.kind, self.passed_role, self.create_conditions = kind, passed_role, create_conditions
        self.job_name_prefix = job_name_prefix
        self.job_arn_pattern = stack.format_arn(
            service="sagemaker", resource=kind.arn_resource, resource_name=f"{job_name_prefix}*"
        )
        state: dict = {
            "Type": "Task",
            "Resource": f"arn:{stack.partition}:states:::sagemaker:create{kind.api}.sync",
            "Parameters": parameters,
            "ResultPath": result_path,
        }
        if timeout_seconds:
            state["TimeoutSeconds"] = timeout_seconds
        # the state's name in the definition is this construct's id ("Clarify", "Predict"), as for any other task
        self.state = sfn.CustomState(self, id, state_json=state)
        self.state.add_retry(errors=CREATE_ERRORS, interval=Duration.seconds(30), backoff_rate=2, max_attempts=3)

        # the create call failed: is there a job of that name (ours, from an earlier call)? follow it
        find = sfn.CustomState(
            self,
            f"Find{id}Job",
            state_json={
                "Type": "Task",
                "Resource": f"arn:{stack.partition}:states:::aws-sdk:sagemaker:describe{kind.api}",
                "Parameters": {f"{kind.name_field}.$": job_name_path},
                "ResultPath": "$.found",
            },
        )
        no_job = sfn.Fail(self, f"{id}NotCreated", error_path="$.create_error.Error", cause_path="$.create_error.Cause")
        find.add_catch(no_job, errors=["States.ALL"], result_path="$.find_error")
        # only the create call's errors: a job that ran and failed (States.TaskFailed with the job's description) or
        # timed out leaves the branch as it is, so the run's failure names the job's own reason
        self.state.add_catch(find, errors=CREATE_ERRORS + DUPLICATE_NAME_ERRORS, result_path="$.create_error")
        wait = sfn.Wait(self, f"Wait{id}Job", time=sfn.WaitTime.duration(Duration.seconds(poll_seconds)))
        done = sfn.Pass(self, f"{id}Done")
        failed = sfn.Fail(self, f"{id}JobFailed", error="SageMakerJobFailed", cause_path="$.found.FailureReason")
        stopped = sfn.Fail(self, f"{id}JobStopped", error="SageMakerJobStopped", cause=f"the {kind.lower} was stopped")
        find.next(
            sfn.Choice(self, f"{id}JobStatus?")
            .when(sfn.Condition.string_equals(f"$.found.{kind.status_field}", "Completed"), done)
            .when(
                sfn.Condition.or_(
                    sfn.Condition.string_equals(f"$.found.{kind.status_field}", "InProgress"),
                    sfn.Condition.string_equals(f"$.found.{kind.status_field}", "Stopping"),
                ),
                wait.next(find),
            )
            .when(sfn.Condition.string_equals(f"$.found.{kind.status_field}", "Failed"), failed)
            .otherwise(stopped)
        )
        self.state.next(done)
        self.chain = sfn.Chain.custom(self.state, [done], self.state)

    def grant(self, role: iam.IRole) -> None:
        stack = Stack.of(self)
        kind = self.kind
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid=f"Create{kind.api}s",
                actions=[f"sagemaker:Create{kind.api}"],
                resources=[self.job_arn_pattern],
                conditions=self.create_conditions,
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid=f"Manage{kind.api}s",
                actions=[f"sagemaker:Describe{kind.api}", f"sagemaker:Stop{kind.api}", "sagemaker:AddTags"],
                resources=[self.job_arn_pattern],
            )
        )
        # Step Functions' documented policy for .sync SageMaker jobs ("IAM policies for Amazon SageMaker" in its
        # developer guide) grants ListTags on "*": a read of tags only, which names no job the service needs
        role.add_to_principal_policy(
            iam.PolicyStatement(sid="ListTagsAsStepFunctionsDocuments", actions=["sagemaker:ListTags"], resources=["*"])
        )
        allow_wildcards(
            role,
            reason="sagemaker:ListTags on * is the policy Step Functions documents for .sync SageMaker jobs; it reads "
            "tags only (tests/infra/test_templates.py: no other action of this role has the resource *)",
            applies_to=["Resource::*"],
        )
        if self.passed_role is not None:
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    sid=f"Pass{kind.api}RoleToSageMakerOnly",
                    actions=["iam:PassRole"],
                    resources=[self.passed_role.role_arn],
                    conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
                )
            )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid=f"SyncCompletionRuleFor{kind.api}s",
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[
                    stack.format_arn(
                        service="events",
                        resource="rule",
                        resource_name=kind.events_rule,
                        arn_format=ArnFormat.SLASH_RESOURCE_NAME,
                    )
                ],
            )
        )
        allow_wildcards(
            role,
            reason=f"a run's {kind.arn_resource.replace('-', ' ')}s are named "
            f"{self.job_name_prefix}<run_id>-<attempt> at run time",
            applies_to=[
                resource_regex(
                    rf"^Resource::arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d+:{kind.arn_resource}\/{self.job_name_prefix}\*$"
                )
            ],
        )

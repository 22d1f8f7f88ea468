"""What starts a run: a CSV under incoming/ (S3 -> EventBridge), or "Explanation Requested" on the stage's bus.

Both go to one starter Lambda that names the execution by the run id (attempt n > 1: ``<run_id>-a<n>``; a duplicate
event starts nothing) and turns a request it cannot start into an "Explanation Failed" event. The bus admits PutEvents
only from this account, the accounts listed in the stage config, or its AWS Organization; a starter failure that
Lambda's own retries cannot overcome lands in the dead-letter queue, never nowhere.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from explain_workflow.contract import (
    EVENT_SOURCE,
    INCOMING_PREFIX,
    RUNS_PREFIX,
    STARTER_SETTINGS_ENV,
    DetailType,
    StarterSettings,
)
from infra.config import EventSettings
from infra.constructs.functions import FunctionDefaults, accept_no_dead_letter_queue, project_function
from infra.constructs.policies import (
    accept_inline_policy,
    allow_wildcards,
    read_input_objects,
    readable_inputs_regex,
    resource_regex,
    use_key,
)

RESULTS = [DetailType.SUCCEEDED.value, DetailType.FAILED.value]


def csv_key_patterns(prefix: str) -> list[dict]:
    """EventBridge wildcards for ``<prefix>*.csv`` in any letter case (a wildcard itself is case-sensitive)."""
    cases = [a + b + c for a in "cC" for b in "sS" for c in "vV"]
    return [{"wildcard": f"{prefix}*.{suffix}"} for suffix in cases]


def results_pattern(stack: Stack) -> events.EventPattern:
    """Run outcomes as only this stage's state machine and starter publish them: our source, from our own account.

    Any account the bus admits may put any event on it, but EventBridge sets ``account`` to the sender's: a result
    forged by another account does not match, so it pages no one and is not forwarded.
    """
    return events.EventPattern(source=[EVENT_SOURCE], account=[stack.account], detail_type=RESULTS)


class RunTriggers(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        bucket: s3.IBucket,
        bus: events.EventBus,
        state_machine: sfn.IStateMachine,
        key: kms.IKey,
        notifications_key: kms.IKey,  # the dead-letter queue's
        settings: EventSettings,
        results_bucket: s3.IBucket,
        workflow_env: dict[str, str],  # the workflow's settings: the starter computes run ids as prepare does
        functions: FunctionDefaults,
    ):
        super().__init__(scope, id)
        stack = Stack.of(self)
        # events EventBridge could not deliver, and starts the starter failed after Lambda's retries, are kept (the
        # longest retention SQS has), not dropped
        self.dead_letters = sqs.Queue(
            self,
            "Undelivered",
            encryption_master_key=notifications_key,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        NagSuppressions.add_resource_suppressions(
            self.dead_letters,
            [
                NagPackSuppression(
                    id="AwsSolutions-SQS3",
                    reason="this queue is itself the dead-letter queue of the upload rule's target",
                )
            ],
        )
        self.starter = project_function(
            self,
            "Starter",
            handler="start_run.handler.handler",
            timeout=Duration.seconds(30),
            memory=256,
            # the starter computes the run id as prepare does, from the same settings
            environment={
                **workflow_env,
                STARTER_SETTINGS_ENV: stack.to_json_string(
                    StarterSettings(
                        own_account=stack.account,
                        allowed_accounts=frozenset(settings.allowed_accounts),
                        # set: the bus policy (aws:PrincipalOrgID) admitted the sender, so any account is accepted
                        allowed_org_id=settings.allowed_org_id or "",
                        state_machine_arn=state_machine.state_machine_arn,
                        event_bus_name=bus.event_bus_name,
                    ).model_dump(mode="json")
                ),
            },
            defaults=functions,
            purpose="Starts one execution per request; reports requests it cannot start",
        )
        self.starter.add_to_role_policy(read_input_objects(bucket))
        # a run whose manifest says FAILED is started again as its next attempt
        self.starter.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[results_bucket.arn_for_objects(f"{RUNS_PREFIX}*/manifest.json")]
            )
        )
        # listing lets S3 answer 404 (not 403) for a missing object, so the starter can say which it was
        self.starter.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn, results_bucket.bucket_arn])
        )
        # reads SSE-KMS objects; sends to the encrypted dead-letter queue (SQS asks for a data key of its key)
        self.starter.add_to_role_policy(use_key(key))
        self.starter.add_to_role_policy(
            iam.PolicyStatement(actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[notifications_key.key_arn])
        )
        self.starter.add_to_role_policy(
            iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[self.dead_letters.queue_arn])
        )
        lambda_.CfnEventInvokeConfig(
            self,
            "StarterOnFailure",
            function_name=self.starter.function_arn,  # as the rules' invoke permissions name it
            qualifier="$LATEST",
            maximum_retry_attempts=2,
            destination_config=lambda_.CfnEventInvokeConfig.DestinationConfigProperty(
                on_failure=lambda_.CfnEventInvokeConfig.OnFailureProperty(destination=self.dead_letters.queue_arn)
            ),
        ).node.add_dependency(self.starter.role.node.find_child("DefaultPolicy"))  # Lambda checks the send right
        state_machine.grant_start_execution(self.starter)
        # the starter looks for the executions of the run (<run_id>, <run_id>-a<n>) before starting one
        self.starter.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:DescribeExecution"],
                resources=[
                    stack.format_arn(
                        service="states",
                        resource="execution",
                        resource_name=f"{state_machine.state_machine_name}:*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        bus.grant_put_events_to(self.starter)
        allow_wildcards(
            self.starter.role,
            reason="the starter reads the upload a request names (incoming/ or uploads/), looks up the executions "
            "named by a run id that is made at run time (<run_id>, <run_id>-a<n>) among the executions of this one "
            "state machine, and reads that run's manifest",
            applies_to=[
                readable_inputs_regex(),
                resource_regex(
                    r"^Resource::arn:aws[a-z-]*:states:[a-z0-9-]+:\d+:execution:<Workflow[A-Za-z0-9]+\.Name>:\*$"
                ),
                resource_regex(r"^Resource::<StorageResults[A-Z0-9]+\.Arn>\/runs\/\*\/manifest\.json$"),
            ],
        )
        accept_no_dead_letter_queue(
            self.starter,
            "invoked asynchronously by the two rules: an event the rule cannot deliver goes to the rule target's "
            "dead-letter queue, and a start that fails after Lambda's retries to the same queue through the "
            "function's on-failure destination (StarterOnFailure), which this rule does not look for",
        )
        target = targets.LambdaFunction(self.starter, dead_letter_queue=self.dead_letters, retry_attempts=4)
        self.upload_rule = events.Rule(
            self,
            "CsvUploaded",
            description="A CSV under incoming/ starts an explanation run",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [bucket.bucket_name]},
                    "object": {"key": csv_key_patterns(INCOMING_PREFIX)},
                },
            ),
            targets=[target],
        )
        self.request_rule = events.Rule(
            self,
            "ExplanationRequested",
            description="An allowed account asks for an explanation run",
            event_bus=bus,
            event_pattern=events.EventPattern(detail_type=[DetailType.REQUESTED.value]),
            targets=[target],
        )
        principals = [*settings.allowed_accounts]
        for account in principals:
            bus.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=f"Requests{account}",
                    principals=[iam.AccountPrincipal(account)],
                    actions=["events:PutEvents"],
                    resources=[bus.event_bus_arn],
                )
            )
        if settings.allowed_org_id:
            bus.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="RequestsFromOrganization",
                    principals=[iam.AnyPrincipal()],
                    actions=["events:PutEvents"],
                    resources=[bus.event_bus_arn],
                    conditions={"StringEquals": {"aws:PrincipalOrgID": settings.allowed_org_id}},
                )
            )
        if settings.central_bus_arn:
            central = events.EventBus.from_event_bus_arn(self, "CentralBus", settings.central_bus_arn)
            self.forward_rule = events.Rule(
                self,
                "ForwardResults",
                description="Explanation results, forwarded to the central bus",
                event_bus=bus,
                event_pattern=results_pattern(stack),
                targets=[targets.EventBus(central, dead_letter_queue=self.dead_letters)],
            )
            # the role EventBridge assumes to put the results on the central bus
            accept_inline_policy(self.forward_rule.node.find_child("EventsRole"))

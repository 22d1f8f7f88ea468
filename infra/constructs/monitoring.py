"""Alarms on failed or timed-out runs and on Lambda errors, to an encrypted SNS topic; a small dashboard."""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.constructs.triggers import results_pattern


def alarms_of(stack: Stack) -> str:
    return stack.format_arn(
        service="cloudwatch", resource="alarm", resource_name="*", arn_format=ArnFormat.COLON_RESOURCE_NAME
    )


def on_behalf_of(stack: Stack, source_arn: str) -> dict:
    """Only when the service acts for this account's own alarms or topics (the confused-deputy guard)."""
    return {"ArnLike": {"aws:SourceArn": source_arn}, "StringEquals": {"aws:SourceAccount": stack.account}}


def notifications_key(scope: Construct, id: str, *, removal: RemovalPolicy) -> kms.Key:
    """The key of the alarms topic and the dead-letter queue, apart from the data key.

    EventBridge delivering to a KMS-encrypted topic makes SNS use the key as events.amazonaws.com, and that request
    carries no aws:SourceArn or aws:SourceAccount: the SNS Developer Guide ("Key management", on encrypted topics
    and event sources) says those conditions are not supported in a key policy for EventBridge-to-encrypted-topic
    deliveries. So EventBridge's statement here has no source condition; it is on a key of its own, which encrypts
    only notifications (never inputs or results), and the topic's and queue's own policies still admit only this
    stage's rules (by aws:SourceArn).
    """
    stack = Stack.of(scope)
    key = kms.Key(
        scope,
        id,
        description="Encrypts the alarms topic and the dead-letter queue (notifications, no run data)",
        enable_key_rotation=True,
        removal_policy=removal,
    )
    service_may_use(key, "AlarmsPublishToTheEncryptedTopic", "cloudwatch", on_behalf_of(stack, alarms_of(stack)))
    service_may_use(key, "RulesDeliverToTheEncryptedTopicAndQueue", "events", None)  # no condition: see above
    return key


def service_may_use(key: kms.IKey, sid: str, service: str, conditions: dict | None) -> None:
    """A key-policy statement: the service may encrypt and decrypt with this key, under ``conditions``."""
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid=sid,
            principals=[iam.ServicePrincipal(f"{service}.amazonaws.com")],
            actions=["kms:Decrypt", "kms:GenerateDataKey"],
            resources=["*"],  # in a key policy, "*" is this key
            conditions=conditions,
        )
    )


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        state_machine: sfn.StateMachine,
        functions: list[lambda_.Function],
        key: kms.IKey,
        email: str | None,
        bus: events.IEventBus,
        dead_letters: sqs.IQueue,
    ):
        super().__init__(scope, id)
        stack = Stack.of(self)
        self.topic = sns.Topic(self, "Alarms", master_key=key, enforce_ssl=True)
        if email:
            # an e-mail SNS cannot deliver after its retries (a full mailbox, a bounce) is kept in the dead-letter
            # queue, not dropped; CDK's queue policy admits this topic only (aws:SourceArn), the key statement is below
            self.topic.add_subscription(subs.EmailSubscription(email, dead_letter_queue=dead_letters))
            # this account's topics (naming this topic here would make key and topic depend on each other)
            topics = stack.format_arn(service="sns", resource="*")
            service_may_use(key, "TopicRedrivesToTheEncryptedQueue", "sns", on_behalf_of(stack, topics))
        # A topic policy replaces SNS's default one, which is what let CloudWatch publish: admit this account's
        # alarms by name, or no alarm reaches anyone.
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AlarmsOfThisAccount",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions=on_behalf_of(stack, alarms_of(stack)),
            )
        )
        self.results_rule = events.Rule(
            self,
            "RunResultsToPeople",
            description="Each run's outcome, as a message on the alarms topic",
            event_bus=bus,
            event_pattern=results_pattern(stack),
            targets=[
                # the topic by ARN: CDK's target would add a key-policy grant to EventBridge without conditions;
                # this rule's right to publish is in the topic and key policies here, for this rule only
                targets.SnsTopic(
                    sns.Topic.from_topic_arn(
                        self, "AlarmsForTheRule", stack.format_arn(service="sns", resource=self.topic.topic_name)
                    ),
                    dead_letter_queue=dead_letters,
                    message=events.RuleTargetInput.from_text(
                        f"Explanation run {events.EventField.from_path('$.detail.run_id')}: "
                        f"{events.EventField.from_path('$.detail.status')} "
                        f"{events.EventField.from_path('$.detail.reason')}"
                        f"(manifest {events.EventField.from_path('$.detail.manifest')})"
                    ),
                )
            ],
        )
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="RunOutcomesRule",
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={"ArnEquals": {"aws:SourceArn": self.results_rule.rule_arn}},
            )
        )
        action = cw_actions.SnsAction(self.topic)
        five_minutes = Duration.minutes(5)
        metrics = {
            "ExecutionsFailed": state_machine.metric_failed(period=five_minutes),
            "ExecutionsTimedOut": state_machine.metric_timed_out(period=five_minutes),
            "ExecutionsAborted": state_machine.metric_aborted(period=five_minutes),
        }
        for name, metric in metrics.items():
            alarm = metric.create_alarm(
                self,
                name,
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                alarm_description=f"Explanation runs: {name} in the last 5 minutes",
            )
            alarm.add_alarm_action(action)
        for fn in functions:
            alarm = fn.metric_errors(period=five_minutes).create_alarm(
                self,
                f"{fn.node.id}Errors",
                threshold=1,
                evaluation_periods=1,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                alarm_description=f"{fn.node.id} Lambda errors (a bug or AWS trouble; bad input is not an error)",
            )
            alarm.add_alarm_action(action)
        dashboard = cw.Dashboard(self, "Dashboard")
        dashboard.add_widgets(
            cw.GraphWidget(
                title="Runs",
                left=[
                    state_machine.metric_started(period=five_minutes),
                    state_machine.metric_succeeded(period=five_minutes),
                    *metrics.values(),
                ],
            ),
            cw.GraphWidget(title="Lambda errors", left=[fn.metric_errors(period=five_minutes) for fn in functions]),
            cw.GraphWidget(title="Lambda duration", left=[fn.metric_duration(period=five_minutes) for fn in functions]),
        )

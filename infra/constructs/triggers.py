"""Start a run when a CSV lands under incoming/ in the input bucket (S3 -> EventBridge -> Step Functions)."""

from __future__ import annotations

from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

INCOMING_PREFIX = "incoming/"


class UploadTrigger(Construct):
    def __init__(
        self, scope: Construct, id: str, *, bucket: s3.IBucket, state_machine: sfn.IStateMachine, key: kms.IKey
    ):
        super().__init__(scope, id)
        # events EventBridge could not deliver are kept, not dropped
        self.dead_letters = sqs.Queue(self, "Undelivered", encryption_master_key=key, enforce_ssl=True)
        self.rule = events.Rule(
            self,
            "CsvUploaded",
            description="A CSV under incoming/ starts an explanation run",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [bucket.bucket_name]},
                    "object": {"key": [{"wildcard": f"{INCOMING_PREFIX}*.csv"}]},
                },
            ),
        )
        self.rule.add_target(
            targets.SfnStateMachine(
                state_machine,
                input=events.RuleTargetInput.from_object(
                    {
                        "bucket": events.EventField.from_path("$.detail.bucket.name"),
                        "key": events.EventField.from_path("$.detail.object.key"),
                        "version_id": events.EventField.from_path("$.detail.object.version-id"),
                        "etag": events.EventField.from_path("$.detail.object.etag"),
                    }
                ),
                dead_letter_queue=self.dead_letters,
            )
        )

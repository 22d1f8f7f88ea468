"""The stacks of a stage, thin compositions of the constructs wired by grants.

A model that pulls ``<repository>:<tag>`` can only be created once that tag exists, and a tag can only be pushed once
the repository exists: so the stage's image repository is a stack of its own, deployed first.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import CfnOutput, Environment, RemovalPolicy, Stack, Tags
from constructs import Construct

from explain_workflow.contract import METRICS_NAMESPACE, SETTINGS_ENV, project_name, stack_names
from infra.config import ROOT, StageConfig, workflow_settings
from infra.constructs.functions import FunctionDefaults, retention_days
from infra.constructs.layer import dependencies_layer
from infra.constructs.model import ModelHosting, model_role_path
from infra.constructs.monitoring import Monitoring, notifications_key
from infra.constructs.online import OnlineExplainer
from infra.constructs.repository import ImageRepository
from infra.constructs.storage import ExplanationStorage
from infra.constructs.triggers import RunTriggers
from infra.constructs.workflow import ExplanationWorkflow


def _tag_for_stage(stack: Stack, config: StageConfig) -> None:
    Tags.of(stack).add("project", "clarify-text-explanations")
    Tags.of(stack).add("stage", config.stage)


class ImageRepositoryStack(Stack):
    def __init__(self, scope: Construct, id: str, *, config: StageConfig, **kwargs):
        super().__init__(scope, id, env=Environment(account=config.account, region=config.region), **kwargs)
        _tag_for_stage(self, config)
        self.images = ImageRepository(
            self, "Images", repository_name=project_name(config.stage), retain=config.retain_data
        )
        CfnOutput(self, "RepositoryUri", value=self.images.repository.repository_uri)


class TextExplanationStack(Stack):
    def __init__(self, scope: Construct, id: str, *, config: StageConfig, image_context: Path = ROOT, **kwargs):
        super().__init__(scope, id, env=Environment(account=config.account, region=config.region), **kwargs)
        _tag_for_stage(self, config)
        self.storage = ExplanationStorage(
            self, "Storage", retain=config.retain_data, results_expire_days=config.results_expire_days
        )
        self.hosting = ModelHosting(
            self,
            "Hosting",
            settings=config.model,
            hosting=config.hosting,
            repository_name=project_name(config.stage),
            role_path=model_role_path(config.stage),
            max_text_chars=config.limits.max_text_chars,
            image_context=image_context,
        )
        if config.hosting.online_explainer:
            self.online = OnlineExplainer(
                self,
                "Online",
                clarify=config.clarify,
                labels=config.model.labels,
                instance_type=config.hosting.online_instance_type,
                model=self.hosting.model,
                key=self.storage.key,
                engine=config.explainer.engine,
                hosting=self.hosting,
            )
        self.functions = FunctionDefaults(
            key=self.storage.key,
            layer=dependencies_layer(self, "Dependencies"),
            log_retention=retention_days(config.log_retention_days),
            removal=RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY,
            reserved_concurrency=config.function_concurrency,
        )
        settings = workflow_settings(
            config,
            results_bucket=self.storage.results_bucket.bucket_name,
            model_name=self.hosting.model_name,
            model_identity=self.hosting.identity,
        )
        # one variable with the whole WorkflowSettings; to_json_string quotes the names CloudFormation resolves
        settings_json = self.to_json_string(settings.model_dump(mode="json"))
        environment = {
            SETTINGS_ENV: settings_json,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            "LOG_LEVEL": "INFO",
        }
        self.workflow = ExplanationWorkflow(
            self,
            "Workflow",
            bus_name=project_name(config.stage),
            environment=environment,
            functions=self.functions,
            input_bucket=self.storage.input_bucket,
            results_bucket=self.storage.results_bucket,
            key=self.storage.key,
            hosting=self.hosting,
            processing=config.processing,
            predict=config.predict,
            endpoint_name=config.hosting.endpoint_name,
            engine=config.explainer.engine,
            job_role_path=f"{model_role_path(config.stage)}explain-job/",  # admitted where the model role is
        )
        # the alarms topic and the dead-letter queue: a key apart from the data key (monitoring.notifications_key)
        self.notifications_key = notifications_key(self, "NotificationsKey", removal=self.functions.removal)
        self.trigger = RunTriggers(
            self,
            "Trigger",
            bucket=self.storage.input_bucket,
            bus=self.workflow.bus,
            state_machine=self.workflow.state_machine,
            key=self.storage.key,
            notifications_key=self.notifications_key,
            settings=config.events,
            results_bucket=self.storage.results_bucket,
            workflow_env=environment,
            functions=self.functions,
        )
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            state_machine=self.workflow.state_machine,
            functions=[*self.workflow.functions, self.trigger.starter],
            key=self.notifications_key,
            email=config.alarm_email,
            bus=self.workflow.bus,
            dead_letters=self.trigger.dead_letters,
        )
        CfnOutput(self, "InputBucket", value=self.storage.input_bucket.bucket_name)
        CfnOutput(self, "ResultsBucket", value=self.storage.results_bucket.bucket_name)
        CfnOutput(self, "StateMachineArn", value=self.workflow.state_machine.state_machine_arn)
        CfnOutput(self, "EventBusName", value=self.workflow.bus.event_bus_name)
        CfnOutput(self, "ModelName", value=self.hosting.model_name)
        # what `textexplain explain --stage` reads to compute a run's id exactly as the starter and prepare do
        CfnOutput(self, "WorkflowEnvironment", value=self.to_json_string({SETTINGS_ENV: settings_json}))


def add_stage_stacks(scope, config: StageConfig, image_context: Path = ROOT) -> TextExplanationStack:
    """The stage's image repository, then the stage itself (its model may pull a tag pushed in between)."""
    images_name, stage_name = stack_names(config.stage)
    images = ImageRepositoryStack(scope, images_name, config=config, stack_name=images_name)
    stack = TextExplanationStack(scope, stage_name, config=config, image_context=image_context, stack_name=stage_name)
    stack.add_stack_dependency(images, "the model pulls its image from the stage's repository")
    return stack

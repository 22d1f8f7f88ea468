"""The explanation workflow: the three Lambdas, the Clarify job role, the state machine (infra/constructs/definition.py)
and the bus its results go to; each role with exactly what its part of a run touches."""

from __future__ import annotations

import re

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from explain_workflow.contract import CLARIFY_ENDPOINT_PREFIX, RUNS_PREFIX, PredictSettings, ProcessingSettings
from infra.constructs.definition import builtin_job, clarify_job, explanation_definition, predict_job
from infra.constructs.functions import FunctionDefaults, accept_no_dead_letter_queue, project_function
from infra.constructs.model import ModelHosting
from infra.constructs.policies import (
    accept_inline_policy,
    allow_wildcards,
    grant_for_aws_resources,
    job_run_access,
    read_input_objects,
    readable_inputs_regex,
    resource_regex,
    use_key,
)
from infra.images import clarify_repository_arn

RESULTS_RUNS = r"<StorageResults[A-Z0-9]+\.Arn>\/" + re.escape(RUNS_PREFIX.rstrip("/"))
# cdk-nag's finding for the processing-job log groups _grant_processing_job_logs allows
_PROCESSING_JOB_LOGS_REGEX = resource_regex(
    r"^Resource::arn:aws[a-z-]*:logs:[a-z0-9-]+:\d+:log-group:\/aws\/sagemaker\/ProcessingJobs\*.*$"
)


class ExplanationWorkflow(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        bus_name: str,
        environment: dict[str, str],
        functions: FunctionDefaults,
        input_bucket: s3.IBucket,
        results_bucket: s3.IBucket,
        key: kms.IKey,
        hosting: ModelHosting,
        processing: ProcessingSettings,
        predict: PredictSettings,
        endpoint_name: str | None = None,
        engine: str = "clarify",
        job_role_path: str | None = None,
    ):
        super().__init__(scope, id)
        stack = Stack.of(self)
        self.bus = events.EventBus(self, "Bus", event_bus_name=bus_name)

        def function(name: str, handler: str, timeout: Duration, memory: int) -> lambda_.Function:
            fn = project_function(
                self,
                name,
                handler=handler,
                timeout=timeout,
                memory=memory,
                environment=environment,
                defaults=functions,
                purpose=f"{name} function: its own log group, the run prefixes it touches, the data key",
            )
            accept_no_dead_letter_queue(
                fn,
                "invoked synchronously by the state machine, which retries and catches every failure into the "
                "FAILED-manifest path; an async dead-letter queue would never receive anything",
            )
            return fn

        self.prepare_fn = function("Prepare", "prepare.handler.handler", Duration.minutes(5), 1024)
        self.postprocess_fn = function("Postprocess", "postprocess.handler.handler", Duration.minutes(15), 2048)
        self.failure_fn = function("RecordFailure", "record_failure.handler.handler", Duration.minutes(1), 256)
        self.functions = [self.prepare_fn, self.postprocess_fn, self.failure_fn]
        self._grant_data(input_bucket, results_bucket, key)

        comment = "the Clarify job and the model's own predictions of every row, side by side"
        if engine == "builtin":  # our image's job explains and predicts: no Clarify, no endpoint, no Batch Transform
            self.job_role = self._builtin_job_role(stack, results_bucket, key, hosting, job_role_path)
            self.jobs = [
                builtin_job(
                    self,
                    role=self.job_role,
                    key=key,
                    image_uri=hosting.image_uri,
                    model_s3_uri=hosting.artifact_s3_uri,
                    environment=hosting.environment,
                    processing=processing,
                )
            ]
            comment = "the builtin explanation job, which also records the model's own predictions of every row"
        else:
            self.job_role = self._clarify_job_role(stack, results_bucket, key, hosting.model_arn, endpoint_name)
            self.jobs = [
                clarify_job(
                    self,
                    role=self.job_role,
                    key=key,
                    region=stack.region,
                    processing=processing,
                )
            ]
        # with an existing endpoint Clarify explains whatever model that endpoint serves, which need not be ours:
        # predictions from our model could belong to another model, so none are made (postprocess reports them missing)
        if not endpoint_name and engine != "builtin":
            _grant_predictions(hosting.role, results_bucket, key)
            self.jobs.append(
                predict_job(
                    self,
                    model_name=hosting.model_name,
                    model_arn=hosting.model_arn,
                    key=key,
                    settings=predict,
                    timeout_seconds=processing.max_runtime_seconds + 1800,
                )
            )
        definition = explanation_definition(
            self,
            prepare=self.prepare_fn,
            postprocess=self.postprocess_fn,
            record_failure=self.failure_fn,
            bus=self.bus,
            jobs=self.jobs,
            comment=comment,
        )
        log_group = logs.LogGroup(
            self,
            "StateMachineLogs",
            retention=functions.log_retention,
            encryption_key=key,
            removal_policy=functions.removal,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            timeout=Duration.seconds(processing.max_runtime_seconds + 3600),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
        )
        for job in self.jobs:
            job.grant(self.state_machine.role)
        self.state_machine.add_to_role_policy(use_key(key, "kms:DescribeKey"))
        # the jobs' volumes and outputs are encrypted with this key: SageMaker may check that the caller could
        # grant it to an AWS service
        self.state_machine.add_to_role_policy(grant_for_aws_resources(key))
        accept_inline_policy(self.state_machine.role)
        allow_wildcards(
            self.state_machine.role,
            reason="X-Ray and the delivery of execution logs have no resource-level permissions; the state machine "
            "may invoke the versions of its three functions (<arn>:*)",
            applies_to=[
                "Resource::*",
                resource_regex(r"^Resource::<Workflow(Prepare|Postprocess|RecordFailure)Fn[A-Z0-9]+\.Arn>:\*$"),
            ],
        )

    # ---- IAM for the functions: exactly the prefixes each one touches ----

    def _grant_data(self, input_bucket: s3.IBucket, results_bucket: s3.IBucket, key: kms.IKey) -> None:
        runs = results_bucket.arn_for_objects(f"{RUNS_PREFIX}*")
        read_input = read_input_objects(input_bucket)
        # No s3:prefix condition: S3 decides 404 or 403 for a missing object by whether the caller may list the
        # bucket, and that check carries no prefix. The functions test for manifests that do not exist yet.
        list_runs = iam.PolicyStatement(actions=["s3:ListBucket"], resources=[results_bucket.bucket_arn])
        rw_runs = iam.PolicyStatement(
            actions=["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"], resources=[runs]
        )
        for fn in self.functions:
            fn.add_to_role_policy(list_runs)
            fn.add_to_role_policy(rw_runs)
            fn.add_to_role_policy(use_key(key))
        self.prepare_fn.add_to_role_policy(read_input)
        self.failure_fn.add_to_role_policy(read_input)
        # a new attempt of a failed run first removes the failed attempt's outputs, so none mixes into the new one
        self.prepare_fn.add_to_role_policy(iam.PolicyStatement(actions=["s3:DeleteObject"], resources=[runs]))
        for fn in self.functions:
            reads_input = fn in (self.prepare_fn, self.failure_fn)
            allow_wildcards(
                fn.role,
                reason="run ids are made at run time: the function reads and writes inside runs/<run_id>/ (runs/*)"
                + (", and reads the upload a run names under incoming/ or uploads/" if reads_input else ""),
                applies_to=[
                    resource_regex(rf"^Resource::{RESULTS_RUNS}\/\*$"),
                    *([readable_inputs_regex()] if reads_input else []),
                ],
            )

    def _clarify_job_role(
        self, stack: Stack, results_bucket: s3.IBucket, key: kms.IKey, model_arn: str, endpoint_name: str | None
    ) -> iam.Role:
        role = iam.Role(
            self,
            "ClarifyJobRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="Clarify processing jobs: read a run's input and config, write its clarify/ output",
        )
        for statement in job_run_access(results_bucket, reads=["input", "config"], writes="clarify"):
            role.add_to_policy(statement)
        role.add_to_policy(use_key(key, "kms:DescribeKey"))
        role.add_to_policy(grant_for_aws_resources(key))
        # SageMaker's role documentation lists ECR pull actions for a processing job's role (the job's image is
        # pulled with it); the only image this job runs is Clarify's, in AWS's registry for the region
        role.add_to_policy(
            iam.PolicyStatement(
                sid="PullClarifyImage",
                actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                resources=[clarify_repository_arn(stack.region)],
            )
        )
        role.add_to_policy(iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]))
        if endpoint_name:  # an existing endpoint: invoke it, create nothing
            endpoint = stack.format_arn(service="sagemaker", resource="endpoint", resource_name=endpoint_name.lower())
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="ExistingEndpoint",
                    actions=["sagemaker:InvokeEndpoint", "sagemaker:DescribeEndpoint"],
                    resources=[endpoint],
                )
            )
        else:
            temporary = [
                stack.format_arn(service="sagemaker", resource=kind, resource_name=f"{CLARIFY_ENDPOINT_PREFIX}*")
                for kind in ("endpoint", "endpoint-config")
            ]
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="TemporaryEndpoints",
                    actions=[
                        "sagemaker:CreateEndpointConfig",
                        "sagemaker:DescribeEndpointConfig",
                        "sagemaker:DeleteEndpointConfig",
                        "sagemaker:CreateEndpoint",
                        "sagemaker:DescribeEndpoint",
                        "sagemaker:DeleteEndpoint",
                        "sagemaker:InvokeEndpoint",
                        "sagemaker:AddTags",
                    ],
                    resources=temporary,
                )
            )
        role.add_to_policy(iam.PolicyStatement(actions=["sagemaker:DescribeModel"], resources=[model_arn]))
        _grant_processing_job_logs(stack, role)
        accept_inline_policy(role)
        allow_wildcards(
            role,
            reason="Clarify reads runs/<run_id>/input|config and writes runs/<run_id>/clarify for run ids made at run "
            "time; SageMaker names processing-job log groups per job; ecr:GetAuthorizationToken and "
            "cloudwatch:PutMetricData have no resource-level permission (the latter is limited to the "
            "processing-jobs namespace by a condition)"
            + (
                ""
                if endpoint_name
                else f"; it creates, invokes and deletes temporary endpoints {CLARIFY_ENDPOINT_PREFIX}*"
            ),
            applies_to=[
                "Resource::*",
                resource_regex(rf"^Resource::{RESULTS_RUNS}\/\*\/(input|config|clarify)\/\*$"),
                _PROCESSING_JOB_LOGS_REGEX,
                *(
                    []
                    if endpoint_name
                    else [
                        resource_regex(
                            r"^Resource::arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d+:endpoint(-config)?\/"
                            + re.escape(CLARIFY_ENDPOINT_PREFIX)
                            + r"\*$"
                        )
                    ]
                ),
            ],
        )
        return role

    def _builtin_job_role(
        self, stack: Stack, results_bucket: s3.IBucket, key: kms.IKey, hosting: ModelHosting, path: str | None
    ) -> iam.Role:
        """The builtin job: read a run's shards and config and the model (image, artifact), write its clarify/ and
        predict/output/, its logs. It calls no SageMaker API (no endpoint, no model: it runs the model itself). Its
        path is under the stage's model role path, which another account's artifacts grant admits."""
        role = iam.Role(
            self,
            "BuiltinJobRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="Builtin explanation jobs: read a run's input, config and the model; write clarify/ and "
            "predict/output/",
            path=path,
        )
        runs = lambda part: results_bucket.arn_for_objects(f"{RUNS_PREFIX}*/{part}/*")  # noqa: E731
        role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[runs("input"), runs("config")]))
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject", "s3:AbortMultipartUpload"], resources=[runs("clarify"), runs("predict/output")]
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[results_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{RUNS_PREFIX}*"]}},
            )
        )
        role.add_to_policy(use_key(key, "kms:DescribeKey"))
        role.add_to_policy(grant_for_aws_resources(key))
        hosting.grant_model_use(role)
        _grant_processing_job_logs(stack, role)
        accept_inline_policy(role)
        allow_wildcards(
            role,
            reason="the builtin job reads runs/<run_id>/input|config and writes runs/<run_id>/clarify and "
            "runs/<run_id>/predict/output for run ids made at run time; SageMaker names processing-job log groups "
            "per job; ecr:GetAuthorizationToken and cloudwatch:PutMetricData have no resource-level permission (the "
            "latter is limited to the processing-jobs namespace by a condition)",
            applies_to=[
                "Resource::*",
                resource_regex(rf"^Resource::{RESULTS_RUNS}\/\*\/(input|config|clarify|predict\/output)\/\*$"),
                _PROCESSING_JOB_LOGS_REGEX,
            ],
        )
        return role


def _grant_processing_job_logs(stack: Stack, role: iam.Role) -> None:
    """What every SageMaker processing job's role needs to log: its job's log groups and streams (SageMaker names
    them per job under /aws/sagemaker/ProcessingJobs), and metrics in the processing-jobs namespace only."""
    job_logs = stack.format_arn(
        service="logs",
        resource="log-group",
        resource_name="/aws/sagemaker/ProcessingJobs*",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            resources=[job_logs, f"{job_logs}:log-stream:*"],
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["cloudwatch:PutMetricData"],
            resources=["*"],
            conditions={"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/ProcessingJobs"}},
        )
    )


def _grant_predictions(model_role: iam.IRole, results_bucket: s3.IBucket, key: kms.IKey) -> None:
    """Batch Transform reads a run's predict/input and writes its predict/output with the model's own role."""
    for statement in job_run_access(results_bucket, reads=["predict/input"], writes="predict/output"):
        model_role.add_to_principal_policy(statement)
    model_role.add_to_principal_policy(use_key(key))
    allow_wildcards(
        model_role,
        reason="Batch Transform reads runs/<run_id>/predict/input and writes runs/<run_id>/predict/output with the "
        "model's role, for run ids made at run time",
        applies_to=[resource_regex(rf"^Resource::{RESULTS_RUNS}\/\*\/predict\/(input|output)\/\*$")],
    )

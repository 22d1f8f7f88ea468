"""The explanation workflow: the three Lambdas, the Clarify job role, the state machine, its events.

prepare -> (already done? end) -> in parallel: the Clarify processing job and the Batch Transform job that records the
model's own predictions (both .sync) -> postprocess -> "Explanation Succeeded"
any failure -> record_failure (FAILED manifest) -> "Explanation Failed" -> Fail
"""

from __future__ import annotations

import json

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from explain_workflow.start import READABLE_PREFIXES
from infra.config import StageConfig
from infra.constructs.functions import project_function
from infra.constructs.layer import dependencies_layer
from infra.constructs.model import ModelHosting
from infra.constructs.sagemaker_jobs import PROCESSING, TRANSFORM, SageMakerJob
from infra.images import clarify_image_uri, clarify_repository_arn

EVENT_SOURCE = "clarify-text-explanations"
JOB_NAME_PREFIX = "cx-"
TRANSFORM_NAME_PREFIX = "cp-"
# Errors that mean the input or Clarify's output is wrong: retrying cannot help.
NO_RETRY = ["InputValidationError", "ClarifyOutputError", "ValidationError"]
LAMBDA_TRANSIENT = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]


class ExplanationWorkflow(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: StageConfig,
        input_bucket: s3.IBucket,
        results_bucket: s3.IBucket,
        key: kms.IKey,
        hosting: ModelHosting,
    ):
        super().__init__(scope, id)
        stack = Stack.of(self)
        self.config = config
        self.hosting = hosting
        # with an existing endpoint Clarify explains whatever model that endpoint serves, which need not be ours:
        # predictions from our model could belong to another model, so none are made (postprocess reports them missing)
        self.predicts = not config.hosting.endpoint_name
        self.bus = events.EventBus(self, "Bus", event_bus_name=f"text-explanations-{config.stage}")
        removal = RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY
        self.retention = retention = retention_days(config.log_retention_days)

        self.env = env = {
            "RESULTS_BUCKET": results_bucket.bucket_name,
            "LABELS": json.dumps(config.model.labels),
            "MODEL_NAME": hosting.model_name,
            "MODEL_IDENTITY": stack.to_json_string(hosting.identity),
            **({"ENDPOINT_NAME": config.hosting.endpoint_name} if config.hosting.endpoint_name else {}),
            "ENDPOINT_INSTANCE_TYPE": config.model.endpoint_instance_type,
            "ENDPOINT_INSTANCE_COUNT": str(config.model.endpoint_instance_count),
            "DEFAULT_GRANULARITY": config.clarify.granularity,
            "DEFAULT_LANGUAGE": config.clarify.language,
            "DEFAULT_BASELINE": config.clarify.baseline,
            "DEFAULT_NUM_SAMPLES": str(config.clarify.num_samples),
            "DEFAULT_AGG_METHOD": config.clarify.agg_method,
            "MAX_ROWS": str(config.limits.max_rows),
            "MAX_TEXT_CHARS": str(config.limits.max_text_chars),
            "MAX_OBJECT_BYTES": str(config.limits.max_object_bytes),
            "MAX_NUM_SAMPLES": str(config.limits.max_num_samples),
            "PROCESSING_INSTANCE_TYPE": config.processing.instance_type,
            "PROCESSING_INSTANCE_COUNT": str(config.processing.instance_count),
            "PROCESSING_VOLUME_GB": str(config.processing.volume_size_gb),
            "PROCESSING_MAX_RUNTIME_SECONDS": str(config.processing.max_runtime_seconds),
            "POWERTOOLS_METRICS_NAMESPACE": "TextExplanations",
            "LOG_LEVEL": "INFO",
        }
        self.layer = layer = dependencies_layer(self, "Dependencies")

        def function(name: str, handler: str, timeout: Duration, memory: int) -> lambda_.Function:
            return project_function(
                self,
                name,
                handler=handler,
                timeout=timeout,
                memory=memory,
                environment=env,
                key=key,
                layer=layer,
                retention=retention,
                removal=removal,
                purpose=f"{name} function: its own log group, the run prefixes it touches, the data key",
                reserved_concurrency=config.function_concurrency,
            )

        self.prepare_fn = function("Prepare", "prepare.handler.handler", Duration.minutes(5), 1024)
        self.postprocess_fn = function("Postprocess", "postprocess.handler.handler", Duration.minutes(15), 2048)
        self.failure_fn = function("RecordFailure", "record_failure.handler.handler", Duration.minutes(1), 256)
        self.functions = [self.prepare_fn, self.postprocess_fn, self.failure_fn]
        self._grant_data(input_bucket, results_bucket, key)

        self.job_role = self._clarify_job_role(stack, results_bucket, key, hosting.model_arn)
        if self.predicts:
            self._grant_predictions(results_bucket, key)
        self.definition = self._definition(stack, key)
        log_group = logs.LogGroup(
            self, "StateMachineLogs", retention=retention, encryption_key=key, removal_policy=removal
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            definition_body=sfn.DefinitionBody.from_chainable(self.definition),
            timeout=Duration.seconds(config.processing.max_runtime_seconds + 3600),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
        )
        for job in self.jobs:
            job.grant(self.state_machine.role)
        self.state_machine.add_to_role_policy(use_key(key, "kms:DescribeKey"))
        # the jobs' volumes and outputs are encrypted with this key: SageMaker may check that the caller could
        # grant it to an AWS service
        self.state_machine.add_to_role_policy(grant_for_aws_resources(key))

    # ---- IAM for the functions: exactly the prefixes each one touches ----

    def _grant_data(self, input_bucket: s3.IBucket, results_bucket: s3.IBucket, key: kms.IKey) -> None:
        runs = results_bucket.arn_for_objects("runs/*")
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

    def _grant_predictions(self, results_bucket: s3.IBucket, key: kms.IKey) -> None:
        """Batch Transform reads a run's predict/input and writes its predict/output with the model's own role."""
        role = self.hosting.role
        for statement in job_run_access(results_bucket, reads=["predict/input"], writes="predict/output"):
            role.add_to_policy(statement)
        role.add_to_policy(use_key(key))

    def _clarify_job_role(self, stack: Stack, results_bucket: s3.IBucket, key: kms.IKey, model_arn: str):
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
        if self.config.hosting.endpoint_name:  # an existing endpoint: invoke it, create nothing
            endpoint = stack.format_arn(
                service="sagemaker", resource="endpoint", resource_name=self.config.hosting.endpoint_name.lower()
            )
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="ExistingEndpoint",
                    actions=["sagemaker:InvokeEndpoint", "sagemaker:DescribeEndpoint"],
                    resources=[endpoint],
                )
            )
        else:
            temporary = [
                stack.format_arn(service="sagemaker", resource=kind, resource_name="sm-clarify-*")
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
        return role

    # ---- the state machine ----

    def _lambda(
        self,
        name: str,
        fn: lambda_.IFunction,
        payload: sfn.TaskInput | None,
        result_path: str,
        minutes: int,
        input_path: str | None = None,
    ):
        # payload None: the function gets the state (or input_path's part of it) as its event
        task = tasks.LambdaInvoke(
            self,
            name,
            lambda_function=fn,
            payload=payload,
            input_path=input_path,
            payload_response_only=True,
            result_path=result_path,
            retry_on_service_exceptions=False,
            task_timeout=sfn.Timeout.duration(Duration.minutes(minutes)),
        )
        task.add_retry(errors=LAMBDA_TRANSIENT, interval=Duration.seconds(2), backoff_rate=2, max_attempts=3)
        return task

    def _event(self, name: str, detail_type: str, detail: dict) -> tasks.EventBridgePutEvents:
        return tasks.EventBridgePutEvents(
            self,
            name,
            entries=[
                tasks.EventBridgePutEventsEntry(
                    event_bus=self.bus,
                    source=EVENT_SOURCE,
                    detail_type=detail_type,
                    detail=sfn.TaskInput.from_object(detail),
                )
            ],
            result_path=sfn.JsonPath.DISCARD,
        )

    def _definition(self, stack: Stack, key: kms.IKey) -> sfn.IChainable:
        config = self.config
        record_failure = self._lambda(
            "RecordFailure",
            self.failure_fn,
            sfn.TaskInput.from_object(
                {"request": sfn.JsonPath.entire_payload, "error": sfn.JsonPath.object_at("$.error")}
            ),
            "$.failure",
            2,
        )
        failed = self._event(
            "PublishFailure",
            "Explanation Failed",
            {
                "run_id": sfn.JsonPath.string_at("$.failure.run_id"),
                "status": "FAILED",
                "reason": sfn.JsonPath.string_at("$.failure.reason"),
                "manifest": sfn.JsonPath.string_at("$.failure.manifest_s3_uri"),
            },
        )
        failure_chain = record_failure.next(failed).next(
            sfn.Fail(self, "Failed", error="ExplanationFailed", cause="see the run's manifest.json")
        )

        prepare = self._lambda("Prepare", self.prepare_fn, None, "$.prepare", 6)
        prepare.add_catch(failure_chain, errors=["States.ALL"], result_path="$.error")

        p = "$.prepare"
        clarify = SageMakerJob(
            self,
            "Clarify",
            kind=PROCESSING,
            job_name_path=f"{p}.job_name",
            job_name_prefix=JOB_NAME_PREFIX,
            passed_role=self.job_role,
            result_path="$.clarify",
            timeout_seconds=config.processing.max_runtime_seconds + 1800,
            parameters={
                "ProcessingJobName.$": f"{p}.job_name",
                "RoleArn": self.job_role.role_arn,
                "AppSpecification": {"ImageUri": clarify_image_uri(stack.region)},
                "ProcessingInputs": [
                    _s3_input("dataset", f"{p}.dataset_s3_uri", "/opt/ml/processing/input/data"),
                    _s3_input("analysis_config", f"{p}.config_s3_uri", "/opt/ml/processing/input/config"),
                ],
                "ProcessingOutputConfig": {
                    "KmsKeyId": key.key_arn,
                    "Outputs": [
                        {
                            "OutputName": "analysis_result",
                            "S3Output": {
                                "S3Uri.$": f"{p}.output_s3_uri",
                                "LocalPath": "/opt/ml/processing/output",
                                "S3UploadMode": "EndOfJob",
                            },
                        }
                    ],
                },
                "ProcessingResources": {
                    "ClusterConfig": {
                        "InstanceType.$": f"{p}.processing.instance_type",
                        "InstanceCount.$": f"{p}.processing.instance_count",
                        "VolumeSizeInGB.$": f"{p}.processing.volume_size_gb",
                        "VolumeKmsKeyId": key.key_arn,
                    }
                },
                "StoppingCondition": {"MaxRuntimeInSeconds.$": f"{p}.processing.max_runtime_seconds"},
                # Clarify calls the model's temporary endpoint: the job itself cannot be network-isolated.
                "NetworkConfig": {"EnableNetworkIsolation": False, "EnableInterContainerTrafficEncryption": True},
                "Tags": [{"Key": "explanation-run", "Value.$": f"{p}.run_id"}],
            },
        )
        self.jobs = [clarify]
        if self.predicts:
            self.jobs.append(self._predict_job(key))
        explain = sfn.Parallel(
            self,
            "Explain",
            comment="the Clarify job and the model's own predictions of every row, side by side",
            result_path=sfn.JsonPath.DISCARD,
        )
        for job in self.jobs:
            explain.branch(job.chain)
        explain.add_catch(failure_chain, errors=["States.ALL"], result_path="$.error")

        postprocess = self._lambda("Postprocess", self.postprocess_fn, None, "$.result", 16, input_path=p)
        postprocess.add_catch(failure_chain, errors=["States.ALL"], result_path="$.error")
        succeeded = self._event(
            "PublishSuccess",
            "Explanation Succeeded",
            {
                "run_id": sfn.JsonPath.string_at("$.result.run_id"),
                "status": "SUCCEEDED",
                "records": sfn.JsonPath.number_at("$.result.records"),
                "results": sfn.JsonPath.string_at("$.result.results_prefix"),
                "manifest": sfn.JsonPath.string_at("$.result.manifest_s3_uri"),
                "attempt": sfn.JsonPath.number_at("$.prepare.attempt"),
            },
        )
        already = sfn.Succeed(self, "AlreadyDone", comment="a manifest exists for this run: nothing to do")
        done = sfn.Succeed(self, "Done")
        return prepare.next(
            sfn.Choice(self, "AlreadyDone?")
            .when(sfn.Condition.string_equals("$.prepare.status", "ALREADY_DONE"), already)
            .otherwise(explain.next(postprocess).next(succeeded).next(done))
        )

    def _predict_job(self, key: kms.IKey) -> SageMakerJob:
        """Batch Transform over the frozen rows (predict/input/rows.jsonl -> predict/output/rows.jsonl.out)."""
        predict = "$.prepare.predict"
        settings = self.config.predict
        return SageMakerJob(
            self,
            "Predict",
            kind=TRANSFORM,
            job_name_path=f"{predict}.job_name",
            job_name_prefix=TRANSFORM_NAME_PREFIX,
            # only transforms of our model: the transform runs with the model's role, which may read its inputs
            create_conditions={"ArnEquals": {"sagemaker:ModelArn": self.hosting.model_arn}},
            result_path="$.predict",
            timeout_seconds=self.config.processing.max_runtime_seconds + 1800,
            parameters={
                "TransformJobName.$": f"{predict}.job_name",
                "ModelName": self.hosting.model_name,
                # one row per request: robust against any per-request record bound of the container
                "BatchStrategy": "SingleRecord",
                "MaxPayloadInMB": 6,
                "TransformInput": {
                    "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri.$": f"{predict}.input_s3_uri"}},
                    "ContentType": "application/jsonlines",
                    "SplitType": "Line",
                    "CompressionType": "None",
                },
                "TransformOutput": {
                    "S3OutputPath.$": f"{predict}.output_s3_uri",
                    "Accept": "application/jsonlines",
                    "AssembleWith": "Line",
                    "KmsKeyId": key.key_arn,
                },
                "TransformResources": {
                    "InstanceType": settings.instance_type,
                    "InstanceCount": settings.instance_count,
                    "VolumeKmsKeyId": key.key_arn,
                },
                "DataProcessing": {
                    "InputFilter": "$.text",
                    "JoinSource": "Input",
                    "OutputFilter": "$['row_id','SageMakerOutput']",
                },
                "Tags": [{"Key": "explanation-run", "Value.$": "$.prepare.run_id"}],
            },
        )


def _s3_input(name: str, uri_path: str, local_path: str) -> dict:
    return {
        "InputName": name,
        "AppManaged": False,
        "S3Input": {
            "S3Uri.$": uri_path,
            "LocalPath": local_path,
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
            "S3CompressionType": "None",
        },
    }


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


def job_run_access(results_bucket: s3.IBucket, *, reads: list[str], writes: str) -> list[iam.PolicyStatement]:
    """What a SageMaker job's role needs of a run: read ``runs/*/<reads>/``, write ``runs/*/<writes>/``, list runs/."""
    return [
        iam.PolicyStatement(
            actions=["s3:GetObject"], resources=[results_bucket.arn_for_objects(f"runs/*/{p}/*") for p in reads]
        ),
        iam.PolicyStatement(
            actions=["s3:PutObject", "s3:AbortMultipartUpload"],
            resources=[results_bucket.arn_for_objects(f"runs/*/{writes}/*")],
        ),
        iam.PolicyStatement(
            actions=["s3:ListBucket"],
            resources=[results_bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": ["runs/*"]}},
        ),
    ]


def read_input_objects(input_bucket: s3.IBucket) -> iam.PolicyStatement:
    """Read access to the input keys a run may name (incoming/ and the CLI's uploads/), nothing else there."""
    return iam.PolicyStatement(
        actions=["s3:GetObject", "s3:GetObjectVersion"],
        resources=[input_bucket.arn_for_objects(f"{prefix}*") for prefix in READABLE_PREFIXES],
    )


def grant_for_aws_resources(key: kms.IKey) -> iam.PolicyStatement:
    """kms:CreateGrant only for grants an AWS service makes on the caller's behalf (SageMaker's encrypted volumes)."""
    return iam.PolicyStatement(
        actions=["kms:CreateGrant"], resources=[key.key_arn], conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}}
    )


def use_key(key: kms.IKey, *extra: str) -> iam.PolicyStatement:
    """Exactly the KMS actions S3 SSE-KMS reads and writes need (grant_encrypt_decrypt uses wildcards)."""
    return iam.PolicyStatement(
        actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", *extra], resources=[key.key_arn]
    )

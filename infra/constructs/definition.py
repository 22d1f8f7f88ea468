"""The explanation state machine's definition, built from what it names and nothing else.

prepare -> (already done? end) -> in parallel: the Clarify processing job and the Batch Transform job that records the
model's own predictions (both .sync) -> postprocess -> "Explanation Succeeded"
any failure -> record_failure (FAILED manifest) -> "Explanation Failed" -> Fail

The functions in this module create states in ``scope`` and return them; they grant nothing and set nothing on
``scope`` (the workflow construct grants what the returned jobs need).
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from explain_workflow.contract import (
    CLARIFY_JOB_PREFIX,
    EVENT_SOURCE,
    EXPLAIN_JOB_ENTRYPOINT,
    TRANSFORM_JOB_PREFIX,
    DetailType,
    FailureResult,
    PostprocessResult,
    PredictSettings,
    PrepareResult,
    ProcessingSettings,
    RunStatus,
    json_path,
)
from infra.constructs.sagemaker_jobs import PROCESSING, TRANSFORM, SageMakerJob
from infra.images import clarify_image_uri

# where each step's answer is kept in the execution's state, and the paths into it (fields of the contract's models)
PREPARED, RESULT, FAILURE = "$.prepare", "$.result", "$.failure"


def prepared(*fields: str) -> str:
    return json_path(PrepareResult, *fields, root=PREPARED)


def result(*fields: str) -> str:
    return json_path(PostprocessResult, *fields, root=RESULT)


def failure(*fields: str) -> str:
    return json_path(FailureResult, *fields, root=FAILURE)


LAMBDA_TRANSIENT = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]
# a task waits this much longer than its function may run, so a function's own timeout is what a run reports
TASK_TIMEOUT_MARGIN = Duration.minutes(1)


def task_timeout(function: lambda_.Function) -> Duration:
    """The timeout of the task that invokes ``function``: the function's own timeout plus the margin."""
    if function.timeout is None:
        raise ValueError(f"{function.node.path} has no timeout: its task could not be given one")
    return function.timeout.plus(TASK_TIMEOUT_MARGIN)


def invoke(
    scope: Construct,
    name: str,
    function: lambda_.Function,
    *,
    payload: sfn.TaskInput | None = None,
    result_path: str,
    input_path: str | None = None,
) -> tasks.LambdaInvoke:
    """A Lambda task that retries Lambda's own transient errors, never the function's errors."""
    # payload None: the function gets the state (or input_path's part of it) as its event
    task = tasks.LambdaInvoke(
        scope,
        name,
        lambda_function=function,
        payload=payload,
        input_path=input_path,
        payload_response_only=True,
        result_path=result_path,
        retry_on_service_exceptions=False,
        task_timeout=sfn.Timeout.duration(task_timeout(function)),
    )
    task.add_retry(errors=LAMBDA_TRANSIENT, interval=Duration.seconds(2), backoff_rate=2, max_attempts=3)
    return task


def publish(
    scope: Construct, name: str, *, bus: events.IEventBus, detail_type: DetailType, detail: dict
) -> tasks.EventBridgePutEvents:
    return tasks.EventBridgePutEvents(
        scope,
        name,
        entries=[
            tasks.EventBridgePutEventsEntry(
                event_bus=bus,
                source=EVENT_SOURCE,
                detail_type=detail_type.value,
                detail=sfn.TaskInput.from_object(detail),
            )
        ],
        result_path=sfn.JsonPath.DISCARD,
    )


def clarify_job(
    scope: Construct, *, role: iam.IRole, key: kms.IKey, region: str, processing: ProcessingSettings
) -> SageMakerJob:
    """The Clarify processing job of a run: its name and prefixes from prepare's answer, its cluster and time limit
    from the stage (known at synth, so literals here), run with ``role``."""
    return SageMakerJob(
        scope,
        "Clarify",
        kind=PROCESSING,
        job_name_path=prepared("job_name"),
        job_name_prefix=f"{CLARIFY_JOB_PREFIX}-",
        passed_role=role,
        result_path="$.clarify",
        timeout_seconds=processing.max_runtime_seconds + 1800,
        parameters={
            "ProcessingJobName.$": prepared("job_name"),
            "RoleArn": role.role_arn,
            "AppSpecification": {"ImageUri": clarify_image_uri(region)},
            "ProcessingInputs": [
                _s3_input("dataset", prepared("dataset_s3_uri"), "/opt/ml/processing/input/data"),
                _s3_input("analysis_config", prepared("config_s3_uri"), "/opt/ml/processing/input/config"),
            ],
            "ProcessingOutputConfig": {
                "KmsKeyId": key.key_arn,
                "Outputs": [_s3_output("analysis_result", prepared("output_s3_uri"), "/opt/ml/processing/output")],
            },
            "ProcessingResources": _processing_resources(processing, key),
            "StoppingCondition": {"MaxRuntimeInSeconds": processing.max_runtime_seconds},
            # Clarify calls the model's temporary endpoint: the job itself cannot be network-isolated.
            "NetworkConfig": {"EnableNetworkIsolation": False, "EnableInterContainerTrafficEncryption": True},
            "Tags": [{"Key": "explanation-run", "Value.$": prepared("run_id")}],
        },
    )


def builtin_job(
    scope: Construct,
    *,
    role: iam.IRole,
    key: kms.IKey,
    image_uri: str,
    model_s3_uri: str,
    environment: dict[str, str],
    processing: ProcessingSettings,
) -> SageMakerJob:
    """The builtin engine's processing job (issue 21's contract): our image's explain-job over the run's shards
    (ShardedByS3Key: each instance gets its share), the config and the model artifact; it writes Clarify's outputs
    to clarify/ and the model's own predictions to predict/output/, so no Batch Transform job runs beside it. Named
    like Clarify's job (cx-<run_id>-<attempt>): it is the run's one processing job whichever engine runs it."""
    return SageMakerJob(
        scope,
        "Builtin",
        kind=PROCESSING,
        job_name_path=prepared("job_name"),
        job_name_prefix=f"{CLARIFY_JOB_PREFIX}-",
        passed_role=role,
        result_path="$.builtin",
        timeout_seconds=processing.max_runtime_seconds + 1800,
        parameters={
            "ProcessingJobName.$": prepared("job_name"),
            "RoleArn": role.role_arn,
            "AppSpecification": {"ImageUri": image_uri, "ContainerEntrypoint": EXPLAIN_JOB_ENTRYPOINT},
            "Environment": environment,
            "ProcessingInputs": [
                _s3_input(
                    "dataset",
                    prepared("dataset_s3_uri"),
                    "/opt/ml/processing/input/data",
                    distribution="ShardedByS3Key",
                ),
                _s3_input("analysis_config", prepared("config_s3_uri"), "/opt/ml/processing/input/config"),
                {
                    "InputName": "model",
                    "AppManaged": False,
                    "S3Input": {
                        "S3Uri": model_s3_uri,  # the model's ModelDataUrl: a prefix of exactly that key
                        "LocalPath": "/opt/ml/processing/input/model",
                        "S3DataType": "S3Prefix",
                        "S3InputMode": "File",
                        "S3DataDistributionType": "FullyReplicated",
                        "S3CompressionType": "None",
                    },
                },
            ],
            "ProcessingOutputConfig": {
                "KmsKeyId": key.key_arn,
                "Outputs": [
                    _s3_output("analysis_result", prepared("output_s3_uri"), "/opt/ml/processing/output"),
                    _s3_output("predictions", prepared("predict", "output_s3_uri"), "/opt/ml/processing/predictions"),
                ],
            },
            "ProcessingResources": _processing_resources(processing, key),
            "StoppingCondition": {"MaxRuntimeInSeconds": processing.max_runtime_seconds},
            # the model is scored in-process: the job calls nothing, so it runs with no network at all
            "NetworkConfig": {"EnableNetworkIsolation": True, "EnableInterContainerTrafficEncryption": True},
            "Tags": [{"Key": "explanation-run", "Value.$": prepared("run_id")}],
        },
    )


def predict_job(
    scope: Construct,
    *,
    model_name: str,
    model_arn: str,
    key: kms.IKey,
    settings: PredictSettings,
    timeout_seconds: int,
) -> SageMakerJob:
    """Batch Transform over the frozen rows (predict/input/rows.jsonl -> predict/output/rows.jsonl.out)."""
    return SageMakerJob(
        scope,
        "Predict",
        kind=TRANSFORM,
        job_name_path=prepared("predict", "job_name"),
        job_name_prefix=f"{TRANSFORM_JOB_PREFIX}-",
        # only transforms of our model: the transform runs with the model's role, which may read its inputs
        create_conditions={"ArnEquals": {"sagemaker:ModelArn": model_arn}},
        result_path="$.predict",
        timeout_seconds=timeout_seconds,
        parameters={
            "TransformJobName.$": prepared("predict", "job_name"),
            "ModelName": model_name,
            # one row per request: robust against any per-request record bound of the container
            "BatchStrategy": "SingleRecord",
            "MaxPayloadInMB": 6,
            "TransformInput": {
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri.$": prepared("predict", "input_s3_uri")}
                },
                "ContentType": "application/jsonlines",
                "SplitType": "Line",
                "CompressionType": "None",
            },
            "TransformOutput": {
                "S3OutputPath.$": prepared("predict", "output_s3_uri"),
                "Accept": "application/jsonlines",
                "AssembleWith": "Line",
                "KmsKeyId": key.key_arn,
            },
            "TransformResources": {
                "InstanceType": settings.instance_type,
                "InstanceCount": settings.instance_count,
                "VolumeKmsKeyId": key.key_arn,
            },
            # no InputFilter: the container gets each whole {"row_id", "text"} line (it reads "text"), because what
            # a filter selecting a string would send is undocumented; the answer joins to the line as SageMakerOutput
            "DataProcessing": {
                "JoinSource": "Input",
                "OutputFilter": "$['row_id','SageMakerOutput']",
            },
            "Tags": [{"Key": "explanation-run", "Value.$": prepared("run_id")}],
        },
    )


def explanation_definition(
    scope: Construct,
    *,
    prepare: lambda_.Function,
    postprocess: lambda_.Function,
    record_failure: lambda_.Function,
    bus: events.IEventBus,
    jobs: list[SageMakerJob],
    comment: str = "the Clarify job and the model's own predictions of every row, side by side",
) -> sfn.IChainable:
    """The whole run; ``jobs`` run side by side in the ``Explain`` Parallel state."""
    recorded = invoke(
        scope,
        "RecordFailure",
        record_failure,
        payload=sfn.TaskInput.from_object(
            {"request": sfn.JsonPath.entire_payload, "error": sfn.JsonPath.object_at("$.error")}
        ),
        result_path=FAILURE,
    )
    failed = publish(
        scope,
        "PublishFailure",
        bus=bus,
        detail_type=DetailType.FAILED,
        detail={
            "run_id": sfn.JsonPath.string_at(failure("run_id")),
            "status": RunStatus.FAILED.value,
            "reason": sfn.JsonPath.string_at(failure("reason")),
            "manifest": sfn.JsonPath.string_at(failure("manifest_s3_uri")),
        },
    )
    failure_chain = recorded.next(failed).next(
        sfn.Fail(scope, "Failed", error="ExplanationFailed", cause="see the run's manifest.json")
    )

    prepare_task = invoke(scope, "Prepare", prepare, result_path=PREPARED)
    prepare_task.add_catch(failure_chain, errors=["States.ALL"], result_path="$.error")

    explain = sfn.Parallel(
        scope,
        "Explain",
        comment=comment,
        result_path=sfn.JsonPath.DISCARD,
    )
    for job in jobs:
        explain.branch(job.chain)
    explain.add_catch(failure_chain, errors=["States.ALL"], result_path="$.error")

    postprocessed = invoke(scope, "Postprocess", postprocess, result_path=RESULT, input_path=PREPARED)
    postprocessed.add_catch(failure_chain, errors=["States.ALL"], result_path="$.error")
    succeeded = publish(
        scope,
        "PublishSuccess",
        bus=bus,
        detail_type=DetailType.SUCCEEDED,
        detail={
            "run_id": sfn.JsonPath.string_at(result("run_id")),
            "status": RunStatus.SUCCEEDED.value,
            "records": sfn.JsonPath.number_at(result("records")),
            "results": sfn.JsonPath.string_at(result("results_prefix")),
            "manifest": sfn.JsonPath.string_at(result("manifest_s3_uri")),
            "attempt": sfn.JsonPath.number_at(prepared("attempt")),
        },
    )
    already = sfn.Succeed(scope, "AlreadyDone", comment="a manifest exists for this run: nothing to do")
    done = sfn.Succeed(scope, "Done")
    return prepare_task.next(
        sfn.Choice(scope, "AlreadyDone?")
        .when(sfn.Condition.string_equals(prepared("status"), RunStatus.ALREADY_DONE.value), already)
        .otherwise(explain.next(postprocessed).next(succeeded).next(done))
    )


def _s3_input(name: str, uri_path: str, local_path: str, distribution: str = "FullyReplicated") -> dict:
    return {
        "InputName": name,
        "AppManaged": False,
        "S3Input": {
            "S3Uri.$": uri_path,
            "LocalPath": local_path,
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": distribution,
            "S3CompressionType": "None",
        },
    }


def _s3_output(name: str, uri_path: str, local_path: str) -> dict:
    """A processing job's output, uploaded from ``local_path`` to the S3 URI at ``uri_path`` when the job ends."""
    return {
        "OutputName": name,
        "S3Output": {"S3Uri.$": uri_path, "LocalPath": local_path, "S3UploadMode": "EndOfJob"},
    }


def _processing_resources(processing: ProcessingSettings, key: kms.IKey) -> dict:
    """A processing job's cluster: the stage's instances, their volumes encrypted with ``key``."""
    return {
        "ClusterConfig": {
            "InstanceType": processing.instance_type,
            "InstanceCount": processing.instance_count,
            "VolumeSizeInGB": processing.volume_size_gb,
            "VolumeKmsKeyId": key.key_arn,
        }
    }

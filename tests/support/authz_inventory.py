# ruff: noqa: E501 -- one call per line reads as a table; wrapping would hide the columns
"""Every AWS call each principal of a stage makes at run time: the inventory the authorization tests evaluate.

Two kinds:
- ``HANDLER_CALLS``: what the Lambda handlers call themselves (``contract.FUNCTION_CALLS``). tests/support/aws_calls.py
  records every botocore call the real handlers make during the whole test suite and fails a test whose handler
  makes a call not listed there, so the list cannot fall behind the code.
- ``SERVICE_CALLS``: what AWS services do on a principal's behalf (or as themselves), each with the documentation that
  says so. These cannot be recorded offline, so they are declared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from explain_workflow.contract import FUNCTION_CALLS
from infra.images import clarify_repository_arn
from tests.support.authz import StackPolicies

FUNCTION_ROLES = {
    "prepare": "WorkflowPrepareFnRole",
    "postprocess": "WorkflowPostprocessFnRole",
    "record_failure": "WorkflowRecordFailureFnRole",
    "starter": "TriggerStarterFnRole",
}
# what the handlers call themselves is part of the contract, beside the names it is made of
HANDLER_CALLS = FUNCTION_CALLS


@dataclass(frozen=True)
class ServiceCall:
    """``principal``: "role:<logical id prefix>" (the service acts with that role) or "service:<name>"."""

    principal: str
    action: str
    resource: Callable[[StackPolicies], str]
    source: str
    context: Callable[[StackPolicies], dict] = field(default=lambda s: {})
    applies: Callable[[object], bool] = field(default=lambda config: True)  # by stage config


def _bucket(stack: StackPolicies, name: str) -> str:
    return stack.resolve.arn(stack.logical(f"Storage{name}", "AWS::S3::Bucket"))


def _obj(name: str, key: str) -> Callable[[StackPolicies], str]:
    return lambda s: f"{_bucket(s, name)}/{key}"


def _key(s: StackPolicies) -> str:
    return s.resolve.arn(s.logical("StorageDataKey", "AWS::KMS::Key"))


def _notifications_key(s: StackPolicies) -> str:
    return s.resolve.arn(s.logical("NotificationsKey", "AWS::KMS::Key"))


def _function(prefix: str) -> Callable[[StackPolicies], str]:
    return lambda s: s.resolve.arn(s.logical(prefix, "AWS::Lambda::Function"))


def _log_group(prefix: str) -> Callable[[StackPolicies], str]:
    return lambda s: s.resolve.arn(s.logical(prefix, "AWS::Logs::LogGroup")).removesuffix(":*") + ":log-stream:x"


def _arn(s: StackPolicies, service: str, resource: str) -> str:
    return f"arn:aws:{service}:{s.region}:{s.account}:{resource}"


def _via_s3(bucket: str) -> Callable[[StackPolicies], dict]:
    return lambda s: {
        "kms:ViaService": f"s3.{s.region}.amazonaws.com",
        "kms:EncryptionContext:aws:s3:arn": _bucket(s, bucket),
    }


LAMBDA_DOC = "Lambda Developer Guide: 'Securing environment variables' (the execution role decrypts a customer-key "
LAMBDA_DOC += "environment, context aws:lambda:FunctionArn), 'Lambda execution role' (logs, X-Ray)"
SFN_DOC = "Step Functions Developer Guide: 'IAM policies for SageMaker AI' (create/describe/stop/tags, PassRole, the "
SFN_DOC += "managed events rule), 'Run a job (.sync)'"
CLARIFY_DOC = "SageMaker Developer Guide: 'Configure a SageMaker Clarify processing job' (temporary endpoint "
CLARIFY_DOC += "sm-clarify-*, DescribeModel), 'CreateProcessingJob API: execution role permissions' (S3, logs, ECR)"
MODEL_DOC = "SageMaker Developer Guide: 'CreateModel API: execution role permissions' (ECR pull, model artifact), "
MODEL_DOC += "'Batch transform' (the model's role reads the input and writes the output, KmsKeyId)"
EVENTS_DOC = "EventBridge User Guide: 'Using resource-based policies for Amazon EventBridge' (Lambda, SNS, SQS targets)"
ALARMS_DOC = "SNS Developer Guide: 'Enable compatibility between event sources from AWS services and encrypted topics'"
EVENTS_TO_TOPIC_DOC = (
    "SNS Developer Guide: 'Key management' (aws:SourceAccount and aws:SourceArn in a key policy are "
    "not supported for EventBridge deliveries to encrypted topics)"
)
SNS_DLQ_DOC = (
    "SNS Developer Guide: 'Configuring an Amazon SNS dead-letter queue for a subscription' (queue and key policies)"
)
LOGS_DOC = "CloudWatch Logs User Guide: 'Encrypt log data in CloudWatch Logs using AWS KMS'"
S3_KMS_DOC = (
    "S3 User Guide: 'Using server-side encryption with AWS KMS keys' (GenerateDataKey to write, Decrypt to read)"
)

_builtin = lambda config: config.explainer.engine == "builtin"  # noqa: E731
# the Batch Transform job runs beside Clarify's on the stage's own model; a builtin job writes the predictions itself
_predicts = lambda config: not config.hosting.endpoint_name and not _builtin(config)  # noqa: E731
_temporary_endpoint = _predicts


def _function_calls(fn: str, role: str, function: str, log_prefix: str) -> list[ServiceCall]:
    return [
        ServiceCall(f"role:{role}", "kms:Decrypt", _key, LAMBDA_DOC,
                    lambda s: {"kms:EncryptionContext:aws:lambda:FunctionArn": _function(function)(s)}),
        ServiceCall(f"role:{role}", "logs:CreateLogStream", _log_group(log_prefix), LAMBDA_DOC),
        ServiceCall(f"role:{role}", "logs:PutLogEvents", _log_group(log_prefix), LAMBDA_DOC),
        ServiceCall(f"role:{role}", "xray:PutTraceSegments", lambda s: "*", LAMBDA_DOC),
    ]  # fmt: skip


_JOB = "role:WorkflowClarifyJobRole"
_SM = "role:WorkflowStateMachineRole"
_MODEL = "role:HostingExecutionRole"
_RUN_CONTEXT = {"aws:SecureTransport": "true"}

SERVICE_CALLS: list[ServiceCall] = [
    *_function_calls("prepare", "WorkflowPrepareFnRole", "WorkflowPrepareFn", "WorkflowPrepareFnLogs"),
    *_function_calls("postprocess", "WorkflowPostprocessFnRole", "WorkflowPostprocessFn", "WorkflowPostprocessFnLogs"),
    *_function_calls("failure", "WorkflowRecordFailureFnRole", "WorkflowRecordFailureFn", "WorkflowRecordFailureFnLogs"),
    *_function_calls("starter", "TriggerStarterFnRole", "TriggerStarterFn", "TriggerStarterFnLogs"),
    # Lambda's asynchronous invocation: a failed start goes to the on-failure destination, sent with the function's role
    ServiceCall("role:TriggerStarterFnRole", "sqs:SendMessage", lambda s: s.resolve.arn(s.logical("TriggerUndelivered", "AWS::SQS::Queue")),
                "Lambda Developer Guide: 'Asynchronous invocation: destinations' (the execution role sends)"),
    ServiceCall("role:TriggerStarterFnRole", "kms:GenerateDataKey", _notifications_key, "SQS Developer Guide: 'Key management' "
                "(a producer to an SSE-KMS queue needs GenerateDataKey and Decrypt)"),
    # the state machine: its Lambda tasks, the two .sync jobs, the events it publishes
    *[ServiceCall(_SM, "lambda:InvokeFunction", _function(fn), "Step Functions Developer Guide: 'Invoke Lambda'")
      for fn in ("WorkflowPrepareFn", "WorkflowPostprocessFn", "WorkflowRecordFailureFn")],
    *[ServiceCall(_SM, action, lambda s: _arn(s, "sagemaker", "processing-job/cx-r-1-1"), SFN_DOC)
      for action in ("sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob", "sagemaker:StopProcessingJob",
                     "sagemaker:AddTags", "sagemaker:ListTags")],
    ServiceCall(_SM, "iam:PassRole", lambda s: s.role("WorkflowClarifyJobRole"), SFN_DOC,
                lambda s: {"iam:PassedToService": "sagemaker.amazonaws.com"}),
    *[ServiceCall(_SM, action, lambda s, kind=kind: _arn(s, "events", f"rule/StepFunctionsGetEventsForSageMaker{kind}JobsRule"),
                  SFN_DOC, applies=(lambda c: True) if kind == "Processing" else _predicts)
      for action in ("events:PutRule", "events:PutTargets", "events:DescribeRule") for kind in ("Processing", "Transform")],
    *[ServiceCall(_SM, action, lambda s: _arn(s, "sagemaker", "transform-job/cp-r-1-1"), SFN_DOC,
                  lambda s: {"sagemaker:ModelArn": s.resolve.arn(s.logical("HostingModel", "AWS::SageMaker::Model"))},
                  applies=_predicts)
      for action in ("sagemaker:CreateTransformJob",)],
    *[ServiceCall(_SM, action, lambda s: _arn(s, "sagemaker", "transform-job/cp-r-1-1"), SFN_DOC, applies=_predicts)
      for action in ("sagemaker:DescribeTransformJob", "sagemaker:StopTransformJob", "sagemaker:AddTags",
                     "sagemaker:ListTags")],
    # Step Functions' documented .sync policy grants ListTags on "*" (issue 22): the call is evaluated on that resource
    ServiceCall(_SM, "sagemaker:ListTags", lambda s: "*", SFN_DOC),
    ServiceCall(_SM, "kms:CreateGrant", _key, "SageMaker Developer Guide: 'Protect data at rest using encryption' "
                "(volume and output keys)", lambda s: {"kms:GrantIsForAWSResource": "true"}),
    ServiceCall(_SM, "kms:DescribeKey", _key, "SageMaker Developer Guide: 'Protect data at rest using encryption'"),
    ServiceCall(_SM, "events:PutEvents", lambda s: s.resolve.arn(s.logical("WorkflowBus", "AWS::Events::EventBus")),
                "Step Functions Developer Guide: 'Add EventBridge events with Step Functions'"),
    # the Clarify processing job, with its role
    ServiceCall(_JOB, "s3:GetObject", _obj("Results", "runs/r-1/input/data.csv"), CLARIFY_DOC, lambda s: _RUN_CONTEXT),
    ServiceCall(_JOB, "s3:GetObject", _obj("Results", "runs/r-1/config/analysis_config.json"), CLARIFY_DOC,
                lambda s: _RUN_CONTEXT),
    ServiceCall(_JOB, "kms:Decrypt", _key, S3_KMS_DOC, _via_s3("Results")),
    ServiceCall(_JOB, "s3:PutObject", _obj("Results", "runs/r-1/clarify/analysis.json"), CLARIFY_DOC,
                lambda s: _RUN_CONTEXT),
    ServiceCall(_JOB, "kms:GenerateDataKey", _key, S3_KMS_DOC, _via_s3("Results")),
    ServiceCall(_JOB, "s3:ListBucket", lambda s: _bucket(s, "Results"), CLARIFY_DOC,
                lambda s: {**_RUN_CONTEXT, "s3:prefix": "runs/r-1/input/"}),
    *[ServiceCall(_JOB, action, lambda s, kind=kind: _arn(s, "sagemaker", f"{kind}/sm-clarify-r-1"), CLARIFY_DOC,
                  applies=_temporary_endpoint)
      for action, kind in (("sagemaker:CreateEndpointConfig", "endpoint-config"), ("sagemaker:CreateEndpoint", "endpoint"),
                           ("sagemaker:DescribeEndpoint", "endpoint"), ("sagemaker:InvokeEndpoint", "endpoint"),
                           ("sagemaker:DeleteEndpoint", "endpoint"), ("sagemaker:DeleteEndpointConfig", "endpoint-config"),
                           ("sagemaker:AddTags", "endpoint"))],
    ServiceCall(_JOB, "sagemaker:InvokeEndpoint", lambda s: _arn(s, "sagemaker", "endpoint/text-classifier-prod"),
                CLARIFY_DOC + " (endpoint_name: an existing endpoint)", applies=lambda c: bool(c.hosting.endpoint_name)),
    ServiceCall(_JOB, "sagemaker:DescribeModel", lambda s: s.resolve.arn(s.logical("HostingModel", "AWS::SageMaker::Model")),
                CLARIFY_DOC),
    *[ServiceCall(_JOB, action, lambda s: clarify_repository_arn(s.region),
                  CLARIFY_DOC) for action in ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")],
    ServiceCall(_JOB, "ecr:GetAuthorizationToken", lambda s: "*", CLARIFY_DOC),
    ServiceCall(_JOB, "logs:PutLogEvents", lambda s: _arn(s, "logs", "log-group:/aws/sagemaker/ProcessingJobs:log-stream:cx-r-1-1/algo-1"),
                CLARIFY_DOC),
    ServiceCall(_JOB, "cloudwatch:PutMetricData", lambda s: "*", CLARIFY_DOC,
                lambda s: {"cloudwatch:namespace": "/aws/sagemaker/ProcessingJobs"}),
    # the model's own role: SageMaker pulls its image and artifact; Batch Transform reads and writes with it
    ServiceCall(_MODEL, "ecr:GetAuthorizationToken", lambda s: "*", MODEL_DOC),
    ServiceCall(_MODEL, "s3:GetObject", lambda s: "{artifact}", MODEL_DOC, lambda s: _RUN_CONTEXT),
    ServiceCall(_MODEL, "kms:Decrypt", lambda s: "{artifact-key}", MODEL_DOC,
                lambda s: {"kms:ViaService": f"s3.{s.region}.amazonaws.com",
                           "kms:ResourceAliases": ["alias/text-explainer-models"]},
                applies=lambda c: bool(c.model.artifact_kms_key_arn)),
    ServiceCall(_MODEL, "s3:GetObject", _obj("Results", "runs/r-1/predict/input/rows.jsonl"), MODEL_DOC,
                lambda s: _RUN_CONTEXT, applies=_predicts),
    ServiceCall(_MODEL, "s3:PutObject", _obj("Results", "runs/r-1/predict/output/rows.jsonl.out"), MODEL_DOC,
                lambda s: _RUN_CONTEXT, applies=_predicts),
    ServiceCall(_MODEL, "kms:Decrypt", _key, S3_KMS_DOC, _via_s3("Results"), applies=_predicts),
    ServiceCall(_MODEL, "kms:GenerateDataKey", _key, S3_KMS_DOC, _via_s3("Results"), applies=_predicts),
    ServiceCall(_MODEL, "logs:PutLogEvents", lambda s: _arn(s, "logs", "log-group:/aws/sagemaker/Endpoints/x:log-stream:y"),
                MODEL_DOC),
    # EventBridge delivering to its targets, as itself
    *[ServiceCall("service:events.amazonaws.com", "lambda:InvokeFunction", _function("TriggerStarterFn"), EVENTS_DOC,
                  lambda s, rule=rule: {"aws:SourceArn": s.resolve.arn(s.logical(rule, "AWS::Events::Rule")),
                                        "aws:SourceAccount": s.account})
      for rule in ("TriggerCsvUploaded", "TriggerExplanationRequested")],
    ServiceCall("service:events.amazonaws.com", "sqs:SendMessage",
                lambda s: s.resolve.arn(s.logical("TriggerUndelivered", "AWS::SQS::Queue")), EVENTS_DOC,
                lambda s: {"aws:SourceArn": s.resolve.arn(s.logical("TriggerCsvUploaded", "AWS::Events::Rule")),
                           "aws:SourceAccount": s.account}),
    ServiceCall("service:events.amazonaws.com", "sns:Publish",
                lambda s: s.resolve.arn(s.logical("MonitoringAlarms", "AWS::SNS::Topic")), EVENTS_DOC,
                lambda s: {"aws:SourceArn": s.resolve.arn(s.logical("MonitoringRunResultsToPeople", "AWS::Events::Rule")),
                           "aws:SourceAccount": s.account}),
    # SNS asks KMS as EventBridge without aws:SourceArn/aws:SourceAccount in the request (EVENTS_TO_TOPIC_DOC); so for the
    # dead-letter queue, which shares the key, no source either (the worst case: works whatever SQS passes)
    *[ServiceCall("service:events.amazonaws.com", action, _notifications_key, EVENTS_DOC + "; " + EVENTS_TO_TOPIC_DOC)
      for action in ("kms:GenerateDataKey", "kms:Decrypt")],
    # CloudWatch alarms publishing to the encrypted topic
    ServiceCall("service:cloudwatch.amazonaws.com", "sns:Publish",
                lambda s: s.resolve.arn(s.logical("MonitoringAlarms", "AWS::SNS::Topic")), ALARMS_DOC,
                lambda s: {"aws:SourceArn": _arn(s, "cloudwatch", "alarm:TextExplanations-ExecutionsFailed"),
                           "aws:SourceAccount": s.account}),
    *[ServiceCall("service:cloudwatch.amazonaws.com", action, _notifications_key, ALARMS_DOC,
                  lambda s: {"aws:SourceArn": _arn(s, "cloudwatch", "alarm:TextExplanations-ExecutionsFailed"),
                             "aws:SourceAccount": s.account})
      for action in ("kms:GenerateDataKey", "kms:Decrypt")],
    # SNS moving an e-mail it could not deliver to the subscription's dead-letter queue (stages with alarm_email)
    *[ServiceCall("service:sns.amazonaws.com", action, resource, SNS_DLQ_DOC,
                  lambda s: {"aws:SourceArn": s.resolve.arn(s.logical("MonitoringAlarms", "AWS::SNS::Topic")),
                             "aws:SourceAccount": s.account}, applies=lambda c: bool(c.alarm_email))
      for action, resource in (("sqs:SendMessage", lambda s: s.resolve.arn(s.logical("TriggerUndelivered", "AWS::SQS::Queue"))),
                               ("kms:GenerateDataKey", _notifications_key), ("kms:Decrypt", _notifications_key))],
    # CloudWatch Logs encrypting the log groups
    *[ServiceCall("service:logs.{region}.amazonaws.com", action, _key, LOGS_DOC,
                  lambda s: {"kms:EncryptionContext:aws:logs:arn": _arn(s, "logs", "log-group:/aws/lambda/x")})
      for action in ("kms:GenerateDataKey", "kms:Decrypt", "kms:Encrypt", "kms:DescribeKey")],
]  # fmt: skip


def _clarify_only(call: ServiceCall) -> ServiceCall:
    """A call of the Clarify job (or the passing of its role), made only where Clarify runs."""
    return replace(call, applies=lambda config, applies=call.applies: applies(config) and not _builtin(config))


SERVICE_CALLS = [
    _clarify_only(c) if c.principal == _JOB or (c.action == "iam:PassRole" and c.principal == _SM) else c
    for c in SERVICE_CALLS
]

_BUILTIN = "role:WorkflowBuiltinJobRole"
BUILTIN_DOC = "SageMaker Developer Guide: 'CreateProcessingJob API: execution role permissions' (S3 inputs and "
BUILTIN_DOC += "outputs, S3Prefix inputs listed, ECR pull of the job's image, logs, metrics); issue 21's job contract"


def _artifact_kms(s: StackPolicies) -> dict:
    return {"kms:ViaService": f"s3.{s.region}.amazonaws.com", "kms:ResourceAliases": ["alias/text-explainer-models"]}


# the builtin processing job, with its role: the shards, the config and the model in; Clarify's outputs and the
# predictions out; its image (pulls are added per stage by the test, as for the model role) and its logs
SERVICE_CALLS += [
    ServiceCall(_SM, "iam:PassRole", lambda s: s.role("WorkflowBuiltinJobRole"), SFN_DOC,
                lambda s: {"iam:PassedToService": "sagemaker.amazonaws.com"}, applies=_builtin),
    *[ServiceCall(_BUILTIN, "s3:GetObject", _obj("Results", key), BUILTIN_DOC, lambda s: _RUN_CONTEXT, applies=_builtin)
      for key in ("runs/r-1/input/dataset.part-00000.csv", "runs/r-1/input/dataset.part-00001.csv",
                  "runs/r-1/config/analysis_config.json")],
    ServiceCall(_BUILTIN, "s3:ListBucket", lambda s: _bucket(s, "Results"), BUILTIN_DOC,
                lambda s: {**_RUN_CONTEXT, "s3:prefix": "runs/r-1/input/"}, applies=_builtin),
    ServiceCall(_BUILTIN, "s3:ListBucket", lambda s: _bucket(s, "Results"), BUILTIN_DOC,
                lambda s: {**_RUN_CONTEXT, "s3:prefix": "runs/r-1/config/"}, applies=_builtin),
    ServiceCall(_BUILTIN, "kms:Decrypt", _key, S3_KMS_DOC, _via_s3("Results"), applies=_builtin),
    *[ServiceCall(_BUILTIN, action, _obj("Results", key), BUILTIN_DOC, lambda s: _RUN_CONTEXT, applies=_builtin)
      for key in ("runs/r-1/clarify/explanations_shap/out.part-00001.jsonl", "runs/r-1/clarify/analysis.part-00001.json",
                  "runs/r-1/predict/output/rows.part-00001.jsonl.out")
      for action in ("s3:PutObject", "s3:AbortMultipartUpload")],
    ServiceCall(_BUILTIN, "kms:GenerateDataKey", _key, S3_KMS_DOC, _via_s3("Results"), applies=_builtin),
    ServiceCall(_BUILTIN, "s3:GetObject", lambda s: "{artifact}", BUILTIN_DOC, lambda s: _RUN_CONTEXT, applies=_builtin),
    ServiceCall(_BUILTIN, "s3:ListBucket", lambda s: "{artifact-bucket}", BUILTIN_DOC,
                lambda s: {**_RUN_CONTEXT, "s3:prefix": "{artifact-object-key}"}, applies=_builtin),
    ServiceCall(_BUILTIN, "kms:Decrypt", lambda s: "{artifact-key}", S3_KMS_DOC, _artifact_kms,
                applies=lambda c: _builtin(c) and bool(c.model.artifact_kms_key_arn)),
    ServiceCall(_BUILTIN, "ecr:GetAuthorizationToken", lambda s: "*", BUILTIN_DOC, applies=_builtin),
    *[ServiceCall(_BUILTIN, action, lambda s: _arn(s, "logs", "log-group:/aws/sagemaker/ProcessingJobs:log-stream:cx-r-1-1/algo-2"),
                  BUILTIN_DOC, applies=_builtin) for action in ("logs:CreateLogStream", "logs:PutLogEvents")],
    ServiceCall(_BUILTIN, "cloudwatch:PutMetricData", lambda s: "*", BUILTIN_DOC,
                lambda s: {"cloudwatch:namespace": "/aws/sagemaker/ProcessingJobs"}, applies=_builtin),
]  # fmt: skip

# S3 sending "Object Created" to EventBridge needs no policy: the bucket's EventBridge configuration is enough
# (S3 User Guide: 'Using EventBridge'). Declared here so the inventory is complete; nothing to evaluate.
NO_POLICY_CALLS = [("service:s3.amazonaws.com", "events:PutEvents (default bus, Object Created)")]

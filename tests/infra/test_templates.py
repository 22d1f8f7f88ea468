"""Assertions on the synthesized templates: encryption, access, isolation, exact IAM, the Clarify step."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match, Template

from explain_workflow.contract import SETTINGS_ENV, STARTER_SETTINGS_ENV, StarterSettings, WorkflowSettings
from infra.config import load_stage, workflow_settings
from infra.images import blazingtext_image_uri, clarify_image_uri
from tests.support.api_model import all_states
from tests.support.cfn import STAGES, Resolver, resources
from tests.support.local_sfn import definition_from_template

# IAM actions that have no resource-level permissions, so "*" is the only possible resource.
RESOURCE_STAR_ALLOWED = {
    "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets",
    "cloudwatch:PutMetricData", "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups", "ecr:GetAuthorizationToken",
    "sagemaker:ListTags",  # Step Functions' documented policy for .sync SageMaker jobs (issue 22)
}  # fmt: skip


@pytest.fixture(params=STAGES)
def stage(request, synthesized):
    return request.param, synthesized.templates[request.param], Template.from_json(synthesized.templates[request.param])


def statements(template: dict):
    for logical_id, res in template["Resources"].items():
        if res["Type"] == "AWS::IAM::Policy":
            for st in res["Properties"]["PolicyDocument"]["Statement"]:
                yield logical_id, st


def as_list(value):
    return value if isinstance(value, list) else [value]


def test_buckets_are_encrypted_private_tls_only(stage):
    name, template, t = stage
    buckets = resources(template, "AWS::S3::Bucket")
    assert len(buckets) == 3
    for bucket in buckets.values():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True
        }  # fmt: skip
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    kms_buckets = [b for b in buckets.values() if "LoggingConfiguration" in b["Properties"]]
    assert len(kms_buckets) == 2  # input and results: KMS with the data key, access-logged
    for bucket in kms_buckets:
        rule = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    for policy in resources(template, "AWS::S3::BucketPolicy").values():
        denies = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
        assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in denies)
    t.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    notifications = resources(template, "Custom::S3BucketNotifications")
    (config,) = [n["Properties"]["NotificationConfiguration"] for n in notifications.values()]
    assert config == {"EventBridgeConfiguration": {}}
    expected_policy = "Retain" if load_stage(name).retain_data else "Delete"
    assert {b["DeletionPolicy"] for b in buckets.values()} == {expected_policy}


# Resources that hold data, by logical id. A changed id is a replacement on the next deploy: a new, empty bucket or
# queue, a log group without its history, a new key that cannot read what the old one encrypted.
STATEFUL = {
    "StorageDataKeyE15BA43B": "AWS::KMS::Key",
    "NotificationsKey74C0825E": "AWS::KMS::Key",
    "StorageAccessLogs96FB524C": "AWS::S3::Bucket",
    "StorageInput124FA7A1": "AWS::S3::Bucket",
    "StorageResultsB2A4FB2E": "AWS::S3::Bucket",
    "TriggerUndelivered1A059927": "AWS::SQS::Queue",
    "WorkflowPrepareFnLogsAC84A942": "AWS::Logs::LogGroup",
    "WorkflowPostprocessFnLogs33C78624": "AWS::Logs::LogGroup",
    "WorkflowRecordFailureFnLogsD1582F86": "AWS::Logs::LogGroup",
    "WorkflowStateMachineLogs25053C9F": "AWS::Logs::LogGroup",
    "TriggerStarterFnLogs27AE645C": "AWS::Logs::LogGroup",
}


def test_stateful_logical_ids_are_stable(stage):
    _, template, _ = stage
    kinds = set(STATEFUL.values())
    assert {k: r["Type"] for k, r in template["Resources"].items() if r["Type"] in kinds} == STATEFUL


def test_model_is_network_isolated_with_the_stage_labels(stage):
    name, template, _ = stage
    config = load_stage(name)
    (model,) = resources(template, "AWS::SageMaker::Model").values()
    props = model["Properties"]
    assert props["EnableNetworkIsolation"] is True
    # every property of a model is create-only: only a generated name lets CloudFormation replace it
    assert "ModelName" not in props
    # a run in flight during an update keeps the model it started with; deleting the stack deletes the model
    assert model["UpdateReplacePolicy"] == "Retain"
    assert model.get("DeletionPolicy", "Delete") == "Delete"
    if config.hosting.mode == "byoc":
        ours = [props["PrimaryContainer"]]
        assert ours[0]["ModelDataUrl"] == config.model.artifact_s3_uri
    else:  # the "pipeline" mode: pre-adapter, AWS's BlazingText with the artifact, post-adapter, in series
        pre, builtin, post = props["Containers"]
        assert props["InferenceExecutionConfig"] == {"Mode": "Serial"}
        assert builtin == {"Image": blazingtext_image_uri(config.region), "ModelDataUrl": config.model.artifact_s3_uri}
        assert pre["Environment"]["SERVE_MODE"] == "pre-adapter"
        assert post["Environment"]["SERVE_MODE"] == "post-adapter"
        ours = [pre, post]
    for container in ours:
        assert json.loads(container["Environment"]["LABELS"]) == config.model.labels
        # the container refuses texts by the same limit prepare applies
        assert container["Environment"]["MAX_TEXT_CHARS"] == str(config.limits.max_text_chars)
        image = json.dumps(container["Image"])
        if config.model.image_source == "repository":
            assert f":{config.model.image_tag}" in image
            assert f"/text-explanations-{name}:" in image  # the stage's repository, from its own stack
        else:
            assert "cdk-hnb659fds-container-assets" in image


def test_clarify_job_role_uses_only_the_endpoint_it_is_given(stage):
    name, template, _ = stage
    config = load_stage(name)
    job = [st for lid, st in statements(template) if lid.startswith("WorkflowClarifyJobRole")]
    endpoint_statements = [st for st in job if any("Endpoint" in a for a in as_list(st["Action"]))]
    (endpoints,) = endpoint_statements
    if config.hosting.endpoint_name:
        assert set(endpoints["Action"]) == {"sagemaker:InvokeEndpoint", "sagemaker:DescribeEndpoint"}
        assert endpoints["Resource"] == (
            f"arn:aws:sagemaker:{config.region}:{config.account}:endpoint/{config.hosting.endpoint_name}"
        )
    else:
        assert all(r.endswith("/sm-clarify-*") for r in endpoints["Resource"])


def test_online_explainer_only_where_configured(stage):
    name, template, _ = stage
    config = load_stage(name)
    configs = resources(template, "AWS::SageMaker::EndpointConfig")
    if not config.hosting.online_explainer:
        assert configs == {}
        return
    (endpoint_config,) = configs.values()
    explainer = endpoint_config["Properties"]["ExplainerConfig"]["ClarifyExplainerConfig"]
    assert explainer["InferenceConfig"]["LabelHeaders"] == config.model.labels
    assert explainer["InferenceConfig"]["FeatureTypes"] == ["text"]
    assert explainer["ShapConfig"]["TextConfig"] == {"Granularity": config.clarify.granularity, "Language": "en"}
    assert explainer["ShapConfig"]["ShapBaselineConfig"] == {"ShapBaseline": config.clarify.baseline}
    assert "KmsKeyId" in endpoint_config["Properties"]
    assert len(resources(template, "AWS::SageMaker::Endpoint")) == 1


def test_ecr_repository_in_its_own_stack_deployed_first(stage, synthesized):
    """A model pulling <repository>:<tag> needs the tag pushed, so the repository cannot live in the model's stack."""
    name, template, _ = stage
    assert resources(template, "AWS::ECR::Repository") == {}
    images = Template.from_json(synthesized.image_templates[name])
    images.has_resource_properties(
        "AWS::ECR::Repository",
        {
            "RepositoryName": f"text-explanations-{name}",
            "ImageTagMutability": "IMMUTABLE",
            "ImageScanningConfiguration": {"ScanOnPush": True},
            "EncryptionConfiguration": {"EncryptionType": "KMS"},
            "LifecyclePolicy": Match.object_like({"LifecyclePolicyText": Match.any_value()}),
        },
    )
    stack = synthesized.stacks[name]
    assert [d.stack_name for d in stack.dependencies] == [f"TextExplanations-{name}-images"]


def test_state_machine_logs_everything_encrypted_and_traces(stage):
    _, template, t = stage
    t.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "LoggingConfiguration": Match.object_like({"Level": "ALL", "IncludeExecutionData": True}),
            "TracingConfiguration": {"Enabled": True},
        },
    )
    for group in resources(template, "AWS::Logs::LogGroup").values():
        assert "KmsKeyId" in group["Properties"]
        assert "RetentionInDays" in group["Properties"]


def test_iam_has_no_wildcard_actions_and_star_resources_only_where_unavoidable(stage):
    _, template, _ = stage
    for logical_id, st in statements(template):
        for action in as_list(st["Action"]):
            assert action != "*"
            assert not action.endswith(":*"), (logical_id, action)
        if "*" in as_list(st.get("Resource", [])):
            assert set(as_list(st["Action"])) <= RESOURCE_STAR_ALLOWED, (logical_id, st)


def test_pass_role_only_the_job_role_only_to_sagemaker(stage):
    _, template, _ = stage
    passes = [(lid, st) for lid, st in statements(template) if "iam:PassRole" in as_list(st["Action"])]
    assert passes
    for _, st in passes:
        assert st["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
        (resource,) = as_list(st["Resource"])
        assert resource["Fn::GetAtt"][0].startswith("WorkflowClarifyJobRole")


@pytest.mark.parametrize(("api", "arn", "prefix"), [("ProcessingJob", "processing-job", "cx-"),
                                                     ("TransformJob", "transform-job", "cp-")])  # fmt: skip
def test_state_machine_role_manages_only_our_jobs(stage, api, arn, prefix):
    name, template, _ = stage
    config = load_stage(name)
    sm = [st for lid, st in statements(template) if lid.startswith("WorkflowStateMachineRole")]
    creates = [st for st in sm if f"sagemaker:Create{api}" in as_list(st["Action"])]
    if api == "TransformJob" and config.hosting.endpoint_name:
        assert creates == []  # an existing endpoint: no predictions from a model that may not be the explained one
        return
    (create,) = creates
    assert create["Action"] == f"sagemaker:Create{api}"
    assert create["Resource"] == f"arn:aws:sagemaker:{config.region}:{config.account}:{arn}/{prefix}*"
    if api == "TransformJob":  # only of our model: the transform runs with the model's own role
        (model_id,) = resources(template, "AWS::SageMaker::Model")
        assert create["Condition"] == {"ArnEquals": {"sagemaker:ModelArn": {"Fn::GetAtt": [model_id, "ModelArn"]}}}
    (manage,) = [st for st in sm if f"sagemaker:Describe{api}" in as_list(st["Action"])]
    assert set(manage["Action"]) == {f"sagemaker:Describe{api}", f"sagemaker:Stop{api}", "sagemaker:AddTags"}
    # ListTags as Step Functions documents it for .sync jobs (on "*"), and no other SageMaker action on "*"
    anywhere = [a for st in sm if "*" in as_list(st["Resource"]) for a in as_list(st["Action"])]
    assert [a for a in anywhere if a.startswith("sagemaker:")] == ["sagemaker:ListTags"], anywhere
    rule = [st for st in sm if "events:PutRule" in as_list(st["Action"]) and api in json.dumps(st["Resource"])]
    assert rule[0]["Resource"].endswith(f":rule/StepFunctionsGetEventsForSageMaker{api}sRule")


def test_clarify_step_parameters(stage):
    name, template, _ = stage
    config = load_stage(name)
    definition = definition_from_template(template, config.region, config.account)
    (clarify,) = [s for s in all_states(definition).values() if "createProcessingJob" in s.get("Resource", "")]
    assert clarify["Resource"] == "arn:aws:states:::sagemaker:createProcessingJob.sync"
    params = clarify["Parameters"]
    assert params["AppSpecification"] == {"ImageUri": clarify_image_uri(config.region)}
    assert params["ProcessingJobName.$"] == "$.prepare.job_name"
    assert [i["InputName"] for i in params["ProcessingInputs"]] == ["dataset", "analysis_config"]
    assert params["ProcessingInputs"][0]["S3Input"]["LocalPath"] == "/opt/ml/processing/input/data"
    assert params["ProcessingInputs"][1]["S3Input"]["LocalPath"] == "/opt/ml/processing/input/config"
    (output,) = params["ProcessingOutputConfig"]["Outputs"]
    assert output["OutputName"] == "analysis_result"
    assert output["S3Output"]["LocalPath"] == "/opt/ml/processing/output"
    assert params["NetworkConfig"]["EnableNetworkIsolation"] is False
    assert clarify["TimeoutSeconds"] == config.processing.max_runtime_seconds + 1800
    # known at synth: literals from the stage, not echoed back through prepare's answer
    assert params["ProcessingResources"]["ClusterConfig"] == {
        "InstanceType": config.processing.instance_type,
        "InstanceCount": config.processing.instance_count,
        "VolumeSizeInGB": config.processing.volume_size_gb,
        "VolumeKmsKeyId": params["ProcessingOutputConfig"]["KmsKeyId"],
    }
    assert params["StoppingCondition"] == {"MaxRuntimeInSeconds": config.processing.max_runtime_seconds}
    # a failed job fails the branch (and the Parallel's catch records it); an error of the create call itself looks
    # for a job of that name and follows it
    (catch,) = clarify["Catch"]
    assert catch["ErrorEquals"] == [
        "ThrottlingException", "SageMaker.AmazonSageMakerException",
        "SageMaker.ResourceInUse", "SageMaker.ResourceInUseException",  # every documented duplicate-name error
    ]  # fmt: skip
    assert catch["Next"] == "FindClarifyJob"


def test_predict_step_parameters_follow_the_contract(stage):
    name, template, _ = stage
    config = load_stage(name)
    definition = definition_from_template(template, config.region, config.account)
    found = [s for s in all_states(definition).values() if "createTransformJob" in s.get("Resource", "")]
    if config.hosting.endpoint_name:
        assert found == []
        return
    (predict,) = found
    assert predict["Resource"] == "arn:aws:states:::sagemaker:createTransformJob.sync"
    params = predict["Parameters"]
    (model_id,) = resources(template, "AWS::SageMaker::Model")
    assert params["ModelName"] == model_id  # the generated name (resolved: named by its logical id)
    assert params["TransformJobName.$"] == "$.prepare.predict.job_name"
    assert params["BatchStrategy"] == "SingleRecord"
    assert params["MaxPayloadInMB"] == 6
    assert params["TransformInput"]["ContentType"] == "application/jsonlines"
    assert params["TransformInput"]["SplitType"] == "Line"
    assert params["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri.$"] == "$.prepare.predict.input_s3_uri"
    # no InputFilter: the container gets the whole {"row_id", "text"} line (issue 22)
    assert params["DataProcessing"] == {"JoinSource": "Input", "OutputFilter": "$['row_id','SageMakerOutput']"}
    assert params["TransformOutput"]["S3OutputPath.$"] == "$.prepare.predict.output_s3_uri"
    assert params["TransformOutput"]["AssembleWith"] == "Line"
    assert params["TransformOutput"]["KmsKeyId"].startswith("arn:aws:kms:")
    assert params["TransformResources"]["InstanceType"] == config.predict.instance_type
    (parallel,) = [s for s in definition["States"].values() if s["Type"] == "Parallel"]
    assert len(parallel["Branches"]) == 2


def test_every_task_has_a_timeout_and_lambda_retries_skip_validation_errors(stage):
    _, template, _ = stage
    definition = definition_from_template(template)
    tasks = {k: v for k, v in all_states(definition).items() if v["Type"] == "Task"}
    for state_name, state in tasks.items():
        if "lambda:invoke" in state["Resource"]:
            assert "TimeoutSeconds" in state, state_name
            for retry in state.get("Retry", []):
                assert not {"InputValidationError", "ClarifyOutputError", "States.ALL"} & set(retry["ErrorEquals"])


def test_lambdas_get_their_settings_as_one_validated_variable(stage):
    """Each function gets its stage settings as one WorkflowSettings (the starter also its StarterSettings), which
    validate as the contract's models once CloudFormation has resolved the names in them."""
    name, template, _ = stage
    config = load_stage(name)
    resolve = Resolver(template, config.account, config.region)
    functions = resources(template, "AWS::Lambda::Function")
    ours = {k: v for k, v in functions.items() if "Layers" in v["Properties"]}
    assert sorted(v["Properties"]["Handler"] for v in ours.values()) == [
        "postprocess.handler.handler", "prepare.handler.handler", "record_failure.handler.handler",
        "start_run.handler.handler",
    ]  # fmt: skip
    (model_id,) = resources(template, "AWS::SageMaker::Model")
    (results_id,) = [k for k in resources(template, "AWS::S3::Bucket") if k.startswith("StorageResults")]
    for logical_id, fn in ours.items():
        env = fn["Properties"]["Environment"]["Variables"]
        starter = fn["Properties"]["Handler"] == "start_run.handler.handler"
        assert set(env) == {SETTINGS_ENV, "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_SERVICE_NAME", "LOG_LEVEL"} | (
            {STARTER_SETTINGS_ENV} if starter else set()
        ), logical_id
        # the model's name is CloudFormation's (GetAtt), so a replaced model is the next run's model
        assert {"Fn::GetAtt": [model_id, "ModelName"]} in env[SETTINGS_ENV]["Fn::Join"][1]
        settings = WorkflowSettings.model_validate_json(resolve(env[SETTINGS_ENV]))
        assert settings == workflow_settings(
            config,
            results_bucket=resolve.name(results_id),
            model_name=model_id,
            model_identity=settings.model_identity,
        )
        identity = settings.model_identity
        assert identity["model_name"] == model_id
        assert identity["labels"] == config.model.labels
        assert identity["artifact"] == config.model.artifact_s3_uri
        assert identity["artifact_version"] == config.model.artifact_version
        assert (
            config.model.image_tag in identity["image"]
            if config.model.image_tag
            else "container-assets" in identity["image"]
        )
        if starter:
            own = StarterSettings.model_validate_json(resolve(env[STARTER_SETTINGS_ENV]))
            (machine,) = resources(template, "AWS::StepFunctions::StateMachine")
            (bus,) = resources(template, "AWS::Events::EventBus")
            assert own == StarterSettings(
                own_account=config.account,
                allowed_accounts=frozenset(config.events.allowed_accounts),
                allowed_org_id=config.events.allowed_org_id or "",
                state_machine_arn=resolve.ref(machine),
                event_bus_name=resolve.ref(bus),
            )
        assert fn["Properties"]["Runtime"] == "python3.11"
        assert fn["Properties"]["TracingConfig"] == {"Mode": "Active"}


def test_the_cli_reads_the_same_settings_from_the_stack_output(stage):
    """`textexplain explain --stage` computes run ids from the WorkflowEnvironment output: the functions' settings."""
    name, template, _ = stage
    config = load_stage(name)
    resolve = Resolver(template, config.account, config.region)
    (prepare,) = [f for f in resources(template, "AWS::Lambda::Function").values()
                  if f["Properties"].get("Handler") == "prepare.handler.handler"]  # fmt: skip
    output = json.loads(resolve(template["Outputs"]["WorkflowEnvironment"]["Value"]))
    env = resolve(prepare["Properties"]["Environment"]["Variables"])
    assert WorkflowSettings.from_env(output) == WorkflowSettings.from_env(env)


def test_function_environments_fit_lambdas_limit(stage):
    """Lambda refuses a function whose environment (all keys and values) is over 4 KB."""
    name, template, _ = stage
    config = load_stage(name)
    resolve = Resolver(template, config.account, config.region)
    for logical_id, fn in resources(template, "AWS::Lambda::Function").items():
        env = resolve(fn["Properties"].get("Environment", {}).get("Variables", {}))
        size = sum(len(k.encode()) + len(v.encode()) for k, v in env.items())
        assert size < 4096, (logical_id, size)


def test_model_role_may_decrypt_a_cross_account_artifact_key_only_where_configured(stage):
    name, template, _ = stage
    config = load_stage(name)
    decrypts = [st for lid, st in statements(template) if lid.startswith("HostingExecutionRole")
                and st["Action"] == "kms:Decrypt"]  # fmt: skip
    if config.model.artifact_kms_key_arn:
        (decrypt,) = decrypts
        assert decrypt["Condition"]["StringEquals"] == {"kms:ViaService": f"s3.{config.region}.amazonaws.com"}
        arn = config.model.artifact_kms_key_arn
        if ":alias/" in arn:  # a key made by another stack: any of that account's keys carrying the alias
            assert decrypt["Resource"] == arn.split(":alias/")[0] + ":key/*"
            alias = "alias/" + arn.split(":alias/")[1]
            assert decrypt["Condition"]["ForAnyValue:StringEquals"] == {"kms:ResourceAliases": [alias]}
        else:
            assert decrypt["Resource"] == arn
    else:
        assert decrypts == []


def key_policy(template: dict, prefix: str) -> list[dict]:
    (key,) = [r for lid, r in resources(template, "AWS::KMS::Key").items() if lid.startswith(prefix)]
    return key["Properties"]["KeyPolicy"]["Statement"]


def by_service(statements: list[dict]) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for statement in statements:
        for service in as_list(statement["Principal"].get("Service", [])):
            found.setdefault(service, []).append(statement)
    return found


def test_data_key_admits_the_services_that_encrypt_with_it(stage):
    """Log groups: without this statement the deploy fails in AWS; no other service may use the data key."""
    name, template, _ = stage
    region = load_stage(name).region
    services = by_service(key_policy(template, "StorageDataKey"))
    assert set(services) == {f"logs.{region}.amazonaws.com"}
    (logs,) = services[f"logs.{region}.amazonaws.com"]
    assert "kms:GenerateDataKey" in logs["Action"]
    assert "kms:Decrypt" in logs["Action"]
    condition = json.dumps(logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"])
    assert f":logs:{region}:" in condition
    assert "log-group:*" in condition


def test_the_topic_and_the_dead_letter_queue_have_a_key_of_their_own(stage):
    """EventBridge's statement on that key cannot carry a source condition (SNS does not support it for
    EventBridge-to-encrypted-topic deliveries), so it is not on the key of the inputs and results."""
    name, template, _ = stage
    (topic,) = resources(template, "AWS::SNS::Topic").values()
    (queue,) = resources(template, "AWS::SQS::Queue").values()
    for encrypted in (topic["Properties"]["KmsMasterKeyId"], queue["Properties"]["KmsMasterKeyId"]):
        assert encrypted["Fn::GetAtt"][0].startswith("NotificationsKey")
    services = by_service(key_policy(template, "NotificationsKey"))
    redrive = {"sns.amazonaws.com"} if load_stage(name).alarm_email else set()  # an e-mail SNS could not deliver
    assert set(services) == {"cloudwatch.amazonaws.com", "events.amazonaws.com"} | redrive
    for service in redrive:
        (statement,) = services[service]
        assert set(statement["Condition"]) == {"ArnLike", "StringEquals"}
    (alarms,) = services["cloudwatch.amazonaws.com"]
    assert set(alarms["Condition"]) == {"ArnLike", "StringEquals"}
    (rules,) = services["events.amazonaws.com"]
    assert "Condition" not in rules
    assert sorted(rules["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    # it encrypts nothing but notifications: no bucket, log group, function environment or job uses it
    (key_id,) = [lid for lid in resources(template, "AWS::KMS::Key") if lid.startswith("NotificationsKey")]
    users = {r["Type"] for lid, r in template["Resources"].items() if lid != key_id and key_id in json.dumps(r)}
    assert users == {"AWS::SNS::Topic", "AWS::SQS::Queue", "AWS::IAM::Policy"}
    (policy,) = [r for r in resources(template, "AWS::IAM::Policy").values() if key_id in json.dumps(r)]
    assert [role["Ref"][:20] for role in policy["Properties"]["Roles"]] == ["TriggerStarterFnRole"]


def role_statements(template: dict, role_prefix: str) -> list[dict]:
    found = []
    for policy in resources(template, "AWS::IAM::Policy").values():
        roles = [r["Ref"] for r in policy["Properties"]["Roles"]]
        if any(r.startswith(role_prefix) for r in roles):
            found.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return found


def test_starter_may_look_up_executions_and_tell_missing_from_forbidden(stage):
    _, template, _ = stage
    starter = role_statements(template, "TriggerStarterFnRole")
    describe = [s for s in starter if s["Action"] == "states:DescribeExecution"]
    assert len(describe) == 1
    assert ":execution:" in json.dumps(describe[0]["Resource"])
    listing = [s for s in starter if s["Action"] == "s3:ListBucket"]
    assert len(listing) == 1
    assert "StorageInput" in json.dumps(listing[0]["Resource"])
    reads = [s for s in starter if s["Action"] == ["s3:GetObject", "s3:GetObjectVersion"]]
    assert "/incoming/*" in json.dumps(reads)
    assert "/uploads/*" in json.dumps(reads)


def test_functions_list_the_results_bucket_without_a_prefix_condition(stage):
    """A missing manifest must read as 404, and S3's listing check for that carries no prefix."""
    _, template, _ = stage
    for role in ("WorkflowPrepareFnRole", "WorkflowPostprocessFnRole", "WorkflowRecordFailureFnRole"):
        listing = [s for s in role_statements(template, role) if s["Action"] == "s3:ListBucket"]
        assert listing, role
        assert all("Condition" not in s for s in listing), role


def test_function_concurrency_comes_from_the_stage(stage):
    name, template, _ = stage
    functions = [f for f in resources(template, "AWS::Lambda::Function").values() if "Layers" in f["Properties"]]
    assert len(functions) == 4
    for function in functions:
        assert function["Properties"]["ReservedConcurrentExecutions"] == load_stage(name).function_concurrency


def test_an_alarm_email_that_cannot_be_delivered_is_kept_in_the_dead_letter_queue(stage):
    name, template, _ = stage
    subscriptions = resources(template, "AWS::SNS::Subscription")
    if not load_stage(name).alarm_email:
        assert subscriptions == {}
        return
    (subscription,) = subscriptions.values()
    assert subscription["Properties"]["Protocol"] == "email"
    (queue_id,) = resources(template, "AWS::SQS::Queue")
    assert subscription["Properties"]["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": [queue_id, "Arn"]}}

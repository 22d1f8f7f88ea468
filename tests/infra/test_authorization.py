"""Who may call what, evaluated as AWS evaluates it, over the synthesized templates of every stage.

Every call in the inventory (tests/support/authz_inventory.py: the handlers' own calls, recorded from the real
handlers during the suite, and the calls services make for each principal) is evaluated against the identity
policies, the resource policies (bucket, topic, queue, bus, function) and the KMS key policy of the templates, with
AWS's evaluation logic (tests/support/iam_eval.py). A call on an SSE-KMS bucket is also evaluated as the KMS call S3
makes for it. Then what must be refused is shown refused.
"""

from __future__ import annotations

import json

import pytest

from explain_workflow.contract import WorkflowSettings
from explain_workflow.errors import InputValidationError
from explain_workflow.request import apply_overrides
from infra.config import StageConfig, load_stage
from infra.images import clarify_repository_arn
from infra.multi_account import ArtifactsConfig, ModelArtifactsStack, load_json
from tests.support.authz import StackPolicies, World
from tests.support.authz_inventory import FUNCTION_ROLES, HANDLER_CALLS, NO_POLICY_CALLS, SERVICE_CALLS
from tests.support.cfn import STAGES, resources
from tests.support.iam_eval import Principal, Request

TLS = {"aws:SecureTransport": "true"}
OUTSIDER = "arn:aws:iam::999999999999:role/Admin"


@pytest.fixture(scope="module")
def artifacts_template(tmp_path_factory):
    import aws_cdk as cdk

    from app import new_app

    app = new_app(str(tmp_path_factory.mktemp("artifacts")))
    config = load_json("artifacts.json", ArtifactsConfig)
    stack = ModelArtifactsStack(app, "TextExplanations-artifacts", config=config, readers=[load_stage("staging")])
    return cdk.assertions.Template.from_stack(stack).to_json(), config


BUILTIN = "staging-builtin"  # staging (another account's artifact, its key by alias) with the builtin engine, N = 2


def builtin_staging() -> StageConfig:
    data = load_stage("staging").model_dump()
    data.update(explainer={"engine": "builtin"}, processing={**data["processing"], "instance_count": 2})
    return StageConfig.model_validate(data)


@pytest.fixture(scope="module")
def builtin_synthesized(tmp_path_factory):
    """One synth: the builtin staging stage and the artifacts account's stack that admits it as a reader."""
    import aws_cdk as cdk

    from app import new_app
    from infra.stack import add_stage_stacks

    app = new_app(str(tmp_path_factory.mktemp("builtin")))
    config = builtin_staging()
    stack = add_stage_stacks(app, config)
    artifacts_config = load_json("artifacts.json", ArtifactsConfig)
    artifacts = ModelArtifactsStack(app, "TextExplanations-artifacts", config=artifacts_config, readers=[config])
    templates = [cdk.assertions.Template.from_stack(s).to_json() for s in (stack, artifacts)]
    return config, templates[0], (templates[1], artifacts_config)


@pytest.fixture(scope="module", params=[*STAGES, BUILTIN])
def stage(request, synthesized, artifacts_template, builtin_synthesized):
    name = request.param
    if name == BUILTIN:
        config, stage_template, (template, artifacts) = builtin_synthesized
    else:
        config, stage_template = load_stage(name), synthesized.templates[name]
        template, artifacts = artifacts_template
    stack = StackPolicies(stage_template, config.account, config.region, f"TextExplanations-{config.stage}")
    others = [StackPolicies(template, artifacts.account, artifacts.region)]
    # Assumed, not ours: AWS's registry of the Clarify image lets SageMaker jobs of any account in the region pull it
    # (SageMaker Developer Guide: 'Docker registry paths and example code'); our side is the job role's grant.
    clarify = {clarify_repository_arn(config.region): [{
        "Effect": "Allow", "Principal": "*", "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
    }]}  # fmt: skip
    return name, config, stack, World(stack, *others, default_account=config.account, external=clarify)


def concrete(stack: StackPolicies, resource: str) -> tuple[str, dict]:
    """An example resource ARN (and context) for an inventory resource pattern."""
    kind, _, rest = resource.partition(":")
    example = rest.replace("*", "r-1")
    machine = stack.resolve.arn(stack.logical("WorkflowStateMachine", "AWS::StepFunctions::StateMachine"))
    if kind in ("input", "results"):
        bucket = stack.resolve.arn(stack.logical(f"Storage{kind.title()}", "AWS::S3::Bucket"))
        return (f"{bucket}/{example}", {}) if example else (bucket, {"s3:prefix": "runs/r-1/"})
    if kind == "state-machine":
        return machine, {}
    if kind == "execution":
        return machine.replace(":stateMachine:", ":execution:") + ":r-1-a2", {}
    if kind == "bus":
        return stack.resolve.arn(stack.logical("WorkflowBus", "AWS::Events::EventBus")), {}
    raise ValueError(resource)


def with_kms(stack: StackPolicies, request: Request) -> list[Request]:
    """S3 with SSE-KMS: reading needs kms:Decrypt, writing kms:GenerateDataKey, asked by S3 with the caller's rights."""
    kms_action = {
        "s3:GetObject": "kms:Decrypt",
        "s3:GetObjectVersion": "kms:Decrypt",
        "s3:PutObject": "kms:GenerateDataKey",
    }
    if request.action not in kms_action or not request.resource.startswith("arn:aws:s3:::"):
        return [request]
    bucket = request.resource.split("/", 1)[0]
    key = stack.resolve.arn(stack.logical("StorageDataKey", "AWS::KMS::Key"))
    context = {"kms:ViaService": f"s3.{stack.region}.amazonaws.com", "kms:EncryptionContext:aws:s3:arn": bucket}
    return [request, Request(request.principal, kms_action[request.action], key, context)]


def handler_requests(stack: StackPolicies) -> list[tuple[str, Request]]:
    found = []
    for function, calls in HANDLER_CALLS.items():
        principal = Principal.role(stack.role(FUNCTION_ROLES[function]))
        for action, pattern in calls:
            resource, context = concrete(stack, pattern)
            for request in with_kms(stack, Request(principal, action, resource, {**TLS, **context})):
                found.append((f"{function}: {request.action} {pattern}", request))
    return found


def service_requests(name: str, config, stack: StackPolicies, world: World) -> list[tuple[str, Request]]:
    found = []
    for call in SERVICE_CALLS:
        if not call.applies(config):
            continue
        kind, _, who = call.principal.partition(":")
        principal = (
            Principal.role(stack.role(who))
            if kind == "role"
            else Principal.of_service(who.format(region=config.region))
        )
        resource = call.resource(stack)
        if resource == "{artifact}":
            resource = "arn:aws:s3:::" + config.model.artifact_s3_uri.removeprefix("s3://")
        if resource == "{artifact-key}":
            resource = world.stacks[1].resolve.arn(world.stacks[1].logical("ArtifactsKey", "AWS::KMS::Key"))
        if resource == "{artifact-bucket}":
            resource = "arn:aws:s3:::" + config.model.artifact_s3_uri.removeprefix("s3://").split("/", 1)[0]
        context = call.context(stack)
        if context.get("s3:prefix") == "{artifact-object-key}":
            context = {**context, "s3:prefix": config.model.artifact_s3_uri.removeprefix("s3://").split("/", 1)[1]}
        found.append(
            (
                f"{call.principal}: {call.action} ({call.source.split(':')[0]})",
                Request(principal, call.action, resource, context),
            )
        )
    pullers = [Principal.role(stack.role("HostingExecutionRole"))]
    if config.explainer.engine == "builtin":  # its job runs the model's own image
        pullers.append(Principal.role(stack.role("WorkflowBuiltinJobRole")))
    repository = (
        f"arn:aws:ecr:{config.region}:{config.account}:repository/text-explanations-{name}"
        if config.model.image_source == "repository"
        else f"arn:aws:ecr:{config.region}:{config.account}:repository/"
        f"cdk-hnb659fds-container-assets-{config.account}-{config.region}"
    )
    for puller in pullers:
        for action in ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"):
            found.append((f"{puller.arn}: {action} (image)", Request(puller, action, repository)))
    return found


def job_role_of(stack: StackPolicies, config) -> str:
    return stack.role("WorkflowBuiltinJobRole" if config.explainer.engine == "builtin" else "WorkflowClarifyJobRole")


def test_every_call_in_the_inventory_is_allowed(stage):
    name, config, stack, world = stage
    requests = handler_requests(stack) + service_requests(name, config, stack, world)
    refused = [(label, world.evaluate(r).reason) for label, r in requests if not world.evaluate(r)]
    assert refused == []
    assert len(requests) > 100


def test_the_inventory_covers_every_principal_of_the_stage(stage):
    """Each role the stage creates for run time has calls in the inventory (CDK's deploy-time handlers aside)."""
    _, _config, stack, _ = stage
    deploy_time = ("BucketNotificationsHandler", "CustomS3AutoDeleteObjects")
    roles = [lid for lid in resources(stack.template, "AWS::IAM::Role") if not lid.startswith(deploy_time)]
    declared = {c.principal.split(":", 1)[1] for c in SERVICE_CALLS if c.principal.startswith("role:")}
    declared |= set(FUNCTION_ROLES.values())
    uncovered = [r for r in roles if not any(r.startswith(p) for p in declared)]
    # the rule roles CDK makes for cross-account bus targets deliver events (EventBridge: identity-based for buses)
    assert [r for r in uncovered if not r.startswith("TriggerForwardResultsEventsRole")] == []
    assert NO_POLICY_CALLS


# ---- what must be refused ----


def test_another_account_cannot_read_results_or_use_the_key(stage):
    _, _, stack, world = stage
    outsider = Principal.role(OUTSIDER)
    records = concrete(stack, "results:runs/r-1/results/records.jsonl")[0]
    assert not world.evaluate(Request(outsider, "s3:GetObject", records, TLS), outsider=True)
    assert not world.evaluate(Request(outsider, "s3:ListBucket", records.split("/")[0], TLS), outsider=True)
    key = stack.resolve.arn(stack.logical("StorageDataKey", "AWS::KMS::Key"))
    assert not world.evaluate(Request(outsider, "kms:Decrypt", key), outsider=True)


def test_services_use_the_key_and_the_topic_only_for_this_accounts_rules_and_alarms(stage):
    """The confused deputy: another account's rule or alarm cannot publish to our topic or queue, nor make CloudWatch
    use our keys; EventBridge and CloudWatch may never use the data key (inputs and results), only the notifications
    key. EventBridge's use of that key cannot be conditioned on its source (SNS Developer Guide, 'Key management'):
    the topic's and the queue's own policies are what admit only this stage's rules."""
    _, config, stack, world = stage
    data_key = stack.resolve.arn(stack.logical("StorageDataKey", "AWS::KMS::Key"))
    notifications = stack.resolve.arn(stack.logical("NotificationsKey", "AWS::KMS::Key"))
    topic = stack.resolve.arn(stack.logical("MonitoringAlarms", "AWS::SNS::Topic"))
    queue = stack.resolve.arn(stack.logical("TriggerUndelivered", "AWS::SQS::Queue"))
    ours = {"aws:SourceAccount": config.account}
    theirs = {"aws:SourceAccount": "999999999999"}
    for service, source in (("events.amazonaws.com", "arn:aws:events:{r}:{a}:rule/x"),
                            ("cloudwatch.amazonaws.com", "arn:aws:cloudwatch:{r}:{a}:alarm:x")):  # fmt: skip
        principal = Principal.of_service(service)
        own = {**ours, "aws:SourceArn": source.format(r=config.region, a=config.account)}
        other = {**theirs, "aws:SourceArn": source.format(r=config.region, a="999999999999")}
        for context in (own, other, {}):
            for action in ("kms:Decrypt", "kms:GenerateDataKey"):
                assert not world.evaluate(Request(principal, action, data_key, context)), (service, action, context)
        assert not world.evaluate(Request(principal, "sns:Publish", topic, other)), service
    their_alarm = {**theirs, "aws:SourceArn": f"arn:aws:cloudwatch:{config.region}:999999999999:alarm:x"}
    alarms = Principal.of_service("cloudwatch.amazonaws.com")
    assert not world.evaluate(Request(alarms, "kms:GenerateDataKey", notifications, their_alarm))
    assert world.evaluate(Request(Principal.of_service("events.amazonaws.com"), "kms:GenerateDataKey", notifications))
    rule = {**theirs, "aws:SourceArn": f"arn:aws:events:{config.region}:999999999999:rule/x"}
    assert not world.evaluate(Request(Principal.of_service("events.amazonaws.com"), "sqs:SendMessage", queue, rule))


def test_no_function_reads_or_writes_over_plain_http(stage):
    _, _, stack, world = stage
    prepare = Principal.role(stack.role("WorkflowPrepareFnRole"))
    manifest = concrete(stack, "results:runs/r-1/manifest.json")[0]
    decision = world.evaluate(Request(prepare, "s3:GetObject", manifest, {"aws:SecureTransport": "false"}))
    assert not decision
    assert decision.reason.startswith("explicit deny")


def test_only_the_state_machine_passes_only_the_job_role_only_to_sagemaker(stage):
    _, config, stack, world = stage
    job_role = job_role_of(stack, config)
    to_sagemaker = {"iam:PassedToService": "sagemaker.amazonaws.com"}
    for function_role in FUNCTION_ROLES.values():  # the starter included: it may start runs, never pass roles
        who = Principal.role(stack.role(function_role))
        assert not world.evaluate(Request(who, "iam:PassRole", job_role, to_sagemaker)), function_role
    machine = Principal.role(stack.role("WorkflowStateMachineRole"))
    assert world.evaluate(Request(machine, "iam:PassRole", job_role, to_sagemaker))
    assert not world.evaluate(
        Request(machine, "iam:PassRole", job_role, {"iam:PassedToService": "lambda.amazonaws.com"})
    )
    assert not world.evaluate(Request(machine, "iam:PassRole", stack.role("HostingExecutionRole"), to_sagemaker))


def test_the_bus_admits_only_the_listed_accounts_and_the_organisation(stage):
    _name, config, stack, world = stage
    bus = concrete(stack, "bus")[0]
    for account in config.events.allowed_accounts:
        sender = Principal.role(f"arn:aws:iam::{account}:role/app")
        assert world.evaluate(Request(sender, "events:PutEvents", bus), outsider=True)
    stranger = Principal.role(OUTSIDER)
    assert not world.evaluate(Request(stranger, "events:PutEvents", bus, {"aws:PrincipalOrgID": "o-zzzzzzzzzz"}),
                              outsider=True)  # fmt: skip
    member = Request(stranger, "events:PutEvents", bus, {"aws:PrincipalOrgID": config.events.allowed_org_id or "-"})
    assert bool(world.evaluate(member, outsider=True)) is bool(config.events.allowed_org_id)


def test_a_forged_result_event_is_admitted_by_the_bus_but_matched_by_no_result_rule(stage):
    """An allowed account may PutEvents anything on the bus; EventBridge sets ``account`` to the sender's, and the
    rules that page people and forward results take only this stage's own account."""
    from moto.events.models import EventPattern

    _, config, stack, world = stage
    if not config.events.allowed_accounts:
        pytest.skip("no other account may put events on this stage's bus")
    (sender,) = config.events.allowed_accounts
    assert world.evaluate(Request(Principal.role(f"arn:aws:iam::{sender}:role/app"), "events:PutEvents",
                                  concrete(stack, "bus")[0]), outsider=True)  # fmt: skip
    forged = {"version": "0", "id": "1", "detail-type": "Explanation Succeeded", "source": "clarify-text-explanations",
              "account": sender, "time": "2026-12-02T00:00:00Z", "region": config.region, "resources": [],
              "detail": {"run_id": "r", "status": "SUCCEEDED"}}  # fmt: skip
    rules = [r for r in resources(stack.template, "AWS::Events::Rule").values()
             if "Explanation Succeeded" in json.dumps(r["Properties"].get("EventPattern", {}))]  # fmt: skip
    assert len(rules) >= 1
    for rule in rules:
        pattern = EventPattern.load(json.dumps(stack.resolve(rule["Properties"]["EventPattern"])))
        assert not pattern.matches_event(forged), rule["Properties"]["Description"]
        assert pattern.matches_event({**forged, "account": config.account})


def test_a_caller_asking_for_a_million_samples_is_refused(stage):
    """The stage's limit reaches the starter and prepare (MAX_NUM_SAMPLES), whose own override check refuses."""
    _, config, stack, _ = stage
    (starter,) = [f for f in resources(stack.template, "AWS::Lambda::Function").values()
                  if f["Properties"].get("Handler") == "start_run.handler.handler"]  # fmt: skip
    settings = WorkflowSettings.from_env(stack.resolve(starter["Properties"]["Environment"]["Variables"]))
    assert settings.limits.max_num_samples == config.limits.max_num_samples <= 100_000
    with pytest.raises(InputValidationError, match="num_samples"):
        apply_overrides(settings.defaults, settings.limits, {"num_samples": 1_000_000})


def test_only_the_stages_model_role_reads_the_shared_artifacts(stage):
    _name, config, stack, world = stage
    if not config.model.artifact_kms_key_arn:
        pytest.skip("this stage's artifact is in its own account")
    artifacts = world.stacks[1]
    artifact = "arn:aws:s3:::" + config.model.artifact_s3_uri.removeprefix("s3://")
    key = artifacts.resolve.arn(artifacts.logical("ArtifactsKey", "AWS::KMS::Key"))
    decrypt_context = {"kms:ViaService": f"s3.{config.region}.amazonaws.com",
                       "kms:ResourceAliases": ["alias/text-explainer-models"]}  # fmt: skip
    model = Principal.role(stack.role("HostingExecutionRole"))
    assert world.evaluate(Request(model, "s3:GetObject", artifact, TLS))
    assert world.evaluate(Request(model, "kms:Decrypt", key, decrypt_context))
    others = ["WorkflowPrepareFnRole"] + (["WorkflowClarifyJobRole"] if config.explainer.engine == "clarify" else [])
    for other in others:  # same account, another role (the builtin job role reads it: its path is under the model's)
        assert not world.evaluate(Request(Principal.role(stack.role(other)), "s3:GetObject", artifact, TLS)), other
    assert not world.evaluate(Request(Principal.role(OUTSIDER), "s3:GetObject", artifact, TLS), outsider=True)


def test_the_artifacts_grant_names_the_model_role_by_its_path_not_its_generated_name(stage):
    """The model role's name is CloudFormation's (its form is not documented and may be truncated); its path is the
    stage's own (aws:PrincipalArn carries it). Any name on that path reads; the same name off it does not."""
    _name, config, stack, world = stage
    if not config.model.artifact_kms_key_arn:
        pytest.skip("this stage's artifact is in its own account")
    artifact = "arn:aws:s3:::" + config.model.artifact_s3_uri.removeprefix("s3://")
    role = stack.role("HostingExecutionRole")
    path = stack.template["Resources"][stack.logical("HostingExecutionRole", "AWS::IAM::Role")]["Properties"]["Path"]
    assert f":role{path}" in role
    identity = world.identity_of(Principal.role(role))
    for name in ("TextExplanations-stag-HostingExecutionRole-1X2Y3Z", "a-name-CloudFormation-might-pick"):
        renamed = Principal.role(f"arn:aws:iam::{config.account}:role{path}{name}")
        stack.identity[renamed.arn] = identity  # the same role, as CloudFormation might have named it
        assert world.evaluate(Request(renamed, "s3:GetObject", artifact, TLS)), name
        off_path = Principal.role(f"arn:aws:iam::{config.account}:role/{name}")
        assert not world.evaluate(Request(off_path, "s3:GetObject", artifact, TLS), outsider=True), name


def test_the_builtin_job_role_may_do_nothing_beyond_its_job(stage):
    """Refused: results and manifests (postprocess publishes those), the run's own inputs (prepare froze them), the
    input bucket, any endpoint or model, another run prefix than runs/, deleting, another artifact, and any key but the
    data key and the artifact's."""
    _, config, stack, world = stage
    if config.explainer.engine != "builtin":
        pytest.skip("a clarify stage has no builtin job role")
    job = Principal.role(stack.role("WorkflowBuiltinJobRole"))
    results = concrete(stack, "results:")[0]
    for key in (
        "runs/r-1/results/records.jsonl",
        "runs/r-1/manifest.json",
        "runs/r-1/input/dataset.part-00000.csv",
        "runs/r-1/config/analysis_config.json",
        "runs/r-1/request.json",
        "elsewhere/x",
    ):
        assert not world.evaluate(Request(job, "s3:PutObject", f"{results}/{key}", TLS)), key
    for key in ("runs/r-1/results/records.jsonl", "runs/r-1/manifest.json", "runs/r-1/request.json"):
        assert not world.evaluate(Request(job, "s3:GetObject", f"{results}/{key}", TLS)), key
    assert not world.evaluate(Request(job, "s3:DeleteObject", f"{results}/runs/r-1/input/x", TLS))
    assert not world.evaluate(Request(job, "s3:ListBucket", results, {**TLS, "s3:prefix": "elsewhere/"}))
    incoming = concrete(stack, "input:incoming/x.csv")[0]
    assert not world.evaluate(Request(job, "s3:GetObject", incoming, TLS))
    sagemaker = f"arn:aws:sagemaker:{config.region}:{config.account}"
    for action, resource in (("sagemaker:InvokeEndpoint", f"{sagemaker}:endpoint/sm-clarify-r-1"),
                             ("sagemaker:CreateEndpoint", f"{sagemaker}:endpoint/sm-clarify-r-1"),
                             ("sagemaker:CreateEndpointConfig", f"{sagemaker}:endpoint-config/sm-clarify-r-1"),
                             ("sagemaker:DescribeModel", stack.resolve.arn(stack.logical("HostingModel"))),
                             ("sagemaker:CreateProcessingJob", f"{sagemaker}:processing-job/cx-r-1-2")):  # fmt: skip
        assert not world.evaluate(Request(job, action, resource)), action
    artifact_bucket, artifact_key = config.model.artifact_s3_uri.removeprefix("s3://").split("/", 1)
    other_artifact = f"arn:aws:s3:::{artifact_bucket}/{artifact_key}.other"
    assert not world.evaluate(Request(job, "s3:GetObject", other_artifact, TLS))
    assert not world.evaluate(
        Request(job, "s3:ListBucket", f"arn:aws:s3:::{artifact_bucket}", {**TLS, "s3:prefix": "another/"})
    )
    notifications = stack.resolve.arn(stack.logical("NotificationsKey", "AWS::KMS::Key"))
    assert not world.evaluate(Request(job, "kms:Decrypt", notifications))
    assert not world.evaluate(Request(job, "iam:PassRole", stack.role("HostingExecutionRole")))


def test_another_account_reads_the_artifact_with_the_builtin_job_role_only_by_its_path(stage):
    """Cross-account (staging-like): the artifacts bucket and key admit the builtin job role because its path is under
    the stage's model role path; the same role off that path is refused, and the bucket lists only the artifact key."""
    _, config, stack, world = stage
    if config.explainer.engine != "builtin" or not config.model.artifact_kms_key_arn:
        pytest.skip("needs a builtin stage reading another account's artifact")
    artifact = "arn:aws:s3:::" + config.model.artifact_s3_uri.removeprefix("s3://")
    bucket, key_name = artifact.split("/", 1)
    role = stack.role("WorkflowBuiltinJobRole")
    assert ":role/text-explanations-staging/model/explain-job/" in role
    job = Principal.role(role)
    assert world.evaluate(Request(job, "s3:GetObject", artifact, TLS))
    assert world.evaluate(Request(job, "s3:ListBucket", bucket, {**TLS, "s3:prefix": key_name}))
    assert not world.evaluate(Request(job, "s3:ListBucket", bucket, {**TLS, "s3:prefix": ""}))
    artifacts_key = world.stacks[1].resolve.arn(world.stacks[1].logical("ArtifactsKey", "AWS::KMS::Key"))
    via_s3 = {
        "kms:ViaService": f"s3.{config.region}.amazonaws.com",
        "kms:ResourceAliases": ["alias/text-explainer-models"],
    }
    assert world.evaluate(Request(job, "kms:Decrypt", artifacts_key, via_s3))
    assert not world.evaluate(
        Request(job, "kms:Decrypt", artifacts_key, {"kms:ResourceAliases": ["alias/text-explainer-models"]})
    )
    off_path = Principal.role(role.replace("/text-explanations-staging/model/explain-job/", "/"))
    stack.identity[off_path.arn] = world.identity_of(job)
    assert not world.evaluate(Request(off_path, "s3:GetObject", artifact, TLS))
    assert not world.evaluate(Request(off_path, "s3:ListBucket", bucket, {**TLS, "s3:prefix": key_name}))

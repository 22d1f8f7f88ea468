"""The contract module: one definition of every setting, name and step result, importable by every part."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from explain_workflow import contract
from explain_workflow.contract import (
    SETTINGS_ENV,
    ClarifyOptions,
    PrepareResult,
    RunIdentity,
    SettingsError,
    WorkflowSettings,
    execution_arn,
    json_path,
    stack_names,
)
from infra.config import StageConfig, load_stage


def test_the_contract_imports_nothing_but_the_standard_library_and_pydantic():
    """The stacks, the Lambda asset and the CLI all import it: it may not pull in boto3, Powertools or CDK."""
    probe = (
        "import sys, json; sys.path.insert(0, 'lambda'); import explain_workflow.contract; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, check=True).stdout))
    assert not loaded & {"boto3", "botocore", "aws_lambda_powertools", "aws_cdk", "constructs", "numpy"}
    assert {"pydantic", "explain_workflow"} <= loaded


def test_the_stage_config_is_made_of_the_contract_models():
    config = load_stage("dev")
    fields = StageConfig.model_fields
    assert fields["clarify"].annotation is ClarifyOptions
    assert isinstance(config.clarify, ClarifyOptions)
    assert fields["limits"].annotation is contract.Limits
    assert fields["processing"].annotation is contract.ProcessingSettings
    assert fields["predict"].annotation is contract.PredictSettings


def test_settings_travel_as_one_variable_and_come_back_equal():
    settings = WorkflowSettings(
        results_bucket="results-bucket",
        labels=["Film", "Album"],
        model_name="m-1",
        defaults=ClarifyOptions(num_samples=200, seed=3, language=" EN "),
        model_identity={"model_name": "m-1", "labels": ["Film", "Album"]},
    )
    again = WorkflowSettings.from_env({SETTINGS_ENV: settings.model_dump_json()})
    assert again == settings
    assert again.defaults.language == "en"  # normalised once, as Clarify's schema takes it


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"labels": ["a", "a"]}, "labels: Value error, labels must be unique"),
        ({"defaults": {"num_samples": 6000}}, "over limits.max_num_samples 5000"),
        ({"model_name": ""}, "set model_name"),
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
        ({"model_identity": {"labels": ["x"]}}, "model_identity names labels"),
    ],
)
def test_unusable_settings_are_refused_at_cold_start_naming_the_variable_and_field(change, message):
    value = {"results_bucket": "results-bucket", "labels": ["a", "b"], "model_name": "m"} | change
    with pytest.raises(SettingsError, match=SETTINGS_ENV) as refused:
        WorkflowSettings.from_env({SETTINGS_ENV: json.dumps(value)})
    assert message in str(refused.value)


def test_state_machine_paths_are_made_of_field_names():
    assert json_path(PrepareResult, "predict", "job_name", root="$.prepare") == "$.prepare.predict.job_name"
    with pytest.raises(KeyError, match="'jobname' is not a field of PrepareResult"):
        json_path(PrepareResult, "jobname")
    with pytest.raises(KeyError, match="not a field of a plain value"):
        json_path(PrepareResult, "rows", "count")


def test_execution_arns_are_derived_from_the_state_machine_arn():
    machine = "arn:aws:states:eu-west-1:111111111111:stateMachine:Workflow"
    assert execution_arn(machine, "run-a2") == "arn:aws:states:eu-west-1:111111111111:execution:Workflow:run-a2"
    with pytest.raises(ValueError, match="not a state machine ARN"):
        execution_arn("arn:aws:states:eu-west-1:111111111111:activity:x", "run")
    assert stack_names("dev") == ("TextExplanations-dev-images", "TextExplanations-dev")


def test_a_run_identity_cannot_carry_a_run_id_longer_than_an_execution_name_allows():
    options, limits = ClarifyOptions(), contract.Limits()
    RunIdentity(run_id="a" * 57, parts={}, options=options, limits=limits)
    with pytest.raises(ValueError, match="at most 57 characters"):
        RunIdentity(run_id="a" * 58, parts={}, options=options, limits=limits)

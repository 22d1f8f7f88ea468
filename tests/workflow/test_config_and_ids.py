"""Run identity, per-run overrides, settings and the analysis config (checked by the SageMaker SDK's schema)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sagemaker.core.clarify import ANALYSIS_CONFIG_SCHEMA_V1_0, TextConfig

from explain_workflow import analysis_config
from explain_workflow.contract import SETTINGS_ENV, ClarifyOptions, Limits, SettingsError, WorkflowSettings
from explain_workflow.dataset import InputValidationError
from explain_workflow.identity import run_id_for, run_identity
from explain_workflow.request import RunRequest, apply_overrides
from explain_workflow.runs import JOB_NAME, execution_name_for, job_name_for, transform_job_name_for

STAGE = {"results_bucket": "results", "labels": ["Film", "Album"], "model_name": "text-model"}


def stage(changes: dict | None = None) -> WorkflowSettings:
    """The stage's settings with ``changes`` (a nested section such as {"limits": {...}} is merged into its own)."""
    value = dict(STAGE)
    for name, change in (changes or {}).items():
        value[name] = (
            {**value.get(name, {}), **change} if isinstance(change, dict) and name != "model_identity" else change
        )
    return WorkflowSettings.model_validate(value)


def from_env(changes: dict | None = None) -> WorkflowSettings:
    """The settings as a function reads them: the one WORKFLOW_SETTINGS document."""
    return WorkflowSettings.from_env({SETTINGS_ENV: json.dumps({**STAGE, **(changes or {})})})


def identity(env: dict | None = None, **request) -> str:
    settings = stage(env)
    event = {"bucket": "in", "key": "incoming/My File.csv", "version_id": "v1"} | request
    return run_identity(RunRequest.from_event(event), settings)


def test_run_id_is_deterministic_and_distinguishes_requests():
    a = identity(overrides={"granularity": "sentence"})
    assert a.run_id == identity(overrides={"granularity": "sentence"}).run_id
    assert a.run_id.startswith("my-file-")
    assert a.run_id != identity(version_id="v2", overrides={"granularity": "sentence"}).run_id
    assert a.run_id != identity().run_id
    # an override equal to the default, or spelled another way, is the same run
    assert identity().run_id == identity(overrides={"granularity": "token", "language": " English "}).run_id


@pytest.mark.parametrize(
    ("env", "overrides"),
    [
        ({}, {"seed": 7}),
        ({}, {"max_rows": 5}),
        ({"defaults": {"seed": 3}}, {}),
        ({"defaults": {"num_samples": 64}}, {}),
        ({"limits": {"max_rows": 500}}, {}),
        ({"limits": {"max_text_chars": 100}}, {}),
        ({"model_name": "text-model-2"}, {}),
        ({"model_identity": {"model_name": "m-1", "image": "repo@sha256:aa", "artifact": "s3://a/m"}}, {}),
        ({"model_identity": {"model_name": "m-1", "image": "repo@sha256:bb", "artifact": "s3://a/m"}}, {}),
        ({"labels": ["Album", "Film"]}, {}),
    ],
)
def test_everything_that_decides_the_result_is_in_the_run_id(env, overrides):
    """Old main hashed only bucket, key, version and the overrides: a new model, seed or default was the same run."""
    base = identity()
    other = identity(env, overrides=overrides)
    assert other.run_id != base.run_id
    assert other.parts != base.parts


def test_identity_shows_each_part():
    env = {"model_identity": {"model_name": "m-1", "image": "img@sha256:aa", "labels": ["Film", "Album"]}}
    got = identity(env, overrides={"seed": 5, "max_rows": 9}).parts
    assert got["input"] == {"bucket": "in", "key": "incoming/My File.csv", "version": "v1"}
    assert got["options"]["seed"] == 5
    assert got["limits"]["max_rows"] == 9
    assert got["model"]["image"] == "img@sha256:aa"


def test_model_identity_must_be_an_object_with_the_stage_labels():
    with pytest.raises(SettingsError, match="model_identity: Input should be an object"):
        from_env({"model_identity": "m-1"})
    with pytest.raises(SettingsError, match="names labels"):
        from_env({"model_identity": {"model_name": "m", "labels": ["x"]}})
    # without a model identity the model part says what it rests on
    assert "no model_identity" in from_env().identity_of_model()["source"]


@given(st.text(), st.text(), st.text(), st.integers(1, 999))
def test_run_ids_make_valid_execution_and_job_names(bucket, key, version, attempt):
    run_id = run_id_for({"input": {"bucket": bucket, "key": key, "version": version}})
    assert len(run_id) <= 57
    assert all(c.isalnum() or c == "-" for c in run_id)
    for name in (job_name_for(run_id, attempt), transform_job_name_for(run_id, attempt)):
        assert JOB_NAME.match(name)
        assert name.endswith(f"-{attempt}")
    # the first attempt runs under the run id itself, a later one adds -a<n>: at most 57 + 5 of Step Functions' 80
    execution = execution_name_for(run_id, attempt)
    assert execution == (run_id if attempt == 1 else f"{run_id}-a{attempt}")
    assert len(execution) <= 57 + len(f"-a{attempt}")
    assert len({job_name_for(run_id, n) for n in (1, 2, 3)}) == 3


def test_settings_from_env_and_errors():
    settings = from_env({"defaults": {"num_samples": 50}, "limits": {"max_rows": 7}})
    assert settings.labels == ["Film", "Album"]
    assert settings.defaults.num_samples == 50
    assert settings.limits.max_rows == 7
    with pytest.raises(SettingsError, match=f"environment variable {SETTINGS_ENV} is required"):
        WorkflowSettings.from_env({SETTINGS_ENV: " "})
    with pytest.raises(SettingsError, match="results_bucket: Field required"):
        WorkflowSettings.from_env({SETTINGS_ENV: json.dumps({"labels": ["a", "b"], "model_name": "m"})})
    with pytest.raises(SettingsError, match=r"defaults\.granularity: Input should be 'token', 'sentence' or"):
        from_env({"defaults": {"granularity": "word"}})
    with pytest.raises(SettingsError, match="labels must be unique"):
        from_env({"labels": ["a", "a"]})
    with pytest.raises(SettingsError, match="set model_name"):
        from_env({"model_name": ""})
    with pytest.raises(SettingsError, match=r"limits\.max_num_samples: Input should be less than or equal to 100000"):
        from_env({"limits": {"max_num_samples": 100_001}})
    with pytest.raises(SettingsError, match=r"over limits\.max_num_samples 100"):
        from_env({"limits": {"max_num_samples": 100}, "defaults": {"num_samples": 1000}})
    with pytest.raises(SettingsError, match="language 'klingon' is not supported by Clarify"):
        from_env({"defaults": {"language": "klingon"}})
    assert from_env({"defaults": {"language": " German "}}).defaults.language == "german"
    assert from_env().limits.max_num_samples == 5000


def test_a_stage_may_allow_more_samples_up_to_its_limit():
    settings = stage({"limits": {"max_num_samples": 20_000}})
    clarify, _ = apply_overrides(settings.defaults, settings.limits, {"num_samples": 20000})
    assert clarify.num_samples == 20000
    with pytest.raises(InputValidationError, match="from 1 to 20000"):
        apply_overrides(settings.defaults, settings.limits, {"num_samples": 20001})


@pytest.mark.parametrize(("given", "written"), [(" en ", "en"), ("EN", "en"), ("English", "english"), ("xx", "xx")])
def test_language_overrides_are_written_as_clarify_takes_them(given, written):
    """Old main wrote " en " / "EN" raw: the schema refuses " en " and the SDK's TextConfig refuses both."""
    settings = stage()
    clarify, _ = apply_overrides(settings.defaults, settings.limits, {"language": given})
    config = analysis_config.build(settings, clarify)
    text_config = config["methods"]["shap"]["text_config"]
    assert text_config["language"] == written
    ANALYSIS_CONFIG_SCHEMA_V1_0.validate(config)
    assert TextConfig(granularity="token", language=text_config["language"]).get_text_config()["language"] == written


def test_our_languages_are_exactly_the_sdks():
    from explain_workflow.languages import CODES

    assert set(CODES) | set(CODES.values()) == set(TextConfig._SUPPORTED_LANGUAGES)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"granularity": "word"}, "granularity 'word'"),
        ({"agg_method": "max"}, "agg_method 'max'"),
        ({"language": "klingon"}, "language 'klingon'"),
        ({"num_samples": 0}, "num_samples"),
        ({"baseline": " "}, "baseline"),
        ({"max_rows": 10**9}, "max_rows"),
        ({"max_rows": True}, "max_rows"),
        ({"num_samples": True}, "num_samples"),
        ({"num_samples": 5001}, "from 1 to 5000 .limits.max_num_samples"),
        ({"num_samples": 10**6}, "limits.max_num_samples"),
        ({"seed": "7"}, "seed"),
        ({"language": 3}, "language"),
    ],
)
def test_bad_overrides_are_named(overrides, message):
    with pytest.raises(InputValidationError, match=message):
        apply_overrides(ClarifyOptions(), Limits(), overrides)


def test_unknown_override_and_bad_request_shape():
    with pytest.raises(InputValidationError, match="unknown overrides"):
        RunRequest.from_event({"bucket": "b", "key": "k", "overrides": {"colour": "red"}})
    with pytest.raises(InputValidationError, match="lacks"):
        RunRequest.from_event({"bucket": "b"})


CASES = [
    {},
    {"granularity": "sentence", "language": "de", "num_samples": 64, "agg_method": "median", "baseline": "[MASK]"},
    {"granularity": "paragraph", "language": "multi-language", "agg_method": "mean_sq", "text_column": 2},
    {"seed": 11, "language": " EN "},
]


@pytest.mark.parametrize("overrides", CASES)
@pytest.mark.parametrize("endpoint", [None, "live-endpoint"])
def test_analysis_config_passes_the_sdk_schema(overrides, endpoint):
    settings = stage({"endpoint_name": endpoint} if endpoint else {})
    clarify, _ = apply_overrides(settings.defaults, settings.limits, overrides)
    config = analysis_config.build(settings, clarify, endpoint_name_prefix="sm-clarify-my-run-abcdef-123")
    ANALYSIS_CONFIG_SCHEMA_V1_0.validate(config)
    assert config["predictor"]["label_headers"] == ["Film", "Album"]
    assert config["headers"] == ["row_id", "text"]
    assert config["methods"]["shap"]["text_config"]["granularity"] == clarify.granularity
    assert config["methods"]["shap"].get("seed") == overrides.get("seed")
    if endpoint:
        assert config["predictor"]["endpoint_name"] == endpoint
        assert "model_name" not in config["predictor"]
    else:
        assert len(config["predictor"]["endpoint_name_prefix"]) <= 23

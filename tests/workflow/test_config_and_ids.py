"""Run identity, per-run overrides, settings and the analysis config (checked by the SageMaker SDK's schema)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sagemaker.core.clarify import ANALYSIS_CONFIG_SCHEMA_V1_0

from explain_workflow import analysis_config
from explain_workflow.dataset import InputValidationError
from explain_workflow.request import RunRequest, apply_overrides
from explain_workflow.runs import JOB_NAME, job_name_for, run_id_for
from explain_workflow.settings import ClarifyDefaults, Limits, SettingsError, WorkflowSettings

ENV = {"RESULTS_BUCKET": "results", "LABELS": json.dumps(["Film", "Album"]), "MODEL_NAME": "text-model"}


def test_run_id_is_deterministic_and_distinguishes_requests():
    a = run_id_for("in", "incoming/My File.csv", "v1", {"granularity": "sentence"})
    assert a == run_id_for("in", "incoming/My File.csv", "v1", {"granularity": "sentence"})
    assert a.startswith("my-file-")
    assert a != run_id_for("in", "incoming/My File.csv", "v2", {"granularity": "sentence"})
    assert a != run_id_for("in", "incoming/My File.csv", "v1", {})


@given(st.text(), st.text(), st.text())
def test_run_ids_make_valid_execution_and_job_names(bucket, key, version):
    run_id = run_id_for(bucket, key, version)
    assert len(run_id) <= 80
    assert all(c.isalnum() or c == "-" for c in run_id)
    assert JOB_NAME.match(job_name_for(run_id))


def test_settings_from_env_and_errors():
    settings = WorkflowSettings.from_env(ENV | {"DEFAULT_NUM_SAMPLES": "50", "MAX_ROWS": "7"})
    assert settings.labels == ["Film", "Album"]
    assert settings.defaults.num_samples == 50
    assert settings.limits.max_rows == 7
    with pytest.raises(SettingsError, match="RESULTS_BUCKET is required"):
        WorkflowSettings.from_env({k: v for k, v in ENV.items() if k != "RESULTS_BUCKET"})
    with pytest.raises(SettingsError, match="DEFAULT_GRANULARITY='word'"):
        WorkflowSettings.from_env(ENV | {"DEFAULT_GRANULARITY": "word"})
    with pytest.raises(SettingsError, match="duplicates"):
        WorkflowSettings.from_env(ENV | {"LABELS": '["a", "a"]'})
    with pytest.raises(SettingsError, match="MODEL_NAME"):
        WorkflowSettings.from_env({k: v for k, v in ENV.items() if k != "MODEL_NAME"})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"granularity": "word"}, "granularity 'word'"),
        ({"agg_method": "max"}, "agg_method 'max'"),
        ({"language": "klingon"}, "language 'klingon'"),
        ({"num_samples": 0}, "num_samples"),
        ({"baseline": " "}, "baseline"),
        ({"max_rows": 10**9}, "max_rows"),
    ],
)
def test_bad_overrides_are_named(overrides, message):
    with pytest.raises(InputValidationError, match=message):
        apply_overrides(ClarifyDefaults(), Limits(), overrides)


def test_unknown_override_and_bad_request_shape():
    with pytest.raises(InputValidationError, match="unknown overrides"):
        RunRequest.from_event({"bucket": "b", "key": "k", "overrides": {"colour": "red"}})
    with pytest.raises(InputValidationError, match="lacks"):
        RunRequest.from_event({"bucket": "b"})


CASES = [
    {},
    {"granularity": "sentence", "language": "de", "num_samples": 64, "agg_method": "median", "baseline": "[MASK]"},
    {"granularity": "paragraph", "language": "multi-language", "agg_method": "mean_sq", "text_column": 2},
]


@pytest.mark.parametrize("overrides", CASES)
@pytest.mark.parametrize("endpoint", [None, "live-endpoint"])
def test_analysis_config_passes_the_sdk_schema(overrides, endpoint):
    settings = WorkflowSettings.from_env(ENV | ({"ENDPOINT_NAME": endpoint} if endpoint else {}))
    clarify, _ = apply_overrides(settings.defaults, settings.limits, overrides)
    config = analysis_config.build(settings, clarify, endpoint_name_prefix="sm-clarify-my-run-abcdef-123")
    ANALYSIS_CONFIG_SCHEMA_V1_0.validate(config)
    assert config["predictor"]["label_headers"] == ["Film", "Album"]
    assert config["headers"] == ["row_id", "text"]
    assert config["methods"]["shap"]["text_config"]["granularity"] == clarify.granularity
    if endpoint:
        assert config["predictor"]["endpoint_name"] == endpoint
        assert "model_name" not in config["predictor"]
    else:
        assert len(config["predictor"]["endpoint_name_prefix"]) <= 23

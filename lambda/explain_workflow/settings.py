"""The stage settings as the workflow functions read them from their environment.

The models are the contract's (explain_workflow.contract); this module keeps the reader of the one-variable-per-
setting environment that the stacks set before WORKFLOW_SETTINGS, and re-exports the old names for its callers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from pydantic import ValidationError

from explain_workflow.contract import (
    AGG_METHODS,
    GRANULARITIES,
    NUM_SAMPLES_CEILING,
    ClarifyOptions,
    Limits,
    ProcessingSettings,
    SettingsError,
    WorkflowSettings,
)
from explain_workflow.languages import clarify_language

ClarifyDefaults, Processing = ClarifyOptions, ProcessingSettings

__all__ = [
    "AGG_METHODS", "GRANULARITIES", "NUM_SAMPLES_CEILING", "ClarifyDefaults", "ClarifyOptions", "Limits",
    "Processing", "ProcessingSettings", "SettingsError", "WorkflowSettings", "legacy_settings",
]  # fmt: skip


def _default(model, name: str):
    return model.model_fields[name].default


def legacy_settings(env: Mapping[str, str] | None = None) -> WorkflowSettings:
    """WorkflowSettings from one environment variable per setting (RESULTS_BUCKET, LABELS, MAX_ROWS, ...)."""
    env = os.environ if env is None else env
    reader = _Reader(env)
    labels = reader.labels("LABELS")
    max_num_samples = reader.number("MAX_NUM_SAMPLES", _default(Limits, "max_num_samples"))
    if max_num_samples > NUM_SAMPLES_CEILING:
        raise SettingsError(f"MAX_NUM_SAMPLES={max_num_samples} is over {NUM_SAMPLES_CEILING}")
    num_samples = reader.number("DEFAULT_NUM_SAMPLES", _default(ClarifyOptions, "num_samples"))
    if num_samples > max_num_samples:
        raise SettingsError(f"DEFAULT_NUM_SAMPLES={num_samples} is over MAX_NUM_SAMPLES={max_num_samples}")
    model_name, endpoint_name = reader.text("MODEL_NAME", ""), reader.text("ENDPOINT_NAME", "")
    if not model_name and not endpoint_name:
        raise SettingsError("set MODEL_NAME (a temporary endpoint per job) or ENDPOINT_NAME (an existing one)")
    values = {
        "results_bucket": reader.text("RESULTS_BUCKET"),
        "labels": labels,
        "model_name": model_name,
        "endpoint_name": endpoint_name,
        "endpoint_instance_type": reader.text("ENDPOINT_INSTANCE_TYPE", "ml.m5.xlarge"),
        "endpoint_instance_count": reader.number("ENDPOINT_INSTANCE_COUNT", 1),
        "defaults": {
            "text_column": reader.text("DEFAULT_TEXT_COLUMN", _default(ClarifyOptions, "text_column")),
            "granularity": reader.choice("DEFAULT_GRANULARITY", _default(ClarifyOptions, "granularity"), GRANULARITIES),
            "language": reader.language("DEFAULT_LANGUAGE", _default(ClarifyOptions, "language")),
            "baseline": reader.text("DEFAULT_BASELINE", _default(ClarifyOptions, "baseline")),
            "num_samples": num_samples,
            "agg_method": reader.choice("DEFAULT_AGG_METHOD", _default(ClarifyOptions, "agg_method"), AGG_METHODS),
            "seed": reader.optional_number("DEFAULT_SEED"),
        },
        "limits": {
            "max_rows": reader.number("MAX_ROWS", _default(Limits, "max_rows")),
            "max_text_chars": reader.number("MAX_TEXT_CHARS", _default(Limits, "max_text_chars")),
            "max_object_bytes": reader.number("MAX_OBJECT_BYTES", _default(Limits, "max_object_bytes")),
            "max_num_samples": max_num_samples,
        },
        "processing": {
            name: (reader.text if name == "instance_type" else reader.number)(
                f"PROCESSING_{variable}", _default(ProcessingSettings, name)
            )
            for name, variable in _PROCESSING_VARIABLES.items()
        },
        "model_identity": reader.model_identity("MODEL_IDENTITY", labels),
    }
    try:
        return WorkflowSettings.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(value)'}: {e['msg']}" for e in exc.errors())
        raise SettingsError(problems) from None


_PROCESSING_VARIABLES = {
    "instance_type": "INSTANCE_TYPE",
    "instance_count": "INSTANCE_COUNT",
    "volume_size_gb": "VOLUME_GB",
    "max_runtime_seconds": "MAX_RUNTIME_SECONDS",
}
_MISSING = object()


class _Reader:
    def __init__(self, env: Mapping[str, str]):
        self.env = env

    def text(self, name: str, default: object = _MISSING) -> str:
        value = self.env.get(name, "").strip()
        if value:
            return value
        if default is _MISSING:
            raise SettingsError(f"environment variable {name} is required")
        return str(default)

    def number(self, name: str, default: int) -> int:
        raw = self.text(name, str(default))
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{name}={raw!r} is not a whole number") from None
        if value < 1:
            raise SettingsError(f"{name}={value} must be at least 1")
        return value

    def optional_number(self, name: str) -> int | None:
        if not self.env.get(name, "").strip():
            return None
        raw = self.text(name)
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{name}={raw!r} is not a whole number") from None

    def language(self, name: str, default: str) -> str:
        raw = self.text(name, default)
        try:
            return clarify_language(raw)
        except ValueError as exc:
            raise SettingsError(f"{name}: {exc}") from None

    def model_identity(self, name: str, labels: list[str]) -> dict:
        """MODEL_IDENTITY: a JSON object naming the model (contract §1); its labels, when given, must be LABELS."""
        raw = self.env.get(name, "").strip()
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            raise SettingsError(f"{name} is not JSON: {raw!r}") from None
        if not isinstance(value, dict) or not value:
            raise SettingsError(f"{name} must be a non-empty JSON object, got {raw!r}")
        if "labels" in value and value["labels"] != labels:
            raise SettingsError(f"{name} names labels {value['labels']} but LABELS is {labels}")
        return value

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.text(name, default)
        if value not in allowed:
            raise SettingsError(f"{name}={value!r} is not one of {list(allowed)}")
        return value

    def labels(self, name: str) -> list[str]:
        raw = self.text(name)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            raise SettingsError(f"{name} is not a JSON list: {raw!r}") from None
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise SettingsError(f"{name} must be a non-empty JSON list of strings, got {raw!r}")
        if len(set(value)) != len(value):
            raise SettingsError(f"{name} has duplicates: {value}")
        return value

"""Stage settings of the workflow functions, read from the environment in one place.

CDK sets these variables from the stage config; the local mode builds the same object directly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from explain_workflow.languages import clarify_language

GRANULARITIES = ("token", "sentence", "paragraph")
AGG_METHODS = ("mean_abs", "median", "mean_sq")
NUM_SAMPLES_CEILING = 100_000  # no stage may allow more model calls per record than this


class SettingsError(ValueError):
    """An environment variable is missing or holds an unusable value."""


@dataclass(frozen=True)
class ClarifyDefaults:
    """What a run uses unless its request overrides it."""

    text_column: str = "text"
    granularity: str = "token"
    language: str = "english"
    baseline: str = "<UNK>"
    num_samples: int = 1000
    agg_method: str = "mean_abs"
    seed: int | None = None  # Clarify's ``shap.seed``: None lets each job draw its own samples


@dataclass(frozen=True)
class Limits:
    max_rows: int = 10_000
    max_text_chars: int = 5_000
    max_object_bytes: int = 100 * 1024 * 1024
    max_num_samples: int = 5000  # a request asking for more is refused (each sample is a model call per record)


@dataclass(frozen=True)
class Processing:
    instance_type: str = "ml.m5.xlarge"
    instance_count: int = 1
    volume_size_gb: int = 30
    max_runtime_seconds: int = 3600


@dataclass(frozen=True)
class WorkflowSettings:
    results_bucket: str
    labels: list[str]
    model_name: str = ""
    endpoint_name: str = ""  # an existing endpoint instead of a temporary one
    endpoint_instance_type: str = "ml.m5.xlarge"
    endpoint_instance_count: int = 1
    defaults: ClarifyDefaults = field(default_factory=ClarifyDefaults)
    limits: Limits = field(default_factory=Limits)
    processing: Processing = field(default_factory=Processing)
    # What identifies the model that makes the predictions (contract: MODEL_IDENTITY); part of the run id.
    model_identity: dict = field(default_factory=dict)

    def identity_of_model(self) -> dict:
        """The model part of a run's identity: MODEL_IDENTITY, or what the names alone say when it is not set."""
        if self.model_identity:
            return self.model_identity
        named = {"model_name": self.model_name} if not self.endpoint_name else {"endpoint_name": self.endpoint_name}
        return {**named, "labels": list(self.labels), "source": "MODEL_NAME/ENDPOINT_NAME (no MODEL_IDENTITY set)"}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkflowSettings:
        env = os.environ if env is None else env
        reader = _Reader(env)
        labels = reader.labels("LABELS")
        max_num_samples = reader.number("MAX_NUM_SAMPLES", Limits.max_num_samples)
        if max_num_samples > NUM_SAMPLES_CEILING:
            raise SettingsError(f"MAX_NUM_SAMPLES={max_num_samples} is over {NUM_SAMPLES_CEILING}")
        settings = cls(
            results_bucket=reader.text("RESULTS_BUCKET"),
            labels=labels,
            model_name=reader.text("MODEL_NAME", ""),
            endpoint_name=reader.text("ENDPOINT_NAME", ""),
            endpoint_instance_type=reader.text("ENDPOINT_INSTANCE_TYPE", "ml.m5.xlarge"),
            endpoint_instance_count=reader.number("ENDPOINT_INSTANCE_COUNT", 1),
            defaults=ClarifyDefaults(
                text_column=reader.text("DEFAULT_TEXT_COLUMN", ClarifyDefaults.text_column),
                granularity=reader.choice("DEFAULT_GRANULARITY", ClarifyDefaults.granularity, GRANULARITIES),
                language=reader.language("DEFAULT_LANGUAGE", ClarifyDefaults.language),
                baseline=reader.text("DEFAULT_BASELINE", ClarifyDefaults.baseline),
                num_samples=reader.number("DEFAULT_NUM_SAMPLES", ClarifyDefaults.num_samples),
                agg_method=reader.choice("DEFAULT_AGG_METHOD", ClarifyDefaults.agg_method, AGG_METHODS),
                seed=reader.optional_number("DEFAULT_SEED"),
            ),
            limits=Limits(
                max_rows=reader.number("MAX_ROWS", Limits.max_rows),
                max_text_chars=reader.number("MAX_TEXT_CHARS", Limits.max_text_chars),
                max_object_bytes=reader.number("MAX_OBJECT_BYTES", Limits.max_object_bytes),
                max_num_samples=max_num_samples,
            ),
            processing=Processing(
                instance_type=reader.text("PROCESSING_INSTANCE_TYPE", Processing.instance_type),
                instance_count=reader.number("PROCESSING_INSTANCE_COUNT", Processing.instance_count),
                volume_size_gb=reader.number("PROCESSING_VOLUME_GB", Processing.volume_size_gb),
                max_runtime_seconds=reader.number("PROCESSING_MAX_RUNTIME_SECONDS", Processing.max_runtime_seconds),
            ),
            model_identity=reader.model_identity("MODEL_IDENTITY", labels),
        )
        if settings.defaults.num_samples > max_num_samples:
            raise SettingsError(
                f"DEFAULT_NUM_SAMPLES={settings.defaults.num_samples} is over MAX_NUM_SAMPLES={max_num_samples}"
            )
        if not settings.model_name and not settings.endpoint_name:
            raise SettingsError("set MODEL_NAME (a temporary endpoint per job) or ENDPOINT_NAME (an existing one)")
        return settings


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

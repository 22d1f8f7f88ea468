"""The typed stage configuration: one JSON file per stage under config/stages/, validated at synth.

Everything that differs between dev, staging and prod (account, region, sizes, labels, where the
model artifact lives, retention) is here, so one code base deploys every stage with no lookups.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from explain_workflow.contract import (
    ClarifyOptions,
    ExplainerSettings,
    Labels,
    Limits,
    PredictSettings,
    ProcessingSettings,
    Strict,
    WorkflowSettings,
    samples_within_the_limit,
    shards_mergeable,
)

ROOT = Path(__file__).resolve().parent.parent
STAGES_DIR = ROOT / "config" / "stages"


class ConfigError(ValueError):
    """A stage file is missing or invalid; the message names the file and the field."""


class ModelSettings(Strict):
    labels: Labels = Field(min_length=2)
    # exactly one of: an s3:// URI of a model.tar.gz, or a local file uploaded as an asset
    artifact_s3_uri: str | None = None
    artifact_path: str | None = None
    # a version of the artifact at that URI (an S3 version id, a training run id): part of the model's identity,
    # so a new artifact at the same URI makes a new model and new runs
    artifact_version: str = Field("", max_length=1024)
    # when the artifact bucket (often in another account) encrypts with its own KMS key: the key's ARN, or an alias
    # ARN (arn:...:alias/<name>) when the key is made by another stack and its id is not known in advance
    artifact_kms_key_arn: str | None = Field(None, pattern=r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key|alias)/.+$")
    # image: "asset" builds container/ as a CDK image asset; "repository" uses image_tag in the stack's ECR repository
    image_source: Literal["asset", "repository"] = "asset"
    image_tag: str | None = None
    endpoint_instance_type: str = "ml.m5.xlarge"
    endpoint_instance_count: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _one_artifact(self) -> ModelSettings:
        if (self.artifact_s3_uri is None) == (self.artifact_path is None):
            raise ValueError("set exactly one of artifact_s3_uri and artifact_path")
        if self.artifact_s3_uri and not re.match(r"^s3://[a-z0-9.\-]{3,63}/.+", self.artifact_s3_uri):
            raise ValueError(f"artifact_s3_uri {self.artifact_s3_uri!r} is not an s3://bucket/key URI")
        if self.image_source == "repository" and not self.image_tag:
            raise ValueError("image_source 'repository' needs image_tag (the tag the team pushes)")
        return self


class HostingSettings(Strict):
    """How Clarify reaches the model (docs/hosting.md).

    mode "byoc": our container serves the model; "pipeline": AWS's built-in BlazingText container between our
    pre- and post-adapters. endpoint_name: Clarify uses this existing endpoint instead of a temporary
    one. online_explainer: also deploy an endpoint that explains each request (SageMaker Clarify online).
    """

    mode: Literal["byoc", "pipeline"] = "byoc"
    endpoint_name: str | None = Field(None, pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
    online_explainer: bool = False
    online_instance_type: str = "ml.m5.xlarge"


class EventSettings(Strict):
    """Who may send "Explanation Requested" to the stage's bus, and where results are forwarded."""

    allowed_accounts: list[str] = Field(default_factory=list)
    allowed_org_id: str | None = Field(None, pattern=r"^o-[a-z0-9]{10,32}$")
    central_bus_arn: str | None = Field(None, pattern=r"^arn:aws[a-z-]*:events:[a-z0-9-]+:\d{12}:event-bus/.+$")

    @field_validator("allowed_accounts")
    @classmethod
    def _accounts(cls, accounts: list[str]) -> list[str]:
        bad = [a for a in accounts if not re.fullmatch(r"\d{12}", a)]
        if bad:
            raise ValueError(f"allowed_accounts must be 12-digit account ids, got {bad}")
        return accounts


class StageConfig(Strict):
    stage: str = Field(pattern=r"^[a-z][a-z0-9-]{1,20}$")
    account: str = Field(pattern=r"^\d{12}$")
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    model: ModelSettings
    clarify: ClarifyOptions = ClarifyOptions()
    # "clarify" (SageMaker Clarify's job, the default) or "builtin" (our image's job: docs/deploy.md)
    explainer: ExplainerSettings = ExplainerSettings()
    limits: Limits = Limits()
    processing: ProcessingSettings = ProcessingSettings()
    predict: PredictSettings = PredictSettings()
    hosting: HostingSettings = HostingSettings()
    events: EventSettings = EventSettings()
    retain_data: bool = True  # prod keeps buckets and keys when the stack is deleted
    results_expire_days: int = Field(90, ge=1)
    log_retention_days: int = 90
    alarm_email: str | None = None
    # reserved concurrency of each of the four functions; their sum must leave the account's unreserved minimum
    # (new accounts may have a small concurrency quota: lower this, or raise the quota)
    function_concurrency: int = Field(10, ge=1)
    # on-demand USD per instance-hour, for `textexplain estimate` (check your region's prices)
    prices_per_hour: dict[str, float] = Field(
        default_factory=lambda: {"ml.m5.xlarge": 0.23, "ml.m5.2xlarge": 0.461, "ml.c5.xlarge": 0.204}
    )

    @model_validator(mode="after")
    def _samples_within_the_limit(self) -> StageConfig:
        samples_within_the_limit(self.clarify, self.limits, "clarify")
        return self

    @model_validator(mode="after")
    def _shards_mergeable(self) -> StageConfig:
        shards_mergeable(self.explainer.engine, self.clarify.agg_method, self.processing.instance_count, "clarify")
        if self.explainer.engine == "builtin" and self.hosting.endpoint_name:
            raise ValueError(
                "explainer.engine 'builtin' explains the stage's own model artifact in its job, never an endpoint: "
                "remove hosting.endpoint_name (or keep engine 'clarify' to explain that endpoint's model)"
            )
        return self

    @model_validator(mode="after")
    def _artifact_in_this_region(self) -> StageConfig:
        key = self.model.artifact_kms_key_arn
        if key and key.split(":")[3] != self.region:
            raise ValueError(
                f"model.artifact_kms_key_arn is in {key.split(':')[3]}, the stage in {self.region}: SageMaker reads "
                "a model artifact only from its own region (copy the artifact to a bucket in the stage's region)"
            )
        return self


def load_stage(stage: str, directory: Path = STAGES_DIR) -> StageConfig:
    path = directory / f"{stage}.json"
    if not path.is_file():
        known = sorted(p.stem for p in directory.glob("*.json"))
        raise ConfigError(f"no stage config {path}; known stages: {known}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not JSON: {exc}") from None
    try:
        config = StageConfig.model_validate({"stage": stage, **raw})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(file)'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from None
    if config.stage != stage:
        raise ConfigError(f"{path} says stage {config.stage!r} but is the file for {stage!r}")
    return config


def workflow_settings(
    config: StageConfig, *, results_bucket: str, model_name: str, model_identity: dict
) -> WorkflowSettings:
    """The settings the stage's functions get (one serialized WorkflowSettings), from the stage config and the
    names CDK makes (tokens at synth, resolved by CloudFormation)."""
    return WorkflowSettings(
        results_bucket=results_bucket,
        labels=config.model.labels,
        model_name=model_name,
        endpoint_name=config.hosting.endpoint_name or "",
        endpoint_instance_type=config.model.endpoint_instance_type,
        endpoint_instance_count=config.model.endpoint_instance_count,
        defaults=config.clarify,
        limits=config.limits,
        processing=config.processing,
        model_identity=model_identity,
        engine=config.explainer.engine,
    )

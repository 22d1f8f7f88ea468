"""The one contract between the stage config, the stacks, the workflow functions, the local mode and the CLI.

Every setting, name and message that crosses a process boundary is defined here once: the stage config is
composed of these models, CDK serializes them into each function's environment and into the state machine, the
functions validate them once at cold start, and the local mode builds the same objects. It imports only the
standard library, pydantic and two standard-library-only modules of this package (errors, languages), so the
stacks, the Lambda asset and the CLI can all depend on it.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
    model_serializer,
    model_validator,
)

from explain_workflow.errors import InputValidationError
from explain_workflow.languages import clarify_language

# ---- names ----

EVENT_SOURCE = "clarify-text-explanations"
METRICS_NAMESPACE = "TextExplanations"


class DetailType(StrEnum):
    """The EventBridge detail types of the stage's bus."""

    REQUESTED = "Explanation Requested"
    SUCCEEDED = "Explanation Succeeded"
    FAILED = "Explanation Failed"


class RunStatus(StrEnum):
    """What prepare answers (READY, ALREADY_DONE) and what a manifest says (SUCCEEDED, FAILED)."""

    READY = "READY"
    ALREADY_DONE = "ALREADY_DONE"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class StartStatus(StrEnum):
    """What the starter answers for one event."""

    STARTED = "STARTED"
    DUPLICATE = "DUPLICATE"
    REJECTED = "REJECTED"


INCOMING_PREFIX = "incoming/"  # an upload here starts a run (the S3 trigger)
UPLOADS_PREFIX = "uploads/"  # where `textexplain aws run` puts a local file
READABLE_PREFIXES = (INCOMING_PREFIX, UPLOADS_PREFIX)  # the only input keys a run may name
RUNS_PREFIX = "runs/"  # everything a run writes, under runs/<run_id>/
# the bucket names botocore sends at all (a name outside them is its ParamValidationError); S3 itself is stricter
_BUCKET_NAME = re.compile(r"[a-zA-Z0-9._-]{1,255}")
MAX_KEY_BYTES = 1024  # S3's limit on a key, UTF-8 encoded


def check_input_location(bucket: str, key: str, results_bucket: str) -> None:
    """The one check of the object a request may name, made by the starter and by prepare (``run_identity``): a
    key under incoming/ or uploads/ of a bucket that is not the stage's results bucket (prepare may read that
    bucket's runs/, so it is refused by name); ``InputValidationError`` saying which rule it breaks."""
    if not _BUCKET_NAME.fullmatch(bucket) or ".." in bucket:
        raise InputValidationError(f"bucket {bucket!r} is not an S3 bucket name")
    if bucket == results_bucket:
        raise InputValidationError(f"bucket {bucket!r} is the stage's results bucket; name the input bucket")
    if not key.startswith(READABLE_PREFIXES) or key in READABLE_PREFIXES:
        raise InputValidationError(f"key {key!r} is not an object under {' or '.join(READABLE_PREFIXES)}")
    size = len(key.encode("utf-8", "surrogatepass"))
    if size > MAX_KEY_BYTES:
        raise InputValidationError(f"key of {size} bytes: S3 keys have at most {MAX_KEY_BYTES}")


# ---- CSV records: one rule for the user's file (prepare, the local mode) and for the container's requests ----

# Only LF (or CR LF) ends a CSV record; a bare CR (one not followed by LF) is part of the text, quoted or not.
# csv.writer and pandas.to_csv with lineterminator "\n" write a text holding a bare CR unquoted (``1,a\rb\n``), and
# Python's csv reader would end the record at it. To read with csv.reader under this rule, the text is split after
# each LF only, and in a line holding a CR or the escape character, the escape character is written as itself + "0"
# and a bare CR as the escape character + "1"; every field is then unescaped. The escape is reversible whatever the
# text holds (no character needs to be absent from it).
_ESCAPE = "\ue000"  # a private-use character
_BARE_CR = re.compile(r"\r(?!\n)")
_ESCAPED = re.compile("\ue000([01])")


def _escaped_lines(lines: Iterable[str]) -> Iterator[str]:
    for line in lines:
        if "\r" in line or _ESCAPE in line:
            line = _BARE_CR.sub(_ESCAPE + "1", line.replace(_ESCAPE, _ESCAPE + "0"))
        yield line


def _unescaped(match: re.Match) -> str:
    return "\r" if match.group(1) == "1" else _ESCAPE


class CsvRecords:
    """The records of an RFC 4180 CSV text (``csv.reader``, strict) under the rule above, as lists of fields.
    ``line_num`` counts the lines read so far, each ended by LF (a bare CR does not start a line).

    ``CsvRecords.of_text(str)``, or ``CsvRecords.of_stream(binary stream, encoding)`` (read as it is iterated; a
    decoding error is raised from the iteration)."""

    def __init__(self, lines: Iterable[str], escape: bool = True):
        self._escape = escape
        self._reader = csv.reader(_escaped_lines(lines) if escape else lines, strict=True)

    @classmethod
    def of_text(cls, text: str) -> CsvRecords:
        if "\r" in text or _ESCAPE in text:
            return cls(io.StringIO(text, newline="\n"))  # lines end after LF only, untranslated
        return cls(io.StringIO(text, newline=""), escape=False)  # no CR: csv's own reading is the rule's

    @classmethod
    def of_stream(cls, stream, encoding: str = "utf-8") -> CsvRecords:
        return cls(io.TextIOWrapper(stream, encoding=encoding, newline="\n"))

    @property
    def line_num(self) -> int:
        return self._reader.line_num

    def __iter__(self) -> Iterator[list[str]]:
        return self if self._escape else self._reader  # nothing to unescape: csv's reader itself, at its speed

    def __next__(self) -> list[str]:
        row = next(self._reader)
        return [_ESCAPED.sub(_unescaped, f) if _ESCAPE in f else f for f in row] if self._escape else row


CLARIFY_JOB_PREFIX = "cx"  # processing job cx-<run_id>-<attempt>
TRANSFORM_JOB_PREFIX = "cp"  # transform job cp-<run_id>-<attempt>
CLARIFY_ENDPOINT_PREFIX = "sm-clarify-"  # Clarify's temporary endpoints (and their configs) are named so

# Every AWS call each function's own code makes, as (IAM action, resource): the authorization inventory. Resources
# are "<bucket>:<key pattern>" (input: the request's bucket, results: the stage's results bucket), "state-machine",
# "execution:<name pattern>", "bus". The test suite records every call the real handlers make and fails on one
# missing here; the authorization tests evaluate each against the synthesized policies.
_READ_INPUT = [(a, f"input:{p}*") for a in ("s3:GetObject", "s3:GetObjectVersion") for p in READABLE_PREFIXES]
_RUNS = [(a, f"results:{RUNS_PREFIX}*") for a in ("s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload")]
FUNCTION_CALLS: dict[str, list[tuple[str, str]]] = {
    "prepare": [*_READ_INPUT, ("s3:ListBucket", "results:"), *_RUNS, ("s3:DeleteObject", f"results:{RUNS_PREFIX}*")],
    "postprocess": [("s3:ListBucket", "results:"), *_RUNS],
    "record_failure": [*_READ_INPUT, ("s3:ListBucket", "results:"), *_RUNS],
    "starter": [
        *_READ_INPUT,
        ("s3:ListBucket", "input:"),
        ("s3:ListBucket", "results:"),
        ("s3:GetObject", f"results:{RUNS_PREFIX}*/manifest.json"),
        ("states:DescribeExecution", "execution:*"),
        ("states:StartExecution", "state-machine"),
        ("events:PutEvents", "bus"),
    ],
}

SETTINGS_ENV = "WORKFLOW_SETTINGS"  # a function's WorkflowSettings, as JSON
STARTER_SETTINGS_ENV = "STARTER_SETTINGS"  # the starter's StarterSettings, as JSON

Granularity = Literal["token", "sentence", "paragraph"]
AggMethod = Literal["mean_abs", "median", "mean_sq"]
GRANULARITIES, AGG_METHODS = get_args(Granularity), get_args(AggMethod)
NUM_SAMPLES_CEILING = 100_000  # the most samples per record any stage may allow (each is a model call)
SEED_MAX = 2**32 - 1  # a seed numpy's and Clarify's generators take: 0 to 2**32 - 1


def project_name(stage: str) -> str:
    """The name the stage's own resources share (bus, image repository)."""
    return f"text-explanations-{stage}"


def stack_names(stage: str) -> tuple[str, str]:
    """The stage's two stacks, deployed in this order: its image repository, then the stage itself."""
    return f"TextExplanations-{stage}-images", f"TextExplanations-{stage}"


def execution_arn(machine_arn: str, execution_name: str) -> str:
    """The ARN of an execution of ``machine_arn`` by its name (Step Functions derives it so)."""
    head, marker, name = machine_arn.partition(":stateMachine:")
    if not marker or not name:
        raise ValueError(f"not a state machine ARN: {machine_arn!r}")
    return f"{head}:execution:{name}:{execution_name}"


# ---- settings ----


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClarifyOptions(Strict):
    """What a run uses unless its request overrides it (Clarify's text_config and shap settings)."""

    text_column: str = "text"
    granularity: Granularity = "token"
    language: str = "english"
    baseline: str = Field("<UNK>", min_length=1)
    num_samples: int = Field(1000, ge=1, le=NUM_SAMPLES_CEILING)
    agg_method: AggMethod = "mean_abs"
    # Clarify's ``shap.seed``: None lets each job draw its own samples
    seed: int | None = Field(None, ge=0, le=SEED_MAX)

    @field_validator("language")
    @classmethod
    def _known_language(cls, language: str) -> str:
        return clarify_language(language)


class Limits(Strict):
    max_rows: int = Field(10_000, ge=1)
    max_text_chars: int = Field(5_000, ge=1)
    max_object_bytes: int = Field(100 * 1024 * 1024, ge=1)
    # a request (or the stage default) asking for more samples per record is refused: cost is rows x samples
    max_num_samples: int = Field(5_000, ge=1, le=NUM_SAMPLES_CEILING)


class ProcessingSettings(Strict):
    """The Clarify processing job's cluster and time limit."""

    instance_type: str = "ml.m5.xlarge"
    instance_count: int = Field(1, ge=1)
    volume_size_gb: int = Field(30, ge=1, le=16_384)
    max_runtime_seconds: int = Field(3600, ge=60, le=432_000)


Engine = Literal["clarify", "builtin"]
ENGINES = get_args(Engine)
EXPLAIN_JOB_ENTRYPOINT = ["explain-job"]  # the builtin engine's script in our image (/usr/local/bin/explain-job)


class ExplainerSettings(Strict):
    """Which engine explains a run: SageMaker Clarify's processing job (the default), or our own image's job
    ("builtin": the model scored in-process, no endpoint, its predictions written by the same job)."""

    engine: Engine = "clarify"


def shards_mergeable(engine: str, agg_method: str, instance_count: int, field: str) -> None:
    """ValueError when a builtin run on N > 1 instances asks for an aggregate its N partial parts cannot give
    exactly (a median of medians is not the median)."""
    if engine == "builtin" and agg_method == "median" and instance_count > 1:
        raise ValueError(
            f"{field}.agg_method 'median' cannot be merged exactly from processing.instance_count {instance_count} "
            "shards of the builtin engine: use mean_abs or mean_sq, or one instance"
        )


class PredictSettings(Strict):
    """The Batch Transform job that records the model's own predictions for every row, beside the Clarify job."""

    instance_type: str = "ml.m5.xlarge"
    instance_count: int = Field(1, ge=1)


def unique_labels(labels: list[str]) -> list[str]:
    """The model's class labels: unique, none empty, no white space (Clarify's label headers, fastText's)."""
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels must be unique, got {labels}")
    bad = [lab for lab in labels if not lab or any(ch.isspace() for ch in lab)]
    if bad:
        raise ValueError(f"labels may not be empty or contain white space: {bad}")
    return labels


# a model's class labels wherever they are configured
Labels = Annotated[list[str], AfterValidator(unique_labels)]


class WorkflowSettings(Strict):
    """What prepare, postprocess, record_failure and the starter know of their stage."""

    results_bucket: str = Field(min_length=3)
    labels: Labels = Field(min_length=1)
    model_name: str = ""
    endpoint_name: str = ""  # an existing endpoint instead of a temporary one
    endpoint_instance_type: str = "ml.m5.xlarge"
    endpoint_instance_count: int = Field(1, ge=1)
    defaults: ClarifyOptions = ClarifyOptions()
    limits: Limits = Limits()
    processing: ProcessingSettings = ProcessingSettings()
    # what identifies the model that makes the predictions (image, artifact, labels): part of every run id
    model_identity: dict[str, Any] = {}
    engine: Engine = "clarify"  # ExplainerSettings.engine: builtin runs write the frozen dataset as shards

    @model_serializer(mode="wrap")
    def _engine_only_when_builtin(self, handler) -> dict:
        # a clarify stage's functions keep exactly the environment they had before engines existed (no update)
        data = handler(self)
        if data.get("engine") == "clarify":
            data.pop("engine")
        return data

    @model_validator(mode="after")
    def _consistent(self) -> WorkflowSettings:
        if not self.model_name and not self.endpoint_name:
            raise ValueError("set model_name (a temporary endpoint per job) or endpoint_name (an existing one)")
        samples_within_the_limit(self.defaults, self.limits, "defaults")
        shards_mergeable(self.engine, self.defaults.agg_method, self.processing.instance_count, "defaults")
        named = self.model_identity.get("labels")
        if named is not None and named != self.labels:
            raise ValueError(f"model_identity names labels {named} but labels is {self.labels}")
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkflowSettings:
        """The settings CDK serialized into ``WORKFLOW_SETTINGS``; ``SettingsError`` naming what is wrong."""
        return settings_from_env(cls, os.environ if env is None else env, SETTINGS_ENV)

    def identity_of_model(self) -> dict:
        """The model part of a run's identity: model_identity, or what the names alone say when it is not set."""
        if self.model_identity:
            return dict(self.model_identity)
        named = {"model_name": self.model_name} if not self.endpoint_name else {"endpoint_name": self.endpoint_name}
        return {**named, "labels": list(self.labels), "source": "model_name/endpoint_name (no model_identity set)"}


def samples_within_the_limit(options: ClarifyOptions, limits: Limits, field: str) -> None:
    """ValueError when the default samples per record (``<field>.num_samples``) exceed what the stage allows."""
    if options.num_samples > limits.max_num_samples:
        raise ValueError(
            f"{field}.num_samples {options.num_samples} is over limits.max_num_samples {limits.max_num_samples}"
        )


class StarterSettings(Strict):
    """What the starter needs beyond the workflow's settings: who may ask, and where to start and answer."""

    own_account: str = Field(pattern=r"^\d{12}$")
    allowed_accounts: frozenset[str] = frozenset()  # serialized sorted, so a template is the same at every synth
    # when set, the bus policy (aws:PrincipalOrgID) already admitted the sender: any account the bus delivered is ok
    allowed_org_id: str = ""
    state_machine_arn: str
    event_bus_name: str

    @field_serializer("allowed_accounts")
    def _sorted(self, accounts: frozenset[str]) -> list[str]:
        return sorted(accounts)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StarterSettings:
        return settings_from_env(cls, os.environ if env is None else env, STARTER_SETTINGS_ENV)


class SettingsError(ValueError):
    """A function's settings are missing or unusable; the message names the variable and the field."""


def settings_from_env(model: type[Strict], env: Mapping[str, str], name: str) -> Any:
    """``model`` from the JSON in ``env[name]``, with an error that names the variable and each bad field."""
    raw = env.get(name, "").strip()
    if not raw:
        raise SettingsError(f"environment variable {name} is required (a JSON {model.__name__})")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(value)'}: {e['msg']}" for e in exc.errors())
        raise SettingsError(f"{name}: {problems}") from None


# ---- a run: its request and its identity ----

OVERRIDABLE = (
    "text_column",
    "granularity",
    "language",
    "num_samples",
    "baseline",
    "agg_method",
    "max_rows",
    "seed",
    "label_column",  # not a Clarify option: the labels stay beside the dataset (explain_workflow.evaluation)
)


class RunRequest(Strict):
    """What starts a run: the object to explain, the request's overrides, and which try of the run this is."""

    bucket: str = Field(min_length=1)
    key: str = Field(min_length=1)
    version_id: str = ""
    etag: str = ""
    overrides: dict[str, Any] = Field(default_factory=dict)
    attempt: int = Field(1, ge=1, strict=True)  # the starter counts; not part of the identity

    @classmethod
    def from_event(cls, event: Any) -> RunRequest:
        """The request in an event (keys that event transformers add are ignored); InputValidationError if unusable."""
        if not isinstance(event, dict):
            raise InputValidationError(f"the request must be a JSON object, got {type(event).__name__}")
        missing = [k for k in ("bucket", "key") if not isinstance(event.get(k), str) or not event.get(k)]
        if missing:
            raise InputValidationError(f"the request lacks {missing}; got keys {sorted(event)}")
        overrides = event.get("overrides") or {}
        if not isinstance(overrides, dict):
            raise InputValidationError("overrides must be a JSON object")
        unknown = sorted(set(overrides) - set(OVERRIDABLE))
        if unknown:
            raise InputValidationError(f"unknown overrides {unknown}; allowed: {list(OVERRIDABLE)}")
        attempt = event.get("attempt", 1)
        if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
            raise InputValidationError(f"attempt must be a whole number from 1, got {attempt!r}")
        return cls(
            bucket=event["bucket"],
            key=event["key"],
            version_id=str(event.get("version_id") or ""),
            etag=str(event.get("etag") or "").strip('"'),
            overrides=overrides,
            attempt=attempt,
        )

    @property
    def version(self) -> str:
        return self.version_id or self.etag

    def as_event(self) -> dict:
        return self.model_dump(mode="json")


class RunIdentity(Strict):
    """Everything that decides a run's result, and the run id hashed from it (see identity.run_identity)."""

    run_id: str = Field(max_length=57)
    parts: dict[str, Any]  # {"input", "options", "limits", "model"}: shown in request.json and the manifest
    options: ClarifyOptions
    limits: Limits


# ---- what the workflow's steps hand each other ----


class PredictJob(Strict):
    """The transform job of one attempt: its name and the run's predict/ input and output prefixes."""

    job_name: str
    input_s3_uri: str
    output_s3_uri: str


class PrepareResult(Strict):
    """Prepare's answer: the state machine's Choice reads ``status``, the jobs read their names and prefixes."""

    run_id: str
    status: Literal[RunStatus.READY, RunStatus.ALREADY_DONE]
    attempt: int = Field(ge=1)
    job_name: str
    results_bucket: str
    run_prefix: str
    dataset_s3_uri: str
    config_s3_uri: str
    output_s3_uri: str
    manifest_s3_uri: str
    predict: PredictJob
    rows: int = Field(ge=0)
    options: ClarifyOptions  # the run's effective options: the stage's defaults with the request's overrides


class PostprocessResult(Strict):
    """Postprocess's answer, published as "Explanation Succeeded"."""

    run_id: str
    status: RunStatus
    attempt: int = Field(ge=1)
    complete: bool
    manifest_s3_uri: str
    results_prefix: str
    records: int = Field(ge=0)


class FailureResult(Strict):
    """record_failure's answer, published as "Explanation Failed"."""

    run_id: str | None
    attempt: int | None = None
    status: RunStatus = RunStatus.FAILED
    reason: str
    manifest_s3_uri: str | None


def json_path(model: type[BaseModel], *fields: str, root: str = "$") -> str:
    """``root.<field>.<field>`` for a chain of fields of ``model``; KeyError for a name the model does not have."""
    path, current = root, model
    for name in fields:
        if current is None or name not in current.model_fields:
            owner = current.__name__ if current else "a plain value"
            raise KeyError(f"{name!r} is not a field of {owner}")
        annotation = current.model_fields[name].annotation
        current = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
        path += f".{name}"
    return path

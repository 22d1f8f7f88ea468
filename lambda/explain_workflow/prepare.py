"""Prepare a run: identify it, stop if it succeeded before, validate and freeze the input, write the config.

A run whose manifest says FAILED is not done: a new attempt clears what the failed one left and computes
again. The caller (Lambda handler or local mode) passes a ``Storage``; nothing here knows which.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile

from botocore.exceptions import BotoCoreError, ClientError

from explain_workflow import analysis_config
from explain_workflow.contract import CLARIFY_ENDPOINT_PREFIX, PredictJob, PrepareResult, RunStatus, WorkflowSettings
from explain_workflow.dataset import InputValidationError, first_invalid_utf8_byte, freeze
from explain_workflow.evaluation import labels_key
from explain_workflow.identity import RunIdentity, rejected_identity, run_id_for, run_identity
from explain_workflow.request import RunRequest, label_column_of
from explain_workflow.runs import (
    RunLayout,
    Stopwatch,
    is_done,
    job_name_for,
    read_manifest,
    transform_job_name_for,
    write_manifest,
)
from explain_workflow.shards import write_shards
from explain_workflow.storage import Storage, StorageError, permanent_aws_error


def layout_for(request: RunRequest, settings: WorkflowSettings) -> RunLayout:
    try:
        run_id = run_identity(request, settings).run_id
    except InputValidationError:
        run_id = run_id_for(rejected_identity(request, settings))
    return RunLayout(settings.results_bucket, run_id)


def result(layout: RunLayout, identity: RunIdentity, status: RunStatus, rows: int, attempt: int) -> PrepareResult:
    """What the state machine's Clarify and transform steps need (see docs/workflow.md)."""
    return PrepareResult(
        run_id=layout.run_id,
        status=status,
        attempt=attempt,
        job_name=job_name_for(layout.run_id, attempt),
        results_bucket=layout.bucket,
        run_prefix=layout.prefix,
        dataset_s3_uri=layout.uri(layout.input_prefix),
        config_s3_uri=layout.uri(layout.config_prefix),
        output_s3_uri=layout.uri(layout.clarify_prefix),
        manifest_s3_uri=layout.uri(layout.manifest_key),
        predict=PredictJob(
            job_name=transform_job_name_for(layout.run_id, attempt),
            input_s3_uri=layout.uri(layout.predict_input_prefix),
            output_s3_uri=layout.uri(layout.predict_output_prefix),
        ),
        rows=rows,
        options=identity.options,
    )


def _previous_attempt(manifest: dict) -> int:
    value = manifest.get("attempt", 1)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else 1


def prepare_run(storage: Storage, request: RunRequest, settings: WorkflowSettings) -> PrepareResult:
    """Validate the request and its CSV, write ``input/``, ``predict/input/`` and ``config/``; see module doc.

    Raises ``InputValidationError`` after writing a FAILED manifest when the input is unusable.
    """
    try:
        identity = run_identity(request, settings)
    except InputValidationError as exc:
        # a bad override still gets a run of its own, so the failure is visible
        layout = RunLayout(settings.results_bucket, run_id_for(rejected_identity(request, settings)))
        _fail(storage, layout, request, exc, request.attempt, None)
        raise
    layout = RunLayout(settings.results_bucket, identity.run_id)
    existing = read_manifest(storage, layout)
    if is_done(storage, layout, existing):
        counts = existing.get("counts")
        rows = counts.get("rows", 0) if isinstance(counts, dict) else 0
        return result(layout, identity, RunStatus.ALREADY_DONE, rows, _previous_attempt(existing))
    attempt = request.attempt
    if existing is not None:
        # FAILED, unreadable, or SUCCEEDED with its results gone: a new attempt, never reusing an earlier attempt's
        # job names
        attempt = max(attempt, _previous_attempt(existing) + 1)
    _clear(storage, layout)
    clock = Stopwatch()
    try:
        info = _check_object(storage, request, identity.limits.max_object_bytes)
        with (
            _checked_object(storage, request, info) as source,
            _frozen_target(storage, layout, settings) as target,
            storage.writer(layout.bucket, layout.predict_input_key, "application/jsonlines") as rows,
            _labels_target(storage, layout, request) as labels,
        ):
            summary = _freeze_or_locate(storage, request, info, source, target, rows, identity, labels)
            if settings.engine == "builtin":
                target.seek(0)
                write_shards(storage, layout, target, summary.rows, settings.processing.instance_count)
    except StorageError as exc:  # the object changed (or vanished) between the check and the read
        failure = InputValidationError(f"the input object cannot be read as checked: {exc}")
        _fail(storage, layout, request, failure, attempt, identity)
        raise failure from None
    except InputValidationError as exc:
        _fail(storage, layout, request, exc, attempt, identity)
        raise
    clock.lap("validate_and_freeze")
    config = analysis_config.build(
        settings, identity.options, endpoint_name_prefix=f"{CLARIFY_ENDPOINT_PREFIX}{layout.run_id[:11]}"
    )
    body = json.dumps(config, indent=2, sort_keys=True).encode()
    storage.put(layout.bucket, layout.config_key, body, "application/json")
    storage.put(
        layout.bucket,
        layout.request_key,
        json.dumps(
            {
                "run_id": layout.run_id,
                "attempt": attempt,
                "identity": identity.parts,
                "request": request.as_event(),
                "object": {"size": info.size, "etag": info.etag, "version_id": info.version_id},
                "input_sha256": summary.sha256,
                "label_column": label_column_of(request.overrides),
                "config_sha256": hashlib.sha256(body).hexdigest(),
                "rows": summary.rows,
                "timings": clock.timings,
            },
            indent=2,
            sort_keys=True,
            ensure_ascii=False,
        ).encode(),
        "application/json",
    )
    return result(layout, identity, RunStatus.READY, summary.rows, attempt)


def _fail(storage, layout, request, exc, attempt, identity: RunIdentity | None) -> None:
    write_manifest(
        storage,
        layout,
        RunStatus.FAILED,
        stage="prepare",
        attempt=attempt,
        reason=exc.reason,
        where=exc.where,
        request=request.as_event(),
        **({"identity": identity.parts} if identity else {}),
    )


# The local mode's journal of rows already explained survives a new attempt: it is keyed on the run's identity
# (model, options), so its rows are still right, and it is what lets an interrupted local run resume.
KEPT_ACROSS_ATTEMPTS = ("local/journal.jsonl",)


def _clear(storage: Storage, layout: RunLayout) -> None:
    """Remove what an earlier, failed or interrupted attempt left (its manifest first, so the run reads as not
    finished): stale Clarify part files or predictions must never mix into this attempt's results."""
    kept = {layout.prefix + name for name in KEPT_ACROSS_ATTEMPTS}
    keys = [k for k in storage.list(layout.bucket, layout.prefix) if k not in kept]
    if not keys:
        return
    if layout.manifest_key in keys:
        storage.delete(layout.bucket, [layout.manifest_key])
    storage.delete(layout.bucket, [k for k in keys if k != layout.manifest_key])


def _frozen_target(storage: Storage, layout: RunLayout, settings: WorkflowSettings):
    """Where the frozen dataset goes: input/dataset.csv (clarify), or a local file that becomes the shards."""
    if settings.engine == "builtin":
        return tempfile.TemporaryFile()  # Lambda's /tmp; the frozen rows are at most limits.max_object_bytes
    return storage.writer(layout.bucket, layout.dataset_key, "text/csv")


def _check_object(storage: Storage, request: RunRequest, max_bytes: int):
    try:
        info = storage.head(request.bucket, request.key, request.version_id or None)
    except StorageError as exc:
        raise InputValidationError(f"the input object cannot be read: {exc}") from None
    except (ClientError, BotoCoreError) as exc:
        if (reason := permanent_aws_error(exc)) is None:
            raise  # transient: the state machine retries the step
        raise InputValidationError(f"the input object cannot be read: {reason}") from None
    if request.etag and info.etag and request.etag != info.etag:
        raise InputValidationError(
            f"the object changed since the event: ETag {info.etag} where the request named {request.etag}"
        )
    if info.size == 0:
        raise InputValidationError("the file is empty (0 bytes)", byte=0)
    if info.size > max_bytes:
        raise InputValidationError(
            f"the file has {info.size} bytes, over the limit of {max_bytes} (limits.max_object_bytes)"
        )
    return info


def _checked_object(storage: Storage, request: RunRequest, info):
    """The very object ``_check_object`` checked: its version when S3 keeps versions, and its ETag on every read (a
    key overwritten in between is a StorageError, never frozen under the first upload's identity)."""
    return storage.open(request.bucket, request.key, info.version_id or request.version_id or None, info.etag or None)


def _labels_target(storage: Storage, layout: RunLayout, request: RunRequest):
    """labels/labels.jsonl when the request names a label column: beside Clarify's dataset, never in it."""
    if label_column_of(request.overrides) is None:
        return contextlib.nullcontext(None)
    return storage.writer(layout.bucket, labels_key(layout.prefix), "application/jsonlines")


def _freeze_or_locate(storage, request, info, source, target, rows, identity: RunIdentity, labels=None):
    try:
        label_column = label_column_of(request.overrides)
        return freeze(source, target, identity.options.text_column, identity.limits, rows, label_column, labels)
    except InputValidationError as exc:
        if exc.reason == "the file is not valid UTF-8":
            with _checked_object(storage, request, info) as again:
                offset = first_invalid_utf8_byte(again)
            # the decoder reads ahead, so only the byte offset is exact here
            raise InputValidationError(exc.reason, byte=offset) from None
        raise

"""Prepare a run: identify it, stop if it exists, validate and freeze the input, write the config.

The caller (Lambda handler or local mode) passes a ``Storage``; nothing here knows which.
"""

from __future__ import annotations

import hashlib
import json

from explain_workflow import analysis_config
from explain_workflow.dataset import InputValidationError, first_invalid_utf8_byte, freeze
from explain_workflow.request import RunRequest, apply_overrides
from explain_workflow.runs import FAILED, RunLayout, Stopwatch, job_name_for, read_manifest, run_id_for, write_manifest
from explain_workflow.settings import WorkflowSettings
from explain_workflow.storage import Storage, StorageError

READY, ALREADY_DONE = "READY", "ALREADY_DONE"


def layout_for(request: RunRequest, settings: WorkflowSettings) -> RunLayout:
    return RunLayout(
        settings.results_bucket, run_id_for(request.bucket, request.key, request.version, request.overrides)
    )


def result(layout: RunLayout, settings: WorkflowSettings, status: str, rows: int) -> dict:
    """What the state machine's Clarify step needs (the ▶ contract of prepare's output)."""
    p = settings.processing
    return {
        "run_id": layout.run_id,
        "status": status,
        "job_name": job_name_for(layout.run_id),
        "results_bucket": layout.bucket,
        "run_prefix": layout.prefix,
        "dataset_s3_uri": layout.uri(layout.input_prefix),
        "config_s3_uri": layout.uri(layout.config_prefix),
        "output_s3_uri": layout.uri(layout.clarify_prefix),
        "manifest_s3_uri": layout.uri(layout.manifest_key),
        "processing": {
            "instance_type": p.instance_type,
            "instance_count": p.instance_count,
            "volume_size_gb": p.volume_size_gb,
            "max_runtime_seconds": p.max_runtime_seconds,
        },
        "rows": rows,
    }


def prepare_run(storage: Storage, event: dict, settings: WorkflowSettings) -> dict:
    """Validate the request and its CSV, write ``input/`` and ``config/``; see module doc.

    Raises ``InputValidationError`` after writing a FAILED manifest when the input is unusable.
    """
    request = RunRequest.from_event(event)
    layout = layout_for(request, settings)
    existing = read_manifest(storage, layout)
    if existing is not None:
        return result(layout, settings, ALREADY_DONE, existing.get("counts", {}).get("rows", 0))
    clock = Stopwatch()
    try:
        clarify, limits = apply_overrides(settings.defaults, settings.limits, request.overrides)
        info = _check_object(storage, request, limits.max_object_bytes)
        with (
            storage.open(request.bucket, request.key, request.version_id or None) as source,
            storage.writer(layout.bucket, layout.dataset_key, "text/csv") as target,
        ):
            summary = _freeze_or_locate(storage, request, source, target, clarify.text_column, limits)
    except InputValidationError as exc:
        write_manifest(
            storage,
            layout,
            FAILED,
            stage="prepare",
            reason=exc.reason,
            where=exc.where,
            request=request.as_event(),
        )
        raise
    clock.lap("validate_and_freeze")
    config = analysis_config.build(settings, clarify, endpoint_name_prefix=f"sm-clarify-{layout.run_id[:11]}")
    body = json.dumps(config, indent=2, sort_keys=True).encode()
    storage.put(layout.bucket, layout.config_key, body, "application/json")
    storage.put(
        layout.bucket,
        layout.prefix + "request.json",
        json.dumps(
            {
                "request": request.as_event(),
                "object": {"size": info.size, "etag": info.etag, "version_id": info.version_id},
                "input_sha256": summary.sha256,
                "config_sha256": hashlib.sha256(body).hexdigest(),
                "rows": summary.rows,
                "timings": clock.timings,
            },
            indent=2,
            sort_keys=True,
        ).encode(),
        "application/json",
    )
    return result(layout, settings, READY, summary.rows)


def _check_object(storage: Storage, request: RunRequest, max_bytes: int):
    try:
        info = storage.head(request.bucket, request.key, request.version_id or None)
    except StorageError as exc:
        raise InputValidationError(f"the input object cannot be read: {exc}") from None
    if request.etag and info.etag and request.etag != info.etag:
        raise InputValidationError(
            f"the object changed since the event: ETag {info.etag} where the request named {request.etag}"
        )
    if info.size == 0:
        raise InputValidationError("the file is empty (0 bytes)", byte=0)
    if info.size > max_bytes:
        raise InputValidationError(f"the file has {info.size} bytes, over the limit of {max_bytes} (MAX_OBJECT_BYTES)")
    return info


def _freeze_or_locate(storage, request, source, target, text_column, limits):
    try:
        return freeze(source, target, text_column, limits)
    except InputValidationError as exc:
        if exc.reason == "the file is not valid UTF-8":
            with storage.open(request.bucket, request.key, request.version_id or None) as again:
                offset = first_invalid_utf8_byte(again)
            # the decoder reads ahead, so only the byte offset is exact here
            raise InputValidationError(exc.reason, byte=offset) from None
        raise

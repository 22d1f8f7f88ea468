"""The workflow's catch-all: make a failed run visible as a FAILED manifest.

It never overwrites this attempt's own manifest (postprocess's, more precise) nor a SUCCEEDED one; a FAILED
manifest left by an earlier attempt is replaced, so the manifest always speaks of the latest attempt.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict

from explain_workflow.contract import FailureResult, RunStatus, WorkflowSettings
from explain_workflow.errors import InputValidationError
from explain_workflow.prepare import layout_for
from explain_workflow.request import RunRequest
from explain_workflow.runs import UNREADABLE, RunLayout, StaleAttemptError, read_manifest, write_manifest
from explain_workflow.storage import Storage


def _reason(error: dict) -> str:
    """A readable reason from a Step Functions error object ({"Error", "Cause"})."""
    name, cause = error.get("Error", "Error"), error.get("Cause", "")
    try:
        parsed = json.loads(cause)
    except (json.JSONDecodeError, TypeError):
        parsed = None
    if isinstance(parsed, dict):
        cause = parsed.get("errorMessage") or parsed.get("FailureReason") or cause
    return f"{name}: {cause}" if cause else name


class FailureEvent(BaseModel):
    """What the state machine's catch passes: its whole state as ``request`` and the caught ``error``.

    Both stay plain objects: the state of a run whose request was malformed is exactly what must still be recorded.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)  # the failure path refuses nothing it can record
    # the execution's input, with prepare's answer under "prepare" once prepare ran
    request: dict[str, Any] = {}
    error: dict[str, Any] = {}  # Step Functions' {"Error", "Cause"}


def _attempt_of(manifest: dict) -> int:
    value = manifest.get("attempt", 1)
    return value if type(value) is int else 1  # a hand-edited manifest may say anything here


def record_failure(storage: Storage, event: FailureEvent, settings: WorkflowSettings) -> FailureResult:
    error, request = event.error, event.request
    reason = _reason(error)
    prepared = request.get("prepare") or {}
    run_id = prepared.get("run_id")
    if not run_id:
        try:
            run_id = layout_for(RunRequest.from_event(request), settings).run_id
        except InputValidationError as exc:
            # not even a run id: nothing can be written inside a run; say so in the answer
            return FailureResult(run_id=None, reason=f"{reason}; bad request: {exc}", manifest_s3_uri=None)
    attempt = prepared.get("attempt") or request.get("attempt") or 1
    layout = RunLayout(settings.results_bucket, run_id)
    manifest = read_manifest(storage, layout)
    failed = RunStatus.FAILED
    stale = manifest is not None and manifest.get("status") == failed and _attempt_of(manifest) < attempt
    if manifest is None or stale or manifest.get("status") == UNREADABLE:
        try:
            manifest = write_manifest(
                storage, layout, failed, stage="workflow", attempt=attempt, reason=reason, error=error
            )
        except StaleAttemptError:  # a newer attempt wrote its manifest since the read above: that one stands
            manifest = read_manifest(storage, layout)
    return FailureResult(
        run_id=run_id,
        attempt=manifest.get("attempt", attempt),
        status=manifest["status"],
        reason=manifest.get("reason", reason),
        manifest_s3_uri=layout.uri(layout.manifest_key),
    )

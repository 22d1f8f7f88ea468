"""Turn an incoming event into at most one running workflow execution per run.

Two kinds of event start a run: S3 "Object Created" for ``incoming/*.csv`` (any letter case) in the input
bucket, and a custom "Explanation Requested" event (detail: bucket, key, version_id?, etag?, overrides?) from
an allowed account (or, with ALLOWED_ORG_ID, any account the bus's organisation policy admitted). The run id
is computed exactly as prepare computes it (identity.py). Attempt 1 runs as execution ``<run_id>``, attempt
n as ``<run_id>-a<n>``: a run that is running or done (runs.finished) is a DUPLICATE, answered with that attempt's
number; a run whose last attempt failed (execution FAILED, TIMED_OUT or ABORTED, or an execution that succeeded but
left no done run) starts attempt n+1. A request that cannot
start (wrong shape, object missing, account not allowed, options over the stage's limits) ends in an
"Explanation Failed" event, never in silence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import unquote_plus

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict

from explain_workflow.contract import (
    EVENT_SOURCE,
    INCOMING_PREFIX,
    DetailType,
    RunRequest,
    RunStatus,
    StarterSettings,
    StartStatus,
    WorkflowSettings,
    check_input_location,
)
from explain_workflow.errors import InputValidationError
from explain_workflow.executions import ExecutionExists, Executions, ExecutionStatus
from explain_workflow.identity import run_identity
from explain_workflow.runs import UNREADABLE, RunLayout, execution_name_for, is_done, read_manifest
from explain_workflow.storage import ObjectInfo, Storage, StorageError, permanent_aws_error


@dataclass(frozen=True)
class Caller:
    """Who may ask: the stack's own account, listed accounts, or (checked by the bus policy) an organisation."""

    own_account: str
    allowed_accounts: frozenset[str] = frozenset()
    # With an organisation, the bus policy (aws:PrincipalOrgID) already admitted the sender: trust the bus.
    allowed_org_id: str = ""

    @classmethod
    def of(cls, settings: StarterSettings) -> Caller:
        return cls(settings.own_account, frozenset(settings.allowed_accounts), settings.allowed_org_id)


def request_from_event(event: dict, caller: Caller) -> RunRequest:
    """The workflow request an EventBridge event stands for; ``InputValidationError`` says why not."""
    if not isinstance(event, dict) or not isinstance(event.get("detail"), dict):
        raise InputValidationError("not an EventBridge event with a detail object")
    detail, kind = event["detail"], event.get("detail-type")
    if event.get("source") == "aws.s3" and kind == "Object Created":
        bucket, obj = detail.get("bucket", {}), detail.get("object", {})
        request = {
            "bucket": bucket.get("name"),
            "key": obj.get("key"),
            "version_id": obj.get("version-id"),
            "etag": obj.get("etag"),
        }
        key = str(request["key"])
        if not key.startswith(INCOMING_PREFIX) or not key.lower().endswith(".csv"):
            raise InputValidationError(f"{request['key']!r} is not a CSV under {INCOMING_PREFIX}")
    elif kind == DetailType.REQUESTED:
        account = str(event.get("account", ""))
        admitted = caller.allowed_org_id or account == caller.own_account or account in caller.allowed_accounts
        if not admitted:
            raise InputValidationError(f"account {account or '(none)'} may not request explanations")
        request = {k: detail.get(k) for k in ("bucket", "key", "version_id", "etag", "overrides") if k in detail}
    else:
        raise InputValidationError(f"unexpected event {event.get('source')!r} / {kind!r}")
    return RunRequest.from_event(request)


ENDED_BADLY = (ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT, ExecutionStatus.ABORTED)


class StartResult(BaseModel):
    """What the starter did with one event (serialized with ``exclude_unset``: only what applies is said)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    status: StartStatus
    run_id: str | None
    reason: str = ""
    attempt: int | None = None
    execution_arn: str | None = None

    def answer(self) -> dict:
        return self.model_dump(mode="json", exclude_unset=True)


def start_run(
    event: dict, caller: Caller, storage: Storage, executions: Executions, settings: WorkflowSettings
) -> StartResult:
    """Start (or find) the execution for an event; says what happened, never raises for a bad request."""
    try:
        request = request_from_event(event, caller)
        check_input_location(request.bucket, request.key, settings.results_bucket)  # before any call to S3
        request, found = _readable(storage, request, from_s3=event.get("source") == "aws.s3")
        if not request.version:
            # "explain this key" means its current content: pin it, so a later upload to the key is a new run
            request = request.model_copy(update={"version_id": found.version_id, "etag": found.etag})
        run_id = run_identity(request, settings).run_id
    except InputValidationError as exc:
        return StartResult(status=StartStatus.REJECTED, run_id=None, reason=exc.reason)
    except (ClientError, BotoCoreError) as exc:
        reason = permanent_aws_error(exc)
        if reason is None:  # throttling, 5xx, a broken connection: Lambda's retries (then the dead-letter queue)
            raise
        return StartResult(status=StartStatus.REJECTED, run_id=None, reason=f"the object cannot be read: {reason}")
    attempt, why, latest = _next_attempt(executions, run_id, storage, settings)
    if attempt is None:
        # the attempt that is running or done, so a caller that follows the run follows that execution
        return StartResult(status=StartStatus.DUPLICATE, run_id=run_id, reason=why, attempt=latest)
    try:
        # Step Functions itself refuses a second execution of this name
        arn = executions.start(
            execution_name_for(run_id, attempt), request.model_copy(update={"attempt": attempt}).as_event()
        )
    except ExecutionExists:
        reason = "an execution for this attempt exists already"
        return StartResult(status=StartStatus.DUPLICATE, run_id=run_id, reason=reason, attempt=attempt)
    return StartResult(
        status=StartStatus.STARTED,
        run_id=run_id,
        attempt=attempt,
        execution_arn=arn,
        **({"reason": why} if why else {}),
    )


def _next_attempt(
    executions: Executions, run_id: str, storage: Storage, settings: WorkflowSettings
) -> tuple[int | None, str, int]:
    """The attempt to start (None: none, the run is running or done), why, and the latest attempt so far."""
    latest, status = 0, None
    while (found := executions.status(execution_name_for(run_id, latest + 1))) is not None:
        latest, status = latest + 1, found
    if latest == 0:
        return 1, "", 0
    if status in ENDED_BADLY:
        return latest + 1, f"attempt {latest} ended {status}", latest
    if status == ExecutionStatus.SUCCEEDED:
        layout = RunLayout(settings.results_bucket, run_id)
        manifest = read_manifest(storage, layout)
        if not is_done(storage, layout, manifest):
            # an execution that ended well is not a run that did: its manifest is FAILED, unreadable or gone, or
            # its results were deleted since
            status = None if manifest is None else manifest.get("status")
            said = {
                None: "no manifest",
                UNREADABLE: "an unreadable manifest",
                RunStatus.SUCCEEDED: "a SUCCEEDED manifest whose results are gone",
            }.get(status, f"a {status} manifest")
            return latest + 1, f"attempt {latest} left {said}", latest
        return None, f"attempt {latest} of this run succeeded", latest
    return None, f"attempt {latest} of this run is {str(status).lower()}", latest


def _readable(storage: Storage, request: RunRequest, from_s3: bool) -> tuple[RunRequest, ObjectInfo]:
    """The request (its key as stored) and its object's metadata; ``InputValidationError`` when unreadable.

    S3's own notifications URL-encode keys (a space arrives as "+"); whether its EventBridge events do is not
    something we can check offline, so an S3 event's key that does not exist is tried once more, decoded.
    """
    keys = [request.key]
    if from_s3 and unquote_plus(request.key) != request.key:
        keys.append(unquote_plus(request.key))
    for key in keys:
        try:
            found = storage.head(request.bucket, key, request.version_id or None)
        except StorageError as exc:
            error = exc
            continue
        return request.model_copy(update={"key": key}), found
    raise InputValidationError(f"the object to explain cannot be read: {error}")


def failure_event(result: StartResult, event: dict, bus_name: str) -> dict:
    """The "Explanation Failed" entry for a rejected request (PutEvents shape)."""
    detail = {"run_id": None, "status": RunStatus.FAILED, "reason": result.reason, "request_event_id": event.get("id")}
    return {
        "Source": EVENT_SOURCE,
        "DetailType": DetailType.FAILED,
        "Detail": json.dumps(detail),
        "EventBusName": bus_name,
    }

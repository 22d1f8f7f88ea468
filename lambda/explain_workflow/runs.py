"""The run layout: where every file of a run lives, its job names, and its manifest.

``run_id`` (see identity.py) is a pure function of everything that decides the result, so a duplicate
event finds the same run. Everything a run writes is under ``runs/<run_id>/``; ``manifest.json`` is
written last and is the only sign that a run is finished (SUCCEEDED or FAILED). A FAILED run can be run
again: each try is an attempt (1, 2, ...), with job names of its own.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from explain_workflow.contract import CLARIFY_JOB_PREFIX, RUNS_PREFIX, TRANSFORM_JOB_PREFIX, RunStatus
from explain_workflow.storage import Storage, StorageError, WriteConflict, read_bytes

JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


def _job_name(prefix: str, run_id: str, attempt: int) -> str:
    suffix = f"-{attempt}"
    name = f"{prefix}-{run_id}"[: 63 - len(suffix)].rstrip("-") + suffix
    if not JOB_NAME.match(name):
        raise ValueError(f"cannot make a job name from run id {run_id!r}")
    return name


def job_name_for(run_id: str, attempt: int = 1) -> str:
    """The Clarify processing job of one attempt: ``cx-<run_id>-<n>`` (≤ 63 characters, unique per attempt)."""
    return _job_name(CLARIFY_JOB_PREFIX, run_id, attempt)


def transform_job_name_for(run_id: str, attempt: int = 1) -> str:
    """The Batch Transform job that gets the model's own predictions: ``cp-<run_id>-<n>``."""
    return _job_name(TRANSFORM_JOB_PREFIX, run_id, attempt)


def execution_name_for(run_id: str, attempt: int = 1) -> str:
    """Step Functions execution of an attempt: the run id, then ``<run_id>-a<n>`` (names are never reused)."""
    return run_id if attempt == 1 else f"{run_id}-a{attempt}"


@dataclass(frozen=True)
class RunLayout:
    bucket: str
    run_id: str

    @property
    def prefix(self) -> str:
        return f"{RUNS_PREFIX}{self.run_id}/"

    @property
    def input_prefix(self) -> str:
        return self.prefix + "input/"

    @property
    def dataset_key(self) -> str:
        return self.input_prefix + "dataset.csv"

    def dataset_part_key(self, index: int) -> str:
        """Shard ``index`` of the frozen dataset of a builtin run (SageMaker's ShardedByS3Key hands each instance
        its share of these objects)."""
        return self.input_prefix + f"dataset.part-{index:05d}.csv"

    @property
    def config_prefix(self) -> str:
        return self.prefix + "config/"

    @property
    def config_key(self) -> str:
        return self.config_prefix + "analysis_config.json"

    @property
    def clarify_prefix(self) -> str:
        return self.prefix + "clarify/"

    @property
    def predict_input_prefix(self) -> str:
        return self.prefix + "predict/input/"

    @property
    def predict_input_key(self) -> str:
        return self.predict_input_prefix + "rows.jsonl"

    @property
    def predict_output_prefix(self) -> str:
        return self.prefix + "predict/output/"

    @property
    def predictions_key(self) -> str:
        """Batch Transform names its output after the input file, with ``.out``."""
        return self.predict_output_prefix + "rows.jsonl.out"

    @property
    def request_key(self) -> str:
        return self.prefix + "request.json"

    @property
    def results_prefix(self) -> str:
        return self.prefix + "results/"

    @property
    def manifest_key(self) -> str:
        return self.prefix + "manifest.json"

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


def shard_bounds(rows: int, shards: int) -> list[tuple[int, int]]:
    """[start, stop) of each non-empty block of ``rows`` split into ``shards`` contiguous, near-equal blocks (the
    first ``rows % shards`` blocks one row longer); fewer rows than shards leaves the last blocks empty, not listed."""
    size, longer = divmod(rows, shards)
    bounds, start = [], 0
    for index in range(shards):
        stop = start + size + (index < longer)
        if stop > start:
            bounds.append((start, stop))
        start = stop
    return bounds


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# What read_manifest answers for a manifest that is not a JSON object (torn or edited by hand): not a RunStatus, so
# nothing takes it for SUCCEEDED and the run is prepared again as a new attempt.
UNREADABLE = "UNREADABLE"
RESULT_FILES = ("records.jsonl", "classes.json", "report.html")


def read_manifest(storage: Storage, layout: RunLayout) -> dict | None:
    """The run's manifest; None when it has none; ``{"status": "UNREADABLE", ...}`` when it is not a JSON object."""
    try:
        data = read_bytes(storage, layout.bucket, layout.manifest_key)
    except StorageError:
        return None
    return _parsed(layout, data)


def _parsed(layout: RunLayout, data: bytes) -> dict:
    try:
        manifest = json.loads(data)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError both are
        return {"status": UNREADABLE, "reason": f"{layout.manifest_key} is not JSON: {exc}"}
    if not isinstance(manifest, dict):
        return {"status": UNREADABLE, "reason": f"{layout.manifest_key} is not a JSON object"}
    return manifest


def finished(storage: Storage, layout: RunLayout) -> dict | None:
    """The manifest of a run that is done: SUCCEEDED with every result file it names still there; else None.

    Anything less (no manifest, FAILED, unreadable, or results since deleted) is a run to compute again, so an
    answer "already done" never points at files that do not exist.
    """
    manifest = read_manifest(storage, layout)
    return manifest if is_done(storage, layout, manifest) else None


def is_done(storage: Storage, layout: RunLayout, manifest: dict | None) -> bool:
    """``finished`` for a manifest already read (its callers also look at a manifest that is not done)."""
    if manifest is None or manifest.get("status") != RunStatus.SUCCEEDED:
        return False
    present = set(storage.list(layout.bucket, layout.results_prefix))
    return all(layout.results_prefix + name in present for name in RESULT_FILES)


class StaleAttemptError(RuntimeError):
    """A step of an attempt that a newer attempt of the same run has overtaken: it writes no manifest."""


MANIFEST_WRITE_TRIES = 5  # conditional writes of one manifest that another writer may beat, before giving up


def write_manifest(storage: Storage, layout: RunLayout, status: RunStatus, **fields: Any) -> dict:
    """Write the run's manifest; with ``attempt``, never over the manifest of a newer attempt (``StaleAttemptError``:
    a late step of an earlier attempt, a retried invocation, must not replace what the latest attempt said).

    With an attempt the write is conditional on the manifest just read (its ETag; none when there was none), so a
    writer that comes between the read and the write makes it fail instead of being overwritten; the manifest is
    then read and judged again, at most ``MANIFEST_WRITE_TRIES`` times.
    """
    manifest = {"run_id": layout.run_id, "status": status, "written_at": utc_now(), **fields}
    body = json.dumps(manifest, indent=2, sort_keys=True).encode()
    attempt = fields.get("attempt")
    if type(attempt) is not int:
        storage.put(layout.bucket, layout.manifest_key, body, "application/json")
        return manifest
    for _ in range(MANIFEST_WRITE_TRIES):
        try:
            data, etag = storage.read_tagged(layout.bucket, layout.manifest_key)
        except StorageError:
            existing, etag = None, None
        else:
            existing = _parsed(layout, data)
        theirs = existing.get("attempt") if existing else None
        if type(theirs) is int and theirs > attempt:
            raise StaleAttemptError(
                f"{layout.manifest_key} is attempt {theirs}'s; attempt {attempt} does not replace it "
                f"(its {status} manifest is not written)"
            )
        try:
            storage.put_if(layout.bucket, layout.manifest_key, body, "application/json", etag)
        except WriteConflict:
            continue  # another writer came between: read what it wrote and decide again
        return manifest
    raise WriteConflict(
        f"{layout.manifest_key} changed under attempt {attempt}'s {status} manifest {MANIFEST_WRITE_TRIES} times "
        "in a row: not written"
    )


class Stopwatch:
    """Named timings in seconds, for the manifest."""

    def __init__(self):
        self.timings: dict[str, float] = {}
        self._start = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round(now - self._start, 3)
        self._start = now

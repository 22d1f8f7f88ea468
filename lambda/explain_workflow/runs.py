"""Run identity and the ▶ run layout: where every file of a run lives, and its manifest.

``run_id`` is a pure function of the request, so a duplicate event finds the same run. Everything
a run writes is under ``runs/<run_id>/``; ``manifest.json`` is written last and is the only sign
that a run is finished (SUCCEEDED or FAILED).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from explain_workflow.storage import Storage, StorageError, read_bytes

SUCCEEDED, FAILED = "SUCCEEDED", "FAILED"
_SLUG_CHARS = re.compile(r"[^a-z0-9]+")
JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def run_id_for(bucket: str, key: str, version: str = "", overrides: dict | None = None) -> str:
    """``<slug of the file name>-<16 hex of a hash of the whole request>``, at most 57 characters.

    Valid as a Step Functions execution name and inside a processing-job name.
    """
    identity = canonical_json({"bucket": bucket, "key": key, "version": version, "overrides": overrides or {}})
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    name = key.rsplit("/", 1)[-1].rsplit(".", 1)[0].lower()
    slug = _SLUG_CHARS.sub("-", name).strip("-")[:40].strip("-")
    return f"{slug}-{digest}" if slug else digest


def job_name_for(run_id: str) -> str:
    name = f"cx-{run_id}"[:63]
    if not JOB_NAME.match(name):
        raise ValueError(f"cannot make a processing-job name from run id {run_id!r}")
    return name


@dataclass(frozen=True)
class RunLayout:
    bucket: str
    run_id: str

    @property
    def prefix(self) -> str:
        return f"runs/{self.run_id}/"

    @property
    def input_prefix(self) -> str:
        return self.prefix + "input/"

    @property
    def dataset_key(self) -> str:
        return self.input_prefix + "dataset.csv"

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
    def results_prefix(self) -> str:
        return self.prefix + "results/"

    @property
    def manifest_key(self) -> str:
        return self.prefix + "manifest.json"

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_manifest(storage: Storage, layout: RunLayout) -> dict | None:
    try:
        return json.loads(read_bytes(storage, layout.bucket, layout.manifest_key))
    except StorageError:
        return None


def write_manifest(storage: Storage, layout: RunLayout, status: str, **fields: Any) -> dict:
    manifest = {"run_id": layout.run_id, "status": status, "written_at": utc_now(), **fields}
    body = json.dumps(manifest, indent=2, sort_keys=True).encode()
    storage.put(layout.bucket, layout.manifest_key, body, "application/json")
    return manifest


class Stopwatch:
    """Named timings in seconds, for the manifest."""

    def __init__(self):
        self.timings: dict[str, float] = {}
        self._start = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round(now - self._start, 3)
        self._start = now

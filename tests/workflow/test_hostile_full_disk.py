"""A disk that fills while postprocess writes the results: a real full file system (a small tmpfs, mounted in a user
and mount namespace of its own by ``unshare``), the real postprocess on the local storage over it, in a child
process. The run must end with a FAILED manifest that names what could not be written and why, and no half set of
results beside it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from explain_workflow.contract import RunRequest
from explain_workflow.postprocess import postprocess_run
from explain_workflow.prepare import prepare_run
from explain_workflow.runs import RunLayout
from explain_workflow.storage import FileStorage
from tests.support.clarify_output import known_run, write_clarify_output
from tests.support.data import LABELS, csv_bytes

ROOT = Path(__file__).resolve().parents[2]
PAGE = 4096

CHILD = """
import json, os, sys
from pathlib import Path
from explain_workflow.contract import WorkflowSettings
from explain_workflow.postprocess import postprocess_run
from explain_workflow.runs import RunLayout, read_manifest
from explain_workflow.storage import FileStorage
root, run_id = Path(sys.argv[1]), sys.argv[2]
settings = WorkflowSettings.model_validate_json(os.environ["SETTINGS"])
storage = FileStorage(root)
try:
    postprocess_run(storage, run_id, settings)
    error = None
except BaseException as exc:
    error = f"{type(exc).__name__}: {exc}"
layout = RunLayout(settings.results_bucket, run_id)
files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
print(json.dumps({"error": error, "manifest": read_manifest(storage, layout), "files": files}))
"""


def _namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-Urm", "true"], capture_output=True, timeout=30)
    return probe.returncode == 0


def _pages(root: Path) -> int:
    return sum(-(-p.stat().st_size // PAGE) * PAGE for p in root.rglob("*") if p.is_file())


@pytest.fixture
def prepared_run(tmp_path, settings):
    """A run prepared and explained (Clarify's output and the predictions in place), ready for postprocess."""
    texts = [f"text {i} about a river, a lake and the old mill near the village" for i in range(300)]
    storage = FileStorage(tmp_path / "src")
    storage.put("input", "incoming/many.csv", csv_bytes(texts), "text/csv")
    result = prepare_run(storage, RunRequest(bucket="input", key="incoming/many.csv"), settings)
    layout = RunLayout(settings.results_bucket, result.run_id)
    write_clarify_output(storage, layout, known_run(texts, LABELS, seed=5))
    return tmp_path / "src", layout


@pytest.mark.skipif(not _namespaces_work(), reason="unshare cannot make a user and mount namespace here")
def test_a_disk_full_while_writing_records_leaves_a_failed_manifest_naming_it(tmp_path, settings, prepared_run):
    """Failed before the fix: the OSError escaped postprocess and the run had no manifest at all."""
    source, layout = prepared_run
    dry = tmp_path / "dry"
    shutil.copytree(source, dry)
    postprocess_run(FileStorage(dry), layout.run_id, settings)  # how much the results take on a disk with room
    records = (dry / layout.bucket / layout.results_prefix / "records.jsonl").stat().st_size
    assert records > 8 * PAGE
    # room for the run as it is, and for half of records.jsonl
    size = _pages(source) + (records // 2 // PAGE) * PAGE
    mount = tmp_path / "full"
    mount.mkdir()
    script = (
        f'mount -t tmpfs -o size={size} none "{mount}" && cp -a "{source}/." "{mount}/" && '
        f'exec "{sys.executable}" -c "$CHILD" "{mount}" {layout.run_id}'
    )
    env = {
        **os.environ,
        "CHILD": CHILD,
        "SETTINGS": settings.model_dump_json(),
        "PYTHONPATH": f"{ROOT / 'lambda'}:{ROOT}",
    }
    done = subprocess.run(["unshare", "-Urm", "sh", "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert "No space left on device" in (seen["error"] or ""), seen
    manifest = seen["manifest"]
    assert manifest is not None, seen  # the manifest says what happened
    assert (manifest["status"], manifest["stage"]) == ("FAILED", "postprocess"), manifest
    assert "results/records.jsonl could not be written: No space left on device" in manifest["reason"], manifest
    assert not [f for f in seen["files"] if "/results/" in f or ".partial-" in f], seen["files"]  # no half results

"""The builtin engine's job on this machine: a run prepared on the file storage, its frozen dataset cut into the
shards SageMaker would hand each instance (ShardedByS3Key), one /opt/ml/processing layout per instance, and the parts
the instances wrote uploaded back where the job's outputs go (clarify/ and predict/output/)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from explain_workflow.contract import RunRequest, WorkflowSettings
from explain_workflow.dataset import read_frozen
from explain_workflow.prepare import prepare_run
from explain_workflow.runs import RunLayout
from explain_workflow.storage import FileStorage

INPUT_BUCKET = "input"


@dataclass
class PreparedRun:
    storage: FileStorage
    layout: RunLayout
    settings: WorkflowSettings
    rows: list[tuple[int, str]]

    def path(self, key: str) -> Path:
        return self.storage.root / self.layout.bucket / key


def prepare(root: Path, data: Path, settings: WorkflowSettings, overrides: dict | None = None) -> PreparedRun:
    """Prepare a run of ``data`` exactly as the local mode does (same request, same run id)."""
    storage = FileStorage(root)
    key = f"incoming/{data.name}"
    storage.put(INPUT_BUCKET, key, data.read_bytes(), "text/csv")
    etag = storage.head(INPUT_BUCKET, key).etag
    request = RunRequest.from_event({"bucket": INPUT_BUCKET, "key": key, "etag": etag, "overrides": overrides or {}})
    prepared = prepare_run(storage, request, settings)
    layout = RunLayout(settings.results_bucket, prepared.run_id)
    with storage.open(layout.bucket, layout.dataset_key) as frozen:
        rows = list(read_frozen(frozen))
    return PreparedRun(storage, layout, settings, rows)


def blocks(rows: int, shards: int) -> list[tuple[int, int]]:
    """[start, stop) of the contiguous, near-equal blocks the contract names (first ``rows % shards`` one longer);
    an empty block is not listed (prepare does not write it)."""
    size, longer = divmod(rows, shards)
    bounds, start = [], 0
    for index in range(shards):
        stop = start + size + (index < longer)
        if stop > start:
            bounds.append((start, stop))
        start = stop
    return bounds


def frozen_bytes(rows: list[tuple[int, str]]) -> bytes:
    import csv
    import io

    buffer = io.StringIO()
    csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


def layouts(run: PreparedRun, tarball: Path, work: Path, shards: int, writable: bool = False) -> list[Path]:
    """One /opt/ml/processing directory per instance (and its resourceconfig.json beside it as <dir>.config/), holding
    its shard ``dataset.part-{i:05d}.csv``, the analysis config and the model artifact. ``writable``: the output
    directories open to any user (the image's job runs as its non-root user)."""
    hosts = [f"algo-{i + 1}" for i in range(shards)]
    roots = []
    for index, (start, stop) in enumerate(blocks(len(run.rows), shards)):
        root = work / f"instance-{index}"
        data = root / "input" / "data"
        data.mkdir(parents=True)
        (data / f"dataset.part-{index:05d}.csv").write_bytes(frozen_bytes(run.rows[start:stop]))
        (root / "input" / "config").mkdir(parents=True)
        shutil.copy(run.path(run.layout.config_key), root / "input" / "config" / "analysis_config.json")
        (root / "input" / "model").mkdir(parents=True)
        shutil.copy(tarball, root / "input" / "model" / "model.tar.gz")
        config = work / f"instance-{index}.config"
        config.mkdir()
        (config / "resourceconfig.json").write_text(json.dumps({"current_host": hosts[index], "hosts": hosts}))
        for name in ("output", "predictions"):
            (root / name).mkdir()
            if writable:
                (root / name).chmod(0o777)
        if writable:
            for path in [root, *root.rglob("*"), config, *config.rglob("*")]:
                path.chmod(path.stat().st_mode | 0o755 | (0o644 if path.is_file() else 0))
            for directory in root.parents:  # pytest's directories are private to their owner
                if directory == Path("/"):
                    break
                directory.chmod(directory.stat().st_mode | 0o755)
        roots.append(root)
    return roots


def upload(run: PreparedRun, roots: list[Path]) -> list[str]:
    """What SageMaker uploads at the end of the job: output/ to clarify/, predictions/ to predict/output/."""
    keys = []
    for root in roots:
        for local, prefix in ((root / "output", run.layout.clarify_prefix),
                              (root / "predictions", run.layout.predict_output_prefix)):  # fmt: skip
            for file in sorted(p for p in local.rglob("*") if p.is_file()):
                key = prefix + file.relative_to(local).as_posix()
                run.storage.put(run.layout.bucket, key, file.read_bytes(), "application/octet-stream")
                keys.append(key)
    return keys


def outputs(roots: list[Path]) -> dict[str, bytes]:
    """Every file the instances wrote, by instance-relative path."""
    found = {}
    for i, root in enumerate(roots):
        for name in ("output", "predictions"):
            for file in sorted(p for p in (root / name).rglob("*") if p.is_file()):
                found[f"{i}/{file.relative_to(root).as_posix()}"] = file.read_bytes()
    return found

"""The builtin engine's job (``python -m textexplain.job``) on /opt/ml/processing-like directories, one per instance,
over a real fastText model trained in the session: its parts, uploaded as SageMaker uploads them, make a SUCCEEDED run
whose records equal the local mode's for the same seed byte for byte, with fastText's own predictions; the files do
not depend on the number of worker processes, and an error is one line and a non-zero exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from explain_workflow.postprocess import postprocess_run
from explain_workflow.runs import read_manifest
from tests.support import explain_job
from tests.support.data import write_texts
from textexplain import local, synthetic

OPTIONS = {"num_samples": 48}


@pytest.fixture(scope="module")
def texts() -> list[str]:
    # generated texts of the model's classes, plus the awkward ones (markup, a line break, non-ASCII)
    corpus = synthetic.generate(20, seed=11)
    return [ex.text for ex in corpus] + ["Zürich:  a glacier\nand a valley", "A <b>film</b> & a song"]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, trained_model, texts):
    """The local mode's run of the same file: the truth the builtin job must equal."""
    work = tmp_path_factory.mktemp("local-truth")
    data = write_texts(work / "texts.csv", texts)
    config = local.LocalRun(data, work / "out", trained_model.labels, dict(OPTIONS))
    with local.model_endpoint(trained_model.tarball, None, trained_model.labels) as (target, _):
        result = local.run(config, target)
        settings = config.settings(target)
    return data, settings, result


def run_job(root: Path, workers: int, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "EXPLAIN_JOB_WORKERS": str(workers), **(extra_env or {})}
    return subprocess.run(
        [sys.executable, "-m", "textexplain.job", "--root", str(root),
         "--resource-config", str(root.parent / f"{root.name}.config" / "resourceconfig.json"),
         "--message-file", str(root.parent / f"{root.name}.message")],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip


def builtin(tmp_path: Path, trained_model, local_run, shards: int, workers: int):
    data, settings, _ = local_run
    run = explain_job.prepare(tmp_path / "s3", data, settings, dict(OPTIONS))
    roots = explain_job.layouts(run, trained_model.tarball, tmp_path / "processing", shards)
    for root in roots:
        done = run_job(root, workers)
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout.splitlines()[-1])
        assert summary["workers"] == workers
    return run, roots


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize(("shards", "workers"), [(1, 1), (2, 2)])
def test_postprocess_of_the_parts_equals_the_local_run(tmp_path, trained_model, local_run, shards, workers):
    _, settings, truth = local_run
    run, roots = builtin(tmp_path, trained_model, local_run, shards, workers)
    assert len(roots) == shards
    uploaded = explain_job.upload(run, roots)
    assert sorted(Path(k).name for k in uploaded) == sorted(
        [f"out.part-{i:05d}.jsonl" for i in range(shards)]
        + [f"analysis.part-{i:05d}.json" for i in range(shards)]
        + [f"rows.part-{i:05d}.jsonl.out" for i in range(shards)]
    )
    answer = postprocess_run(run.storage, run.layout.run_id, settings)
    assert answer.status == "SUCCEEDED"
    assert answer.run_id == truth["run_id"]  # the same request, settings and model: the same run
    results = run.path(run.layout.results_prefix)
    local_results = Path(truth["run_dir"]) / "results"
    # records byte for byte: the same units, attributions and the model's own probabilities
    assert (results / "records.jsonl").read_bytes() == (local_results / "records.jsonl").read_bytes()
    manifest = read_manifest(run.storage, run.layout)
    assert manifest["complete"] is True
    assert manifest["counts"]["rows"] == len(run.rows)
    assert manifest["counts"]["predictions_missing"] == 0
    # analysis.json merged from parts: the same values up to float rounding of the sums (documented: 1e-12)
    ours = json.loads((results / "classes.json").read_text())
    theirs = json.loads((local_results / "classes.json").read_text())
    for label in settings.labels:
        assert ours[label]["expected_value"] == pytest.approx(theirs[label]["expected_value"], rel=1e-12, abs=1e-15)
        a, b = ours[label]["clarify_global_top_shap_text"], theirs[label]["clarify_global_top_shap_text"]
        assert a.keys() == b.keys()
        assert list(a["text"].values()) == pytest.approx(list(b["text"].values()), rel=1e-12, abs=1e-15)
        assert ours[label]["predicted_as_this_class"] == theirs[label]["predicted_as_this_class"]


def test_predictions_are_fasttexts_own(tmp_path, trained_model, local_run):
    from fasttext_server.normalize import normalize

    run, roots = builtin(tmp_path, trained_model, local_run, shards=2, workers=1)
    texts = dict(run.rows)
    seen = []
    for root in roots:
        (part,) = (root / "predictions").iterdir()
        for line in lines(part):
            record = json.loads(line)
            pairs = trained_model.model.f.predict(normalize(texts[record["row_id"]]) + "\n", -1, 0.0, "strict")
            own = {label.removeprefix("__label__"): p for p, label in pairs}
            # exactly fastText's float32 values (widened), in the run's label order, its top class as the label
            assert record["SageMakerOutput"]["prob"] == [own.get(k, 0.0) for k in trained_model.labels]
            assert record["SageMakerOutput"]["label"] == max(own, key=own.get)
            seen.append(record["row_id"])
    assert seen == [row_id for row_id, _ in run.rows]  # every row once, in row order across the parts


def test_the_files_do_not_depend_on_the_number_of_workers(tmp_path, trained_model, local_run):
    one = explain_job.outputs(builtin(tmp_path / "one", trained_model, local_run, shards=2, workers=1)[1])
    two = explain_job.outputs(builtin(tmp_path / "two", trained_model, local_run, shards=2, workers=2)[1])
    assert one.keys() == two.keys()
    assert one == two
    (first,) = [v for k, v in one.items() if k.endswith("out.part-00000.jsonl")]
    row = json.loads(first.splitlines()[0])
    assert row["join_source_value"] == 1
    assert row["explanations"][0]["data_type"] == "free_text"


def test_an_instance_given_no_shard_writes_an_empty_part(tmp_path, trained_model, local_run):
    data, settings, _ = local_run
    run = explain_job.prepare(tmp_path / "s3", data, settings, dict(OPTIONS))
    (root,) = explain_job.layouts(run, trained_model.tarball, tmp_path / "processing", 1)
    for csv_file in (root / "input" / "data").iterdir():
        csv_file.unlink()
    done = run_job(root, 2)
    assert done.returncode == 0, done.stderr
    written = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and "input" not in p.parts)
    assert written == ["output/analysis.part-00000.json"]
    part = json.loads((root / "output" / "analysis.part-00000.json").read_text())
    assert part["records"] == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda root: (root / "input" / "model" / "model.tar.gz").unlink(), "expected exactly one model.tar.gz"),
        (lambda root: _edit_config(root, lambda c: c["predictor"].update(label_headers=["A", "B"])), "LABELS"),
        (lambda root: _edit_config(root, lambda c: c["methods"]["shap"].update(use_logit=True)), "use_logit"),
        (lambda root: (root / "input" / "data" / "stray.txt").write_text("x"), "not a .csv file"),
    ],
)
def test_an_error_is_one_line_and_a_failed_exit(tmp_path, trained_model, local_run, change, message):
    data, settings, _ = local_run
    run = explain_job.prepare(tmp_path / "s3", data, settings, dict(OPTIONS))
    (root,) = explain_job.layouts(run, trained_model.tarball, tmp_path / "processing", 1)
    change(root)
    done = run_job(root, 1)
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith("explain-job failed: ")
    assert message in line, line
    # SageMaker's ExitMessage: the same line, UTF-8, at most 1 KB
    assert (root.parent / f"{root.name}.message").read_text(encoding="utf-8").strip() == line[:1024]
    assert not list((root / "output").rglob("*.jsonl"))


def _edit_config(root: Path, edit) -> None:
    path = root / "input" / "config" / "analysis_config.json"
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))

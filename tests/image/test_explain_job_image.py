"""The real image runs the builtin engine's job as SageMaker Processing runs it (entrypoint explain-job, the
/opt/ml/processing layout mounted, no network) over a generated labelled dataset, on two instances; postprocess turns
their parts into a SUCCEEDED run whose records equal the local mode's for the same seed and whose predictions are
fastText's own."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from explain_workflow.postprocess import postprocess_run
from tests.support import explain_job
from tests.support.image import podman
from textexplain import local, synthetic

pytestmark = pytest.mark.image
OPTIONS = {"num_samples": 64, "seed": 5}
# The image has numpy 1.26.4 and its own fastText build; the dev venv numpy 2.4 (another lstsq build). Attributions
# may differ by float rounding of the solver: the stated tolerance, the rest must be equal.
ATTRIBUTION_TOLERANCE = 1e-9


def run_image(image: str, root: Path, cpus: str | None = None) -> tuple[int, str, str, Path]:
    message = root.parent / f"{root.name}.ml-output"
    message.mkdir(exist_ok=True)
    message.chmod(0o777)
    name = f"textexplain-job-{uuid.uuid4().hex[:8]}"
    args = ["run", "--name", name, "--network", "none", "--entrypoint", "explain-job",
            "-v", f"{root}:/opt/ml/processing", "-v", f"{root.parent / (root.name + '.config')}:/opt/ml/config:ro",
            "-v", f"{message}:/opt/ml/output", *(["--cpuset-cpus", cpus] if cpus else []), image]  # fmt: skip
    try:
        done = podman(*args, check=False)
    finally:
        podman("rm", "-f", name, check=False)
    return done.returncode, done.stdout, done.stderr, message / "message"


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    examples = synthetic.generate(40, seed=21, paragraphs=(1, 2))
    return synthetic.write_csv(tmp_path_factory.mktemp("labelled") / "labelled.csv", examples)


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_the_image_job_over_two_instances_equals_the_local_run(tmp_path, built_image, trained_model, labelled):
    config = local.LocalRun(labelled, tmp_path / "local", trained_model.labels, dict(OPTIONS))
    with local.model_endpoint(trained_model.tarball, None, trained_model.labels) as (target, _):
        truth = local.run(config, target)
        settings = config.settings(target)
    run = explain_job.prepare(tmp_path / "s3", labelled, settings, dict(OPTIONS))
    roots = explain_job.layouts(run, trained_model.tarball, tmp_path / "processing", 2, writable=True)
    summaries = []
    for root, cpus in zip(roots, (None, "0"), strict=True):  # the second instance has one vCPU
        code, out, err, _ = run_image(built_image, root, cpus)
        assert code == 0, err
        summaries.append(json.loads(out.splitlines()[-1]))
    assert [s["workers"] for s in summaries] == [2, 1]  # one worker per vCPU the container may use
    assert sum(s["records"] for s in summaries) == len(run.rows) == 40
    explain_job.upload(run, roots)
    answer = postprocess_run(run.storage, run.layout.run_id, settings)
    assert answer.status == "SUCCEEDED"
    assert answer.run_id == truth["run_id"]
    ours = records(run.path(run.layout.results_prefix + "records.jsonl"))
    theirs = records(Path(truth["run_dir"]) / "results" / "records.jsonl")
    assert len(ours) == len(theirs) == 40
    for a, b in zip(ours, theirs, strict=True):
        ua, ub = a.pop("units"), b.pop("units")
        assert a == b  # row, text, predicted label, probabilities: equal
        assert len(ua) == len(ub)
        for x, y in zip(ua, ub, strict=True):
            px, py = x.pop("attributions"), y.pop("attributions")
            assert x == y  # text, start_idx, aligned
            assert len(px) == len(py) == len(trained_model.labels)  # one value per label, in label_headers order
            assert px == pytest.approx(py, abs=ATTRIBUTION_TOLERANCE)


def test_the_image_jobs_predictions_are_fasttexts_own(tmp_path, built_image, trained_model, labelled):
    from explain_workflow.contract import ClarifyOptions, WorkflowSettings
    from fasttext_server.normalize import normalize

    settings = WorkflowSettings(
        results_bucket="results", labels=trained_model.labels, model_name="m", defaults=ClarifyOptions(seed=1)
    )
    run = explain_job.prepare(tmp_path / "s3", labelled, settings, {"num_samples": 16})
    (root,) = explain_job.layouts(run, trained_model.tarball, tmp_path / "processing", 1, writable=True)
    code, _, err, _ = run_image(built_image, root)
    assert code == 0, err
    texts = dict(run.rows)
    lines = (root / "predictions" / "rows.part-00000.jsonl.out").read_text().splitlines()
    assert [json.loads(line)["row_id"] for line in lines] == list(texts)
    for line in lines:
        record = json.loads(line)
        pairs = trained_model.model.f.predict(normalize(texts[record["row_id"]]) + "\n", -1, 0.0, "strict")
        own = {label.removeprefix("__label__"): p for p, label in pairs}
        assert record["SageMakerOutput"]["label"] == max(own, key=own.get)
        # the image's own fastText build: float32 values, compared at float32's precision
        assert record["SageMakerOutput"]["prob"] == pytest.approx([own[k] for k in trained_model.labels], abs=1e-6)


def test_the_image_job_fails_with_one_line_and_an_exit_message(tmp_path, built_image, trained_model, labelled):
    from explain_workflow.contract import WorkflowSettings

    settings = WorkflowSettings(results_bucket="results", labels=trained_model.labels, model_name="m")
    run = explain_job.prepare(tmp_path / "s3", labelled, settings, {"num_samples": 16})
    (root,) = explain_job.layouts(run, trained_model.tarball, tmp_path / "processing", 1, writable=True)
    (root / "input" / "model" / "model.tar.gz").write_bytes(b"not a tarball")
    code, _, err, message = run_image(built_image, root)
    assert code == 1
    (line,) = err.splitlines()
    assert line.startswith("explain-job failed: ")
    assert "not a readable model.tar.gz" in line
    assert message.read_text(encoding="utf-8").strip() == line
    assert not (root / "output" / "explanations_shap").exists() or not list((root / "output").rglob("*.jsonl"))

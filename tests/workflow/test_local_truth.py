"""The local mode publishes the model's own predictions, names runs by everything that decides them, and runs a
failed run again. A real fastText model trained in the session, the real CLI as a subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from explain_workflow.runs import read_manifest, write_manifest
from explain_workflow.storage import FileStorage
from tests.support.cli import cli
from tests.support.data import write_texts
from textexplain import local
from textexplain.serving import ServeProcess

TEXTS = [
    "The river Aare flows through a deep valley. Its water comes from a glacier.",
    "The film was directed by a young director, starring a famous singer.",
    "A small shrub with flowering leaves grows in the meadow.",
]


def records(result) -> list[dict]:
    path = Path(result["run_dir"]) / "results" / "records.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def served(trained_model):
    with ServeProcess(trained_model.model_dir, trained_model.labels, workers=2) as server:
        yield server.url, trained_model.labels


def test_records_carry_the_models_own_probabilities(tmp_path, served, trained_model):
    """Old main published expected value + Σφ (values such as 1.019 or -0.012, 1 in 30 with the wrong class)."""
    url, labels = served
    config = local.LocalRun(write_texts(tmp_path / "t.csv", TEXTS), tmp_path / "out", labels, {"num_samples": 40})
    result = local.run(config, url)
    from fasttext_server.model import Classifier
    from fasttext_server.normalize import normalize

    expected = Classifier(trained_model.model, labels).predict(TEXTS)
    for record, probs in zip(records(result), expected, strict=True):
        assert list(record["probabilities"]) == labels
        # fastText's own answer, asked directly: softmax + 1e-5, which postprocess caps at 1 (so 1e-5 apart at most)
        pairs = trained_model.model.f.predict(normalize(record["text"]) + "\n", -1, 0.0, "strict")
        own = {label.removeprefix("__label__"): p for p, label in pairs}
        assert list(record["probabilities"].values()) == pytest.approx([own[k] for k in labels], abs=1e-5)
        assert list(record["probabilities"].values()) == pytest.approx(probs.tolist(), abs=1e-5)
        assert record["predicted_label"] == labels[int(probs.argmax())] == max(own, key=own.get)
        assert all(0.0 <= p <= 1.0 for p in record["probabilities"].values())
        # each of the K values carries fastText's 1e-5, so they sum to 1 + K * 1e-5 (less what the cap took)
        assert sum(record["probabilities"].values()) == pytest.approx(1.0, abs=len(labels) * 1e-5 + 1e-6)
    manifest = json.loads((Path(result["run_dir"]) / "manifest.json").read_text())
    assert manifest["complete"] is True
    assert manifest["quality"]["additivity_gap"]["records"] == 3
    assert manifest["identity"]["model"]["endpoint_url"] == url
    assert manifest["identity"]["options"]["seed"] == 0


def test_model_seed_and_row_limit_are_part_of_the_run(tmp_path, served):
    """Old main answered "already explained" with the old results after a new model, seed or --max-rows."""
    url, labels = served
    data = write_texts(tmp_path / "t.csv", TEXTS)

    def run(**kw):
        config = local.LocalRun(data, tmp_path / "out", labels, {"num_samples": 20}, **kw)
        return local.run(config, url)

    first = run()
    assert run()["status"] == "ALREADY_DONE"
    others = [
        run(seed=1),
        run(limits=local.Limits(max_rows=100)),
        run(model={"artifact_sha256": "another model", "labels": labels}),
    ]
    assert all(o["status"] == "SUCCEEDED" for o in others)
    assert len({first["run_id"], *(o["run_id"] for o in others)}) == 4
    request = json.loads((Path(others[0]["run_dir"]) / "request.json").read_text())
    assert request["identity"]["options"]["seed"] == 1


def test_a_failed_run_is_computed_again_and_never_reported_as_explained(tmp_path, trained_model):
    """Old main: a second try of a failed run exited 0, "already explained", with report paths that do not exist."""
    data = write_texts(tmp_path / "t.csv", TEXTS)
    args = ("explain", "--model", str(trained_model.tarball), "--data", str(data), "--num-samples", "20", "--out", "o")
    first = cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    run_dir = tmp_path / Path(first.stdout.split("report:  ")[1].split()[0]).parents[1]
    storage, layout = FileStorage(tmp_path / "o"), local.RunLayout(local.RESULTS_BUCKET, run_dir.name)
    # the run as a failed attempt leaves it: a FAILED manifest, no results
    for path in (run_dir / "results").iterdir():
        path.unlink()
    write_manifest(storage, layout, "FAILED", stage="postprocess", attempt=1, reason="out.jsonl is truncated")
    again = cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "already explained" not in again.stdout
    assert "explained 3 records" in again.stdout
    manifest = read_manifest(storage, layout)
    assert (manifest["status"], manifest["attempt"]) == ("SUCCEEDED", 2)
    for line in again.stdout.splitlines():
        if line.startswith(("report:", "records:")):
            assert (tmp_path / line.split(":", 1)[1].strip()).is_file()
    third = cli(*args, cwd=tmp_path)
    assert "already explained" in third.stdout


@pytest.mark.parametrize(
    "damage",
    [
        lambda run_dir: (run_dir / "results" / "report.html").unlink(),
        lambda run_dir: (run_dir / "manifest.json").write_text('{"status": "SUCC'),
        lambda run_dir: (run_dir / "manifest.json").write_text("[1]"),
    ],
    ids=["results-deleted", "torn-manifest", "not-an-object"],
)
def test_a_run_with_results_gone_or_a_torn_manifest_is_computed_again(tmp_path, served, damage):
    """Old main: "already explained" pointing at a deleted report; a torn manifest failed the CLI ("Invalid control
    character") and a manifest `[1]` crashed it (AttributeError)."""
    url, labels = served
    config = local.LocalRun(write_texts(tmp_path / "t.csv", TEXTS), tmp_path / "out", labels, {"num_samples": 20})
    first = local.run(config, url)
    damage(Path(first["run_dir"]))
    again = local.run(config, url)
    assert (again["status"], again["attempt"], again["run_id"]) == ("SUCCEEDED", 2, first["run_id"])
    for name in ("records.jsonl", "classes.json", "report.html"):
        assert (Path(again["run_dir"]) / "results" / name).is_file()
    assert records(again) == records(first)
    assert local.run(config, url)["status"] == "ALREADY_DONE"

"""`textexplain explain --label-column`: a real model, a real run, and the evaluation the report shows recomputed from
the run's own files."""

from __future__ import annotations

import json
from pathlib import Path

from explain_workflow import report
from explain_workflow.dataset import read_frozen
from tests.support.cli import cli
from tests.support.data import write_csv
from tests.support.report_checks import lines, recomputed
from textexplain import synthetic


def test_a_label_column_gives_the_evaluation_recomputed_from_the_runs_files(tmp_path, trained_model):
    texts = synthetic.generate(12, seed=11)
    # two rows labelled with another class than their words say, so the model is wrong on at least those
    labels = [ex.label for ex in texts]
    labels[0], labels[1] = labels[1], labels[0]
    labels[2] = ""  # an unlabelled row counts nowhere
    rows = ([f"d{i}", ex.text, label] for i, (ex, label) in enumerate(zip(texts, labels, strict=True)))
    data = write_csv(tmp_path / "t.csv", ["id", "text", "truth"], rows)
    done = cli("explain", "--model", str(trained_model.tarball), "--data", str(data), "--label-column", "truth",
               "--num-samples", "60", "--out", str(tmp_path / "out"), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    run_dir = Path(next(line.split(None, 1)[1] for line in done.stdout.splitlines() if line.startswith("report:")))
    results = run_dir.parent
    run = results.parent
    with (run / "input" / "dataset.csv").open("rb") as frozen:  # what the explainer reads: row_id and text only
        assert list(read_frozen(frozen)) == [(i, ex.text) for i, ex in enumerate(texts, start=1)]
    records = lines(results / "records.jsonl")
    truth = {line["row_id"]: line["label"] for line in lines(run / "labels" / "labels.jsonl")}
    assert truth == {i: label or None for i, label in enumerate(labels, start=1)}
    again = recomputed(records, truth, trained_model.labels)
    evaluation = json.loads((results / "evaluation.json").read_text())
    assert evaluation["confusion"] == again["matrix"]
    assert (evaluation["correct"], evaluation["evaluated"], evaluation["unlabelled"]) == (
        again["correct"], again["evaluated"], 1)  # fmt: skip
    assert [w["row_id"] for w in evaluation["misclassified"]] == [w[0] for w in again["wrong"]]
    assert {1, 2} <= {w[0] for w in again["wrong"]}
    wrong = again["evaluated"] - again["correct"]
    assert f"accuracy against truth: {again['correct']} of {again['evaluated']} " in done.stdout
    assert f"the report shows the {wrong} misclassified" in done.stdout
    page = (results / "report.html").read_text(encoding="utf-8")
    assert f'<h2 id="misclassified">Misclassified records ({wrong})</h2>' in page
    assert [r.get("y") for r in report.data_of(page)["records"]] == [
        evaluation["true_labels"].index(label) if label else -1 for label in labels
    ]


def test_a_label_column_the_file_lacks_is_named(tmp_path, trained_model):
    data = write_csv(tmp_path / "t.csv", ["text", "label"], [["a river", "NaturalPlace"]])
    done = cli("explain", "--model", str(trained_model.tarball), "--data", str(data), "--label-column", "truth",
               "--out", str(tmp_path / "out"), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2
    assert "no column named 'truth'" in done.stderr
    assert "--label-column" in done.stderr

"""The local mode end to end: the real serve, the real prepare/postprocess, the CLI as a subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from explain_workflow.clarify_format import OUT_FILE
from explain_workflow.postprocess import postprocess_run
from explain_workflow.storage import FileStorage
from tests.support.clarify_output import read_out_jsonl
from tests.support.cli import cli
from tests.support.data import write_csv, write_texts
from textexplain import local
from textexplain.explainer.units import split_units
from textexplain.serving import ServeProcess

RIVER = "The river Aare flows through a deep valley. Its water comes from a glacier."


@pytest.fixture(scope="module")
def served(trained_model):
    with ServeProcess(trained_model.model_dir, trained_model.labels, workers=2) as server:
        yield server.url, trained_model.labels


def run_local(tmp_path, served, texts, **overrides):
    url, labels = served
    config = local.LocalRun(write_texts(tmp_path / "texts.csv", texts), tmp_path / "out", labels, overrides)
    return local.run(config, url)


def records(result) -> list[dict]:
    path = Path(result["run_dir"]) / "results" / "records.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_river_text_is_explained_as_natural_place_by_its_cue_words(tmp_path, served):
    texts = [RIVER, "The film was directed by a young director, starring a famous singer."]
    result = run_local(tmp_path, served, texts, num_samples=200)
    assert result["status"] == "SUCCEEDED"
    labels = served[1]
    first = records(result)[0]
    assert first["predicted_label"] == "NaturalPlace"
    place = labels.index("NaturalPlace")
    ranked = sorted(first["units"], key=lambda u: -u["attributions"][place])
    assert {u["text"].lower() for u in ranked[:3]} & {"river", "valley", "glacier"}
    run_dir = Path(result["run_dir"])
    for name in (
        "input/dataset.csv",
        "config/analysis_config.json",
        "clarify/analysis.json",
        OUT_FILE.join(["clarify/", ""]),
        "results/records.jsonl",
        "results/classes.json",
        "results/report.html",
        "manifest.json",
    ):
        assert (run_dir / name).is_file(), name
    written = {p.name: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()}
    assert written["manifest.json"] == max(written.values())  # the manifest is last
    assert result["faithfulness"]["mean_top_k_drop"] > result["faithfulness"]["mean_random_k_drop"]


def test_additivity_holds_per_record_in_the_clarify_output(tmp_path, served, trained_model):
    result = run_local(tmp_path, served, [RIVER, "A small shrub with flowering leaves."], num_samples=64)
    run_dir = Path(result["run_dir"])
    labels = served[1]
    with (run_dir / "clarify" / OUT_FILE).open("rb") as fh:
        explanations = read_out_jsonl(fh, len(labels))
    from fasttext_server.model import Classifier

    classifier = Classifier(trained_model.model, labels)
    for explanation, text in zip(explanations, [RIVER, "A small shrub with flowering leaves."], strict=True):
        units = split_units(text)
        masked = text
        for u in reversed(units):
            masked = masked[: u.start] + "<UNK>" + masked[u.end :]
        f_all, f_none = classifier.predict([text, masked])
        phi = np.array([u.attribution for u in explanation.units])
        np.testing.assert_allclose(phi.sum(axis=0), f_all - f_none, atol=1e-5)
        assert [(u.text, u.start_idx) for u in explanation.units] == [(s.text, s.start) for s in units]


@pytest.mark.parametrize("granularity", ["sentence", "paragraph"])
def test_sentence_and_paragraph_granularity(tmp_path, served, granularity):
    text = "The river is long. It ends in a lake!\n\nA film premiered here. The cinema was full."
    result = run_local(tmp_path, served, [text], granularity=granularity, num_samples=50)
    units = [u["text"] for u in records(result)[0]["units"]]
    if granularity == "sentence":
        assert units == ["The river is long.", "It ends in a lake!", "A film premiered here.", "The cinema was full."]
    else:
        assert units == ["The river is long. It ends in a lake!", "A film premiered here. The cinema was full."]


def test_rerun_is_a_no_op_and_output_is_valid_for_postprocess(tmp_path, served):
    first = run_local(tmp_path, served, [RIVER], num_samples=30)
    manifest = Path(first["run_dir"]) / "manifest.json"
    before = manifest.read_bytes()
    again = run_local(tmp_path, served, [RIVER], num_samples=30)
    assert again["status"] == "ALREADY_DONE"
    assert manifest.read_bytes() == before
    settings = local.LocalRun(Path("x"), tmp_path / "out", served[1]).settings()
    assert postprocess_run(FileStorage(tmp_path / "out"), first["run_id"], settings).status == "SUCCEEDED"


def test_cli_train_explain_report_and_errors(tmp_path, corpus):
    data = write_csv(tmp_path / "train.csv", ["label", "text"], ([e.label, e.text] for e in corpus[:700]))
    trained = cli("train", "--data", str(data), "--out", "m.tar.gz", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "held-out accuracy: " in trained.stdout
    accuracy = float(trained.stdout.split("held-out accuracy: ")[1].split()[0])
    assert accuracy > 0.9

    texts = write_texts(tmp_path / "texts.csv", [RIVER])
    model = ("--model", "m.tar.gz", "--out", "o")
    explained = cli("explain", *model, "--data", str(texts), "--num-samples", "40", cwd=tmp_path)
    assert explained.returncode == 0, explained.stderr
    run_dir = Path(explained.stdout.split("report:  ")[1].split()[0]).parents[1]
    report = cli("report", str(run_dir), cwd=tmp_path)
    assert report.returncode == 0, report.stderr

    bad = write_texts(tmp_path / "bad.csv", ["ok"])
    bad.write_bytes(bad.read_bytes() + b'r2,"caf\xe9"\n')
    failed = cli("explain", *model, "--data", str(bad), cwd=tmp_path)
    assert failed.returncode == 2
    assert f"--data {bad} is not valid UTF-8: byte 23" in failed.stderr
    assert "byte" in failed.stderr
    missing = cli(
        "explain", "--model", "m.tar.gz", "--data", str(texts), "--text-column", "body", "--out", "o", cwd=tmp_path
    )
    assert missing.returncode == 2
    assert "no column named 'body'" in missing.stderr
    mismatch = cli(
        "explain", "--model", "m.tar.gz", "--data", str(texts), "--labels", '["A", "B"]', "--out", "o", cwd=tmp_path
    )
    assert mismatch.returncode == 2
    assert "does not match the model's labels" in mismatch.stderr
    help_text = cli("--help", cwd=tmp_path)
    assert "demo" in help_text.stdout

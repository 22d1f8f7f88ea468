"""Interrupted local runs resume: rows already explained are kept and not recomputed, and the finished
files equal those of an uninterrupted run byte for byte. Over real `textexplain explain` processes,
killed with SIGKILL and SIGTERM while they explain."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fasttext_server.normalize import normalize
from tests.support.data import write_texts
from textexplain import local, synthetic
from textexplain.explainer.explain import ShapOptions, explain_records
from textexplain.explainer.scorer import HttpScorer, InProcessScorer
from textexplain.serving import ServeProcess

RECORDS, SAMPLES = 40, 1000
# files whose content names the moment or duration of the run; compared without those fields
TIMED = {"manifest.json": ("written_at", "timings"), "request.json": ("timings",)}


@pytest.fixture(scope="module")
def texts_csv(tmp_path_factory) -> Path:
    texts = [example.text for example in synthetic.generate(RECORDS, seed=9, sentences=(3, 4))]
    return write_texts(tmp_path_factory.mktemp("resume") / "texts.csv", texts, prefix="doc-")


def explain_command(model: Path, data: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "textexplain.cli", "explain",
        "--model", str(model), "--data", str(data), "--out", str(out), "--num-samples", str(SAMPLES),
    ]  # fmt: skip


def run_to_end(model: Path, data: Path, out: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(explain_command(model, data, out), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def journal_rows(out: Path) -> int:
    found = list(out.glob("results/runs/*/" + local.JOURNAL))
    if not found:
        return 0
    return max(found[0].read_bytes().count(b"\n") - 1, 0)  # less the header line


def kill_while_explaining(model: Path, data: Path, out: Path, sig: int, attempts: int = 3) -> Path:
    """Start a run, send ``sig`` once some rows are journaled; returns the output directory of the interrupted run.

    On a busy machine this process may get the CPU back only after the run has finished: that attempt proves
    nothing, so it is made again in a fresh directory (at most ``attempts`` times)."""
    for attempt in range(attempts):
        target = out.with_name(f"{out.name}-{attempt}")
        process = subprocess.Popen(
            explain_command(model, data, target), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 120
            while journal_rows(target) < 8 and process.poll() is None:
                assert time.monotonic() < deadline, "no rows were journaled within 120 s"
                time.sleep(0.01)
            if process.poll() is not None:
                continue  # finished before the signal could be sent
            process.send_signal(sig)
            assert process.wait(timeout=60) != 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        kept = journal_rows(target)
        if not 0 < kept < RECORDS:
            continue
        assert not list(target.glob("results/runs/*/manifest.json")), "an interrupted run must not look finished"
        return target
    raise AssertionError(f"no run could be interrupted mid-way in {attempts} attempts")


def run_files(out: Path) -> dict[str, bytes]:
    files = {}
    for path in sorted(out.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if path.name in TIMED:
            body = json.loads(data)
            for name in TIMED[path.name]:
                body.pop(name, None)
            data = json.dumps(body, sort_keys=True).encode()
        files[str(path.relative_to(out))] = data
    return files


@pytest.fixture(scope="module")
def uninterrupted(trained_model, texts_csv, tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("uninterrupted") / "o"
    run_to_end(trained_model.tarball, texts_csv, out)
    return run_files(out)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_run_resumes_to_the_same_bytes(trained_model, texts_csv, uninterrupted, tmp_path, sig):
    out = kill_while_explaining(trained_model.tarball, texts_csv, tmp_path / "o", sig)
    run_to_end(trained_model.tarball, texts_csv, out)
    resumed = run_files(out)
    assert not any(name.endswith(local.JOURNAL) for name in resumed), "the journal is removed once the run succeeds"
    assert resumed.keys() == uninterrupted.keys()
    for name, data in uninterrupted.items():
        assert resumed[name] == data, name


def test_rows_already_explained_are_not_scored_again(trained_model, texts_csv, uninterrupted, tmp_path):
    out = kill_while_explaining(trained_model.tarball, texts_csv, tmp_path / "o", signal.SIGKILL)
    journal = next(out.glob("results/runs/*/" + local.JOURNAL))
    kept = {json.loads(line)["row_id"] for line in journal.read_text().splitlines()[1:] if line.endswith("}")}
    with texts_csv.open(encoding="utf-8", newline="") as fh:
        texts = [row["text"] for row in csv.DictReader(fh)]
    scored: list[str] = []
    with local.model_endpoint(trained_model.tarball, None, None) as (model, labels):
        real_score = model.scorer.score_normalized

        def counting(batch):
            scored.extend(batch)
            return real_score(batch)

        model.scorer.score_normalized = counting  # what explaining scores: texts in the model's normal form
        config = local.LocalRun(texts_csv, out, labels, {"num_samples": SAMPLES})
        result = local.run(config, model)
    assert result["status"] == "SUCCEEDED"
    assert result["resumed_records"] >= len(kept) > 0
    seen = set(scored)
    for row_id, text in enumerate(texts, start=1):
        # every explained record scores its own full text once; a kept row's is never scored again
        assert (normalize(text) in seen) == (row_id not in kept), row_id
    assert run_files(out) == uninterrupted


def test_a_record_is_explained_the_same_whatever_came_before(trained_model):
    scorer = InProcessScorer.load(trained_model.model_dir, trained_model.labels)
    examples = [e.text for e in synthetic.generate(3, seed=4)]
    options = ShapOptions(num_samples=300, seed=5)
    together = list(explain_records(list(enumerate(examples, start=1)), scorer.score, options, overlap=False))
    alone = next(explain_records([(3, examples[2])], scorer.score, options, overlap=False))
    np.testing.assert_array_equal(together[2].attributions, alone.attributions)
    other_seed = next(explain_records([(3, examples[2])], scorer.score, ShapOptions(num_samples=300, seed=6)))
    assert not np.array_equal(other_seed.attributions, alone.attributions)


def test_in_process_scoring_answers_what_the_served_container_answers(trained_model):
    texts = [e.text for e in synthetic.generate(40, seed=8)] + ["", "  ", "<UNK> <UNK>", 'a, "quoted"\nline']
    scorer = InProcessScorer.load(trained_model.model_dir, trained_model.labels)
    with ServeProcess(trained_model.model_dir, trained_model.labels, workers=1) as server:
        http = HttpScorer(server.url)
        try:
            over_http = http.score(texts)
        finally:
            http.close()
    in_process = scorer.score(texts)
    assert scorer.labels == trained_model.labels
    assert in_process.shape == over_http.shape == (len(texts), len(trained_model.labels))
    np.testing.assert_allclose(in_process, over_http, rtol=1e-6, atol=1e-9)


def test_a_journal_of_other_options_or_a_torn_line_is_not_trusted(tmp_path):
    from textexplain.explainer.journal import Entry, Journal

    path = tmp_path / "journal.jsonl"
    entry = Entry(4, np.array([0.25, 0.75]), np.array([0.5, 0.5]), np.array([[0.1, -0.1], [-0.35, 0.35]]))
    with Journal(path, {"seed": 1}, 2) as journal:
        journal.add(entry)
        journal.add(Entry(5, entry.f_all, entry.f_none, entry.attributions))
    path.write_bytes(path.read_bytes()[:-7])  # the second row cut short, as by a kill mid-write
    with Journal(path, {"seed": 1}, 2) as journal:
        assert list(journal.done) == [4]
        restored = journal.done[4]
        np.testing.assert_array_equal(restored.attributions, entry.attributions)
        journal.add(Entry(6, entry.f_all, entry.f_none, entry.attributions))
    with Journal(path, {"seed": 1}, 2) as journal:
        assert list(journal.done) == [4, 6]
    with Journal(path, {"seed": 2}, 2) as journal:
        assert journal.done == {}
    assert os.path.getsize(path) < 100  # started again: only the new header

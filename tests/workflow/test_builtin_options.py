"""Each analysis config option the builtin job reads (granularity, language, baseline, num_samples, seed, agg_method,
label_headers) means what it means to the local mode: for a run with that option set (as a request override, or the
stage's label order), the job's parts, postprocessed, give the local mode's records byte for byte and its class
summaries; and the option is not ignored: the result differs from the default run's where the option says it must."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from explain_workflow.postprocess import postprocess_run
from tests.support import explain_job
from tests.support.data import write_texts
from textexplain import local, synthetic

BASE = {"num_samples": 32}
FRENCH = "L'équipe d'Air France n'est pas arrivée aujourd'hui. C'est la vie du port."


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    # several sentences and paragraphs per text, and a French one with elisions (l', d', n', c')
    texts = [ex.text for ex in synthetic.generate(10, seed=31, paragraphs=(1, 3))] + [FRENCH]
    return write_texts(tmp_path_factory.mktemp("options") / "texts.csv", texts)


def run_job(root: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "textexplain.job", "--root", str(root),
         "--resource-config", str(root.parent / f"{root.name}.config" / "resourceconfig.json"),
         "--message-file", str(root.parent / f"{root.name}.message")],
        capture_output=True, text=True, env={**os.environ, "EXPLAIN_JOB_WORKERS": "2"}, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def both(work: Path, data: Path, trained_model, overrides: dict, labels: list[str], shards: int) -> dict:
    """The local mode's run and the builtin job's (``shards`` instances) of the same request: their results."""
    config = local.LocalRun(data, work / "local", labels, dict(overrides))
    with local.model_endpoint(trained_model.tarball, None, labels) as (target, _):
        truth = local.run(config, target)
        settings = config.settings(target)
    run = explain_job.prepare(work / "s3", data, settings, dict(overrides))
    roots = explain_job.layouts(run, trained_model.tarball, work / "processing", shards)
    for root in roots:
        run_job(root)
    explain_job.upload(run, roots)
    answer = postprocess_run(run.storage, run.layout.run_id, settings)
    assert answer.status == "SUCCEEDED"
    assert answer.run_id == truth["run_id"]
    config_sent = json.loads(run.path(run.layout.config_key).read_text())
    ours, theirs = run.path(run.layout.results_prefix), Path(truth["run_dir"]) / "results"
    return {
        "config": config_sent,
        "records": (ours / "records.jsonl").read_bytes(),
        "local_records": (theirs / "records.jsonl").read_bytes(),
        "classes": json.loads((ours / "classes.json").read_text()),
        "local_classes": json.loads((theirs / "classes.json").read_text()),
    }


def records(raw: bytes) -> list[dict]:
    return [json.loads(line) for line in raw.decode("utf-8").splitlines()]


@pytest.fixture(scope="module")
def default(tmp_path_factory, data, trained_model) -> dict:
    return both(tmp_path_factory.mktemp("default"), data, trained_model, BASE, trained_model.labels, 2)


def attributions(raw: bytes) -> list[list[list[float]]]:
    return [[u["attributions"] for u in r["units"]] for r in records(raw)]


def units(raw: bytes) -> list[list[str]]:
    return [[u["text"] for u in r["units"]] for r in records(raw)]


def same_as_local(result: dict, labels: list[str]) -> None:
    assert result["records"] == result["local_records"]  # byte for byte
    ours, theirs = result["classes"], result["local_classes"]
    for label in labels:  # merged from parts: equal up to the float rounding of the sums
        assert ours[label]["expected_value"] == pytest.approx(theirs[label]["expected_value"], rel=1e-12, abs=1e-15)
        a, b = ours[label]["clarify_global_top_shap_text"], theirs[label]["clarify_global_top_shap_text"]
        assert a.keys() == b.keys()
        assert list(a["text"]) == list(b["text"])
        assert list(a["text"].values()) == pytest.approx(list(b["text"].values()), rel=1e-12, abs=1e-15)


def test_the_default_run_equals_the_local_mode(default, trained_model):
    same_as_local(default, trained_model.labels)
    shap = default["config"]["methods"]["shap"]
    assert shap["text_config"] == {"granularity": "token", "language": "english"}
    assert (shap["baseline"], shap["num_samples"], shap["agg_method"]) == ([["<UNK>"]], 32, "mean_abs")


@pytest.mark.parametrize("granularity", ["sentence", "paragraph"])
def test_granularity(tmp_path, data, trained_model, default, granularity):
    result = both(tmp_path, data, trained_model, {**BASE, "granularity": granularity}, trained_model.labels, 2)
    assert result["config"]["methods"]["shap"]["text_config"]["granularity"] == granularity
    same_as_local(result, trained_model.labels)
    texts = [r["text"] for r in records(result["records"])]
    for text, found in zip(texts, units(result["records"]), strict=True):
        if granularity == "paragraph":  # one unit per paragraph, paragraphs split at blank lines
            assert found == [p.strip() for p in text.split("\n\n") if p.strip()]
        else:  # sentences: fewer units than tokens, each one or more whole words
            assert 1 <= len(found) < len(text.split())
    assert units(result["records"]) != units(default["records"])


def test_language(tmp_path, data, trained_model, default):
    result = both(tmp_path, data, trained_model, {**BASE, "language": "french"}, trained_model.labels, 2)
    assert result["config"]["methods"]["shap"]["text_config"]["language"] == "french"
    same_as_local(result, trained_model.labels)
    # French tokenization splits the elisions English keeps whole
    assert units(result["records"])[-1][:4] == ["L'", "équipe", "d'", "Air"]
    assert units(default["records"])[-1][:2] == ["L'équipe", "d'Air"]


@pytest.mark.parametrize(
    "option",
    [{"baseline": "nothing"}, {"num_samples": 20}, {"seed": 7}],
    ids=["baseline", "num_samples", "seed"],
)
def test_baseline_num_samples_and_seed(tmp_path, data, trained_model, default, option):
    result = both(tmp_path, data, trained_model, {**BASE, **option}, trained_model.labels, 2)
    shap = result["config"]["methods"]["shap"]
    (key, value), = option.items()  # fmt: skip
    assert shap[key] == ([[value]] if key == "baseline" else value)
    same_as_local(result, trained_model.labels)
    # the same units, other attributions: the option reached the explainer
    assert units(result["records"]) == units(default["records"])
    assert attributions(result["records"]) != attributions(default["records"])
    if key == "baseline":  # the all-masked text is another text: other expected values
        label = trained_model.labels[0]
        assert result["classes"][label]["expected_value"] != default["classes"][label]["expected_value"]


@pytest.mark.parametrize(("agg_method", "shards"), [("mean_sq", 2), ("median", 1)])
def test_agg_method(tmp_path, data, trained_model, default, agg_method, shards):
    result = both(tmp_path, data, trained_model, {**BASE, "agg_method": agg_method}, trained_model.labels, shards)
    assert result["config"]["methods"]["shap"]["agg_method"] == agg_method
    same_as_local(result, trained_model.labels)
    assert result["records"] == default["records"]  # local values do not depend on the aggregate
    label = trained_model.labels[0]
    ours = result["classes"][label]["clarify_global_top_shap_text"]["text"]
    assert ours != default["classes"][label]["clarify_global_top_shap_text"]["text"]


def test_label_headers_order(tmp_path, data, trained_model, default):
    """A stage whose labels are in another order than the model's sorted ones: every vector in that order."""
    labels = list(reversed(trained_model.labels))
    result = both(tmp_path, data, trained_model, BASE, labels, 2)
    assert result["config"]["predictor"]["label_headers"] == labels
    same_as_local(result, labels)
    for ours, theirs in zip(records(result["records"]), records(default["records"]), strict=True):
        assert list(ours["probabilities"]) == labels
        assert ours["probabilities"] == theirs["probabilities"]  # the same values, by label
        assert ours["predicted_label"] == theirs["predicted_label"]
        for a, b in zip(ours["units"], theirs["units"], strict=True):
            assert a["attributions"] == pytest.approx(list(reversed(b["attributions"])), abs=1e-12)

"""Clarify's published output layout (tests/fixtures/clarify_published/, sources in its README) read by the
workflow's own readers, and what postprocess derives from it checked by hand.

The fixture files were written from the documentation and the example notebooks, not by our writer
(``clarify_format.local_line``) nor by the Clarify stand-in, so a reader that agreed only with our own writer
would fail here.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from explain_workflow.clarify_format import (
    ANALYSIS_FILE,
    OUT_FILE,
    expected_values,
    global_top_tokens,
    iter_lines,
    load_analysis,
    parse_local_line,
)
from explain_workflow.contract import RunRequest, WorkflowSettings
from explain_workflow.postprocess import postprocess_run
from explain_workflow.predictions import prediction_lines
from explain_workflow.prepare import prepare_run
from explain_workflow.runs import RunLayout, read_manifest
from explain_workflow.storage import FileStorage, read_bytes
from tests.support.data import csv_bytes

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "clarify_published"
LABELS = ["Animal", "Building", "Film"]  # the label_headers of the run the fixtures stand for
TEXTS = {"token": "Red foxes hunt at dusk.", "sentence": "The tower was finished in 1889. It stands beside a river."}
# what the model answered for each text (the predictions file beside Clarify's output), ours like the fixtures
MODEL = {"token": [0.78, 0.12, 0.10], "sentence": [0.08, 0.84, 0.08]}
GRANULARITIES = sorted(TEXTS)


def fixture(granularity: str, name: str) -> bytes:
    return (FIXTURES / granularity / name).read_bytes()


def published(granularity: str) -> tuple[dict, dict]:
    """The fixture's record and analysis as plain JSON (not through our readers): the expected values."""
    return json.loads(fixture(granularity, "out.jsonl")), json.loads(fixture(granularity, "analysis.json"))


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_the_readers_take_the_published_record_and_analysis(granularity):
    record, analysis = published(granularity)
    ((number, line),) = list(iter_lines(io.BytesIO(fixture(granularity, "out.jsonl")), OUT_FILE))
    explanation = parse_local_line(line, number, len(LABELS), OUT_FILE)
    (feature,) = record["explanations"]
    assert explanation.feature_name == feature["feature_name"] == "text"
    assert [(u.text, u.start_idx, list(u.attribution)) for u in explanation.units] == [
        (a["description"]["partial_text"], a["description"]["start_idx"], a["attribution"])
        for a in feature["attributions"]
    ]
    assert explanation.join_source_value == record.get("join_source_value")
    text = TEXTS[granularity]
    assert all(text.startswith(u.text, u.start_idx) for u in explanation.units)  # start_idx: characters of the text
    # the attribution arrays are copied into the results as Clarify wrote them (postprocess.record_line)
    assert [json.loads(raw) for raw in explanation.raw_attributions] == [
        a["attribution"] for a in feature["attributions"]
    ]

    document = load_analysis(fixture(granularity, "analysis.json"), ANALYSIS_FILE)
    per_label = analysis["explanations"]["kernel_shap"]
    assert expected_values(document, LABELS) == [per_label[label]["expected_value"] for label in LABELS]
    for label in LABELS:
        assert global_top_tokens(document, label) == per_label[label]["global_top_shap_text"]


def test_the_token_record_has_a_join_value_and_the_sentence_record_none():
    assert published("token")[0]["join_source_value"] == 1
    assert "join_source_value" not in published("sentence")[0]
    assert len(published("sentence")[0]["explanations"][0]["attributions"]) == 2  # one unit per sentence


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_postprocess_over_the_published_files_derives_the_values_by_hand(tmp_path, granularity):
    storage = FileStorage(tmp_path / "s3")
    settings = WorkflowSettings(results_bucket="results", labels=LABELS, model_name="m", defaults={"num_samples": 8})
    storage.put("input", "incoming/one.csv", csv_bytes([TEXTS[granularity]]), "text/csv")
    prepared = prepare_run(storage, RunRequest(bucket="input", key="incoming/one.csv"), settings)
    layout = RunLayout(settings.results_bucket, prepared.run_id)
    # Clarify's files where the job writes them, byte for byte the fixtures; the predictions beside them
    storage.put(layout.bucket, layout.clarify_prefix + OUT_FILE, fixture(granularity, "out.jsonl"), "x")
    storage.put(layout.bucket, layout.clarify_prefix + ANALYSIS_FILE, fixture(granularity, "analysis.json"), "x")
    storage.put(
        layout.bucket, layout.predictions_key, b"".join(prediction_lines([(1, MODEL[granularity])], LABELS)), "x"
    )

    answer = postprocess_run(storage, layout.run_id, settings)
    assert answer.status == "SUCCEEDED"
    assert answer.records == 1

    record, analysis = published(granularity)
    attributions = record["explanations"][0]["attributions"]
    per_label = analysis["explanations"]["kernel_shap"]
    body = read_bytes(storage, layout.bucket, layout.results_prefix + "records.jsonl").decode()
    (result,) = [json.loads(line) for line in body.splitlines()]
    assert result["row_id"] == 1
    assert result["text"] == TEXTS[granularity]
    assert result["probabilities"] == dict(zip(LABELS, MODEL[granularity], strict=True))  # the model's own
    top = max(range(len(LABELS)), key=MODEL[granularity].__getitem__)
    assert result["predicted_label"] == LABELS[top]
    assert result["units"] == [
        {
            "text": a["description"]["partial_text"],
            "start_idx": a["description"]["start_idx"],
            "aligned": True,
            "attributions": a["attribution"],
        }
        for a in attributions
    ]
    # the one derived figure: max over labels of |expected value + sum of the units' values - the model's p|
    gap = max(
        abs(per_label[label]["expected_value"] + sum(a["attribution"][k] for a in attributions) - MODEL[granularity][k])
        for k, label in enumerate(LABELS)
    )
    manifest = read_manifest(storage, layout)
    assert manifest["status"] == "SUCCEEDED"
    assert manifest["complete"] is True
    assert manifest["quality"]["additivity_gap"]["max"] == pytest.approx(gap, abs=1e-12)
    # per class: Clarify's expected value and its own top tokens, passed through unchanged
    classes = json.loads(read_bytes(storage, layout.bucket, layout.results_prefix + "classes.json"))
    for label in LABELS:
        assert classes[label]["expected_value"] == per_label[label]["expected_value"]
        assert classes[label]["clarify_global_top_shap_text"] == per_label[label]["global_top_shap_text"]


def _keys(value, tokens: bool = False) -> object:
    """The key structure of a JSON value (names, nesting and list shapes; no values), to compare layouts; a
    token map (``global_top_shap_text``'s per feature) is compared as one ``{token: number}``."""
    if tokens:
        return {"<token>": sorted({_keys(v) for v in value.values()})}
    if isinstance(value, dict):
        return {
            k: {f: _keys(t, tokens=True) for f, t in v.items()} if k == "global_top_shap_text" else _keys(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_keys(v) for v in value]
    return type(value).__name__ if not isinstance(value, int | float) else "number"


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_the_clarify_stand_in_writes_the_published_layout(granularity):
    """The Clarify stand-in of the services tests (tests/support/clarify_job.py) writes its own out.jsonl and
    analysis.json: given the fixture's units and values, its files have exactly the fixture's layout."""
    from tests.support.clarify_job import analysis, local_line

    record, document = published(granularity)
    (feature,) = record["explanations"]
    spans = [(a["description"]["partial_text"], a["description"]["start_idx"]) for a in feature["attributions"]]
    phi = [a["attribution"] for a in feature["attributions"]]
    written = json.loads(local_line("text", spans, phi, record.get("join_source_value")))
    assert _keys(written) == _keys(record)
    assert written == record
    per_label = document["explanations"]["kernel_shap"]
    expected = [[per_label[label]["expected_value"] for label in LABELS]]
    made = analysis(LABELS, [("text", spans, phi, None)], expected, "mean_abs", 5)
    assert _keys(made) == _keys(document)

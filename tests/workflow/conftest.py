"""Fixtures for the workflow tier: settings, a prepared run on the file-system storage."""

from __future__ import annotations

import json

import numpy as np
import pytest

from explain_workflow import clarify_format
from explain_workflow.predictions import prediction_lines
from explain_workflow.prepare import prepare_run
from explain_workflow.runs import RunLayout
from explain_workflow.settings import WorkflowSettings
from explain_workflow.storage import FileStorage
from tests.support.clarify_output import analysis_for, known_run

LABELS = ["NaturalPlace", "Film", "Animal"]
TEXTS = [
    "The river flows into a lake.",
    "A film directed by an old friend, <b>bold</b> & <script>document.title='pwned'</script>",
    "Zürich:  a glacier\nand a valley",
]


def csv_bytes(texts: list[str]) -> bytes:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["label", "text"])
    writer.writerows(["x", t] for t in texts)
    return buffer.getvalue().encode()


@pytest.fixture
def settings() -> WorkflowSettings:
    return WorkflowSettings.from_env(
        {"RESULTS_BUCKET": "results", "LABELS": json.dumps(LABELS), "MODEL_NAME": "m", "DEFAULT_NUM_SAMPLES": "8"}
    )


@pytest.fixture
def storage(tmp_path) -> FileStorage:
    return FileStorage(tmp_path / "s3")


def model_probabilities(run) -> list[list[float]]:
    """What "the model" answered for each row of a known run: a probability vector per row (fixed by the run)."""
    rng = np.random.default_rng(len(run.texts) * 31 + len(run.labels))
    return [[float(p) for p in rng.dirichlet(np.ones(len(run.labels)))] for _ in run.texts]


def write_predictions(storage, layout: RunLayout, run, order: list[int] | None = None) -> list[list[float]]:
    """predict/output/rows.jsonl.out as the Batch Transform job writes it (rows in ``order``, default in order)."""
    probs = model_probabilities(run)
    pairs = [(e.join_source_value or i + 1, p) for i, (e, p) in enumerate(zip(run.explanations, probs, strict=True))]
    if order is not None:
        pairs = [pairs[i] for i in order]
    storage.put(layout.bucket, layout.predictions_key, b"".join(prediction_lines(pairs, run.labels)), "x")
    return probs


def write_clarify_output(storage, layout: RunLayout, run, split: int | None = None, predictions: bool = True) -> None:
    """Write out.jsonl (or part files) and analysis.json as a Clarify job would, and (unless ``predictions`` is
    False) the predictions file as the transform job running beside it would."""
    if predictions:
        write_predictions(storage, layout, run)
    lines = [clarify_format.local_line(e).encode() for e in run.explanations]
    parts = [lines] if split is None else [lines[:split], lines[split:]]
    for i, part in enumerate(parts):
        name = "out.jsonl" if split is None else f"out.jsonl.part{i:03d}"
        storage.put(layout.bucket, layout.clarify_prefix + clarify_format.SHAP_DIR + name, b"".join(part), "x")
    storage.put(
        layout.bucket, layout.clarify_prefix + clarify_format.ANALYSIS_FILE, json.dumps(analysis_for(run)).encode(), "x"
    )


@pytest.fixture
def prepared(storage, settings):
    storage.put("input", "incoming/sample.csv", csv_bytes(TEXTS), "text/csv")
    result = prepare_run(storage, {"bucket": "input", "key": "incoming/sample.csv"}, settings)
    layout = RunLayout(settings.results_bucket, result["run_id"])
    return layout, known_run(TEXTS, LABELS, seed=3)

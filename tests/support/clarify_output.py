"""Clarify-format output produced from known attributions, so postprocess results are known exactly; written where
the Clarify job and the transform job beside it write theirs."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np

from explain_workflow import clarify_format
from explain_workflow.clarify_format import OUT_FILE, LocalExplanation, Unit, analysis_document
from explain_workflow.predictions import prediction_lines
from explain_workflow.runs import RunLayout

_TOKEN = re.compile(r"\S+")


@dataclass(frozen=True)
class KnownRun:
    """Texts, their units and attributions, and the expected values behind an out.jsonl."""

    labels: list[str]
    texts: list[str]
    explanations: list[LocalExplanation]
    expected_values: list[float]


def known_run(texts: list[str], labels: list[str], seed: int = 0, row_ids: list[int] | None = None) -> KnownRun:
    """White-space units with random attributions; expected values sum to 1 across labels."""
    rng = np.random.default_rng(seed)
    base = rng.dirichlet(np.ones(len(labels)))
    explanations = []
    for i, text in enumerate(texts):
        units = tuple(
            Unit(m.group(), m.start(), tuple(float(v) for v in rng.normal(0, 0.05, len(labels))))
            for m in _TOKEN.finditer(text)
        )
        explanations.append(LocalExplanation(units, (row_ids or list(range(1, len(texts) + 1)))[i]))
    return KnownRun(labels, texts, explanations, [float(v) for v in base])


def analysis_for(run: KnownRun) -> dict:
    k = len(run.labels)
    top = [{} for _ in range(k)]
    for explanation in run.explanations:
        for unit in explanation.units:
            for j in range(k):
                top[j][unit.text] = max(top[j].get(unit.text, 0.0), abs(unit.attribution[j]))
    return analysis_document(run.labels, run.expected_values, [0.1] * k, top)


def model_probabilities(run: KnownRun) -> list[list[float]]:
    """What "the model" answered for each row of a known run: a probability vector per row (fixed by the run)."""
    rng = np.random.default_rng(len(run.texts) * 31 + len(run.labels))
    return [[float(p) for p in rng.dirichlet(np.ones(len(run.labels)))] for _ in run.texts]


def write_predictions(storage, layout: RunLayout, run: KnownRun, order: list[int] | None = None) -> list[list[float]]:
    """predict/output/rows.jsonl.out as the Batch Transform job writes it (rows in ``order``, default in order)."""
    probs = model_probabilities(run)
    pairs = [(e.join_source_value or i + 1, p) for i, (e, p) in enumerate(zip(run.explanations, probs, strict=True))]
    if order is not None:
        pairs = [pairs[i] for i in order]
    storage.put(layout.bucket, layout.predictions_key, b"".join(prediction_lines(pairs, run.labels)), "x")
    return probs


def write_clarify_output(
    storage, layout: RunLayout, run: KnownRun, split: int | None = None, predictions: bool = True
) -> None:
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


def read_out_jsonl(stream, n_labels: int, name: str = OUT_FILE) -> list[LocalExplanation]:
    """Every line of an out.jsonl as postprocess reads it: strictly, with the file and line in any error."""
    lines = clarify_format.iter_lines(stream, name)
    return [clarify_format.parse_local_line(line, number, n_labels, name) for number, line in lines]

"""Clarify-format output produced from known attributions, so postprocess results are known exactly."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from explain_workflow.clarify_format import LocalExplanation, Unit, analysis_document

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

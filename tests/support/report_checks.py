"""Checks of a run's report shared by the report's tiers: its files read back, its evaluation recomputed from them
alone, and inputs whose every value is markup."""

from __future__ import annotations

import json
from pathlib import Path

HOSTILE = '"><x-evil id=pwn onload=alert(1)></x-evil><script>window.pwned=1</script>&amp;'


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def recomputed(records: list[dict], truth: dict[int, str | None], labels: list[str]) -> dict:
    """Accuracy, confusion matrix and misclassified rows, from records.jsonl and the labels file alone."""
    extra = sorted({v for v in truth.values() if v is not None and v not in labels})
    rows = labels + extra
    matrix = [[0] * len(labels) for _ in rows]
    wrong, correct = [], 0
    for r in records:
        label = truth.get(r["row_id"])
        if label is None or r["predicted_label"] is None:
            continue
        matrix[rows.index(label)][labels.index(r["predicted_label"])] += 1
        if label == r["predicted_label"]:
            correct += 1
            continue
        p = labels.index(r["predicted_label"])
        towards = sorted((u for u in r["units"] if u["attributions"][p] > 0), key=lambda u: -u["attributions"][p])
        away = []
        if label in labels:
            t = labels.index(label)
            away = sorted((u for u in r["units"] if u["attributions"][t] < 0), key=lambda u: u["attributions"][t])
        wrong.append((r["row_id"], label, r["predicted_label"], [u["text"] for u in towards[:5]],
                      [u["text"] for u in away[:5]]))  # fmt: skip
    evaluated = sum(map(sum, matrix))
    return {"rows": rows, "matrix": matrix, "correct": correct, "evaluated": evaluated, "wrong": wrong}


def hostile_inputs() -> tuple[dict, dict, list[dict], dict]:
    """A summary, classes, records and evaluation whose every value is markup (as a tampered run's files would be)."""
    summary = {"run_id": HOSTILE, "model": {HOSTILE: HOSTILE}, "engine": HOSTILE, "rows": HOSTILE, "labels": ["A"],
               "predicted_counts": {"A": HOSTILE}, "misaligned_units": HOSTILE,
               "quality": {"additivity_gap": {"records": HOSTILE, "mean": HOSTILE, "p95": HOSTILE, "max": HOSTILE}},
               "missing": {"predictions": {"rows": HOSTILE, "reason": HOSTILE}},
               "faithfulness": {"k": HOSTILE, "records": HOSTILE, "mean_top_k_drop": HOSTILE,
                                "mean_random_k_drop": HOSTILE, "top_beats_random": HOSTILE}}  # fmt: skip
    token = {"token": HOSTILE, "mean": HOSTILE, "count": HOSTILE}
    view = {"records": HOSTILE, "min_support": HOSTILE, "top_positive_tokens": [token], "top_negative_tokens": [token]}
    classes = {"A": {"expected_value": HOSTILE, "predicted_as_this_class": view, "all_records": view,
                     "clarify_global_top_shap_text": {HOSTILE: {HOSTILE: HOSTILE}}}}  # fmt: skip
    records = [{"row_id": HOSTILE, "text": HOSTILE + " word", "predicted_label": "A", "probabilities": {"A": 0.9},
                "units": [{"text": "word", "start_idx": len(HOSTILE) + 1, "aligned": True, "attributions": [0.1]},
                          {"text": HOSTILE, "start_idx": 0, "aligned": False, "attributions": [0.2]}],
                "label": HOSTILE}]  # fmt: skip
    unit = {"text": HOSTILE, "start_idx": 0, "attribution": HOSTILE}
    evaluation = {"label_column": HOSTILE, "evaluated": HOSTILE, "correct": HOSTILE, "accuracy": HOSTILE,
                  "unlabelled": HOSTILE, "labelled_without_prediction": HOSTILE, "predicted_labels": ["A"],
                  "true_labels": ["A", HOSTILE], "confusion": [[HOSTILE], [HOSTILE]],
                  "misclassified": [{"row_id": HOSTILE, "label": HOSTILE, "predicted": "A",
                                     "predicted_probability": HOSTILE, "label_probability": HOSTILE,
                                     "towards_predicted": [unit], "away_from_label": [unit]}]}  # fmt: skip
    return summary, classes, records, evaluation

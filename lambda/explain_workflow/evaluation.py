"""How the model does against the labels of a label column: accuracy, the confusion matrix and, per misclassified
record, the units that pushed it to the wrong class and away from the right one.

The labels never enter Clarify's dataset (input/ holds row_id and text only): prepare writes them beside it, one JSON
line per row in ``labels/labels.jsonl`` of the run (``{"row_id": 1, "label": "Film"}``, ``null`` for an empty cell),
and postprocess reads them here. Every figure is derived (named so in evaluation.json and the report) from the
model's predictions in records.jsonl and these labels.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable
from typing import BinaryIO

from explain_workflow.clarify_format import Unit
from explain_workflow.errors import ClarifyOutputError

LABELS_FILE = "labels/labels.jsonl"  # under runs/<run_id>/, outside input/ (which Clarify reads whole)
EVALUATION_FILE = "evaluation.json"  # under results/
TOP_UNITS = 5
DEFINITION = (
    "derived from the model's predictions (records.jsonl) and the label column: accuracy = correct / evaluated over "
    "the records with both a label and a prediction; confusion[i][j] counts records labelled true_labels[i] and "
    "predicted predicted_labels[j]; per misclassified record, the units with the largest attribution towards the "
    "predicted class and the most negative towards the label"
)


def labels_key(run_prefix: str) -> str:
    return run_prefix + LABELS_FILE


def label_line(row_id: int, label: str | None) -> bytes:
    return (json.dumps({"row_id": row_id, "label": label}, ensure_ascii=False) + "\n").encode("utf-8")


def read_labels(stream: BinaryIO, key: str) -> dict[int, str | None]:
    """row_id -> label (None for an empty cell) from the labels file prepare wrote."""
    labels: dict[int, str | None] = {}
    for number, raw in enumerate(stream, start=1):
        try:
            line = json.loads(raw)
            row_id, label = line["row_id"], line["label"]
        except (ValueError, KeyError, TypeError):
            raise ClarifyOutputError("not a labels line {row_id, label}", file=key, line=number) from None
        if not isinstance(row_id, int) or not (label is None or isinstance(label, str)):
            raise ClarifyOutputError("row_id must be a number and label a string or null", file=key, line=number)
        labels[row_id] = label
    return labels


def _units(units: Iterable[Unit], k: int, towards: bool) -> list[dict]:
    pick = heapq.nlargest if towards else heapq.nsmallest
    chosen = pick(TOP_UNITS, (u for u in units if (u.attribution[k] > 0 if towards else u.attribution[k] < 0)),
                  key=lambda u: u.attribution[k])  # fmt: skip
    return [{"text": u.text, "start_idx": u.start_idx, "attribution": u.attribution[k]} for u in chosen]


class Evaluation:
    """Accumulates, record by record, what evaluation.json says."""

    def __init__(self, labels: list[str], label_column: str, truth: dict[int, str | None]):
        self.labels, self.label_column, self.truth = labels, label_column, truth
        self.index = {label: i for i, label in enumerate(labels)}
        self.extra = sorted({v for v in truth.values() if v is not None and v not in self.index})
        self.true_labels = labels + self.extra
        self.row_of = {label: i for i, label in enumerate(self.true_labels)}
        self.confusion = [[0] * len(labels) for _ in self.true_labels]
        self.correct = self.evaluated = self.unlabelled = self.no_prediction = 0
        self.misclassified: list[dict] = []

    def label_of(self, row_id: int) -> str | None:
        return self.truth.get(row_id)

    def add(self, row_id: int, units: tuple[Unit, ...], prediction: tuple[str, list[float]] | None) -> None:
        label = self.truth.get(row_id)
        if label is None:
            self.unlabelled += 1
            return
        if prediction is None:
            self.no_prediction += 1
            return
        predicted, probabilities = prediction
        p = self.index[predicted]
        self.evaluated += 1
        self.confusion[self.row_of[label]][p] += 1
        if predicted == label:
            self.correct += 1
            return
        t = self.index.get(label)
        self.misclassified.append(
            {
                "row_id": row_id,
                "label": label,
                "label_is_a_class": t is not None,
                "predicted": predicted,
                "predicted_probability": probabilities[p],
                "label_probability": probabilities[t] if t is not None else None,
                "towards_predicted": _units(units, p, towards=True),
                "away_from_label": _units(units, t, towards=False) if t is not None else [],
            }
        )

    def document(self) -> dict:
        return {
            "definition": DEFINITION,
            "label_column": self.label_column,
            "evaluated": self.evaluated,
            "correct": self.correct,
            "accuracy": self.correct / self.evaluated if self.evaluated else None,
            "unlabelled": self.unlabelled,
            "labelled_without_prediction": self.no_prediction,
            "predicted_labels": self.labels,
            "true_labels": self.true_labels,
            "labels_not_classes_of_the_model": self.extra,
            "confusion": self.confusion,
            "misclassified": self.misclassified,
        }

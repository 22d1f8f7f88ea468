"""The model's own predictions for every row of a run, joined by row_id.

In AWS a Batch Transform job over ``predict/input/rows.jsonl`` writes ``predict/output/rows.jsonl.out``, one
line per row: ``{"row_id": 1, "SageMakerOutput": {"label": "...", "prob": [p_0, ..., p_{K-1}]}}`` (``prob`` in
the order of LABELS). The local mode writes the same file from the scorer's own probabilities. Kept in flat
arrays (8 bytes per row and label), so 100,000 rows of 14 classes cost about 11 MB.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from explain_workflow.clarify_format import finite_number, iter_lines, join_row_id, strict_json
from explain_workflow.errors import ClarifyOutputError
from explain_workflow.parts import PREDICTIONS_PART, part_keys

if TYPE_CHECKING:  # the image's job writes predictions with prediction_lines and has no boto3
    from explain_workflow.storage import Storage

OUTPUT_FILE = "rows.jsonl.out"
# fastText answers exp(log(p + 1e-5)), i.e. its softmax p plus 1e-5, so a sure class reads up to 1.00001. Values up to
# this slack above 1 are that offset, not a fault, and are published as 1.0 (a probability, off by < 1e-4 at most).
PROBABILITY_SLACK = 1e-4


# A malformed predictions file fails the run like malformed Clarify output (same error name: never retried).
PredictionError = ClarifyOutputError


@dataclass
class Predictions:
    """Per row (1..rows): the model's label index and probabilities, or nothing when the model gave none."""

    labels: list[str]
    rows: int
    label_index: array  # 'h', -1 where missing
    probabilities: array  # 'd', rows * K
    source: str | None  # the file they came from; None when there is no predictions file
    absent_reason: str = ""

    @classmethod
    def empty(cls, labels: list[str], rows: int, source: str | None, reason: str = "") -> Predictions:
        return cls(labels, rows, array("h", [-1]) * rows, array("d", [math.nan]) * (rows * len(labels)), source, reason)

    def get(self, row_id: int) -> tuple[str, list[float]] | None:
        if not 1 <= row_id <= self.rows or self.label_index[row_id - 1] < 0:
            return None
        k = len(self.labels)
        start = (row_id - 1) * k
        return self.labels[self.label_index[row_id - 1]], self.probabilities[start : start + k].tolist()


def parse_prediction(line: str, labels: list[str], where: dict) -> tuple[int, int, list[float]]:
    """(row_id, label index, probabilities) of one output line, every value checked."""

    def error(reason: str) -> PredictionError:
        return PredictionError(reason, **where)

    try:
        record = strict_json(line)
    except ValueError as exc:
        raise error(f"not strict JSON: {exc}") from None
    if not isinstance(record, dict) or "row_id" not in record or "SageMakerOutput" not in record:
        raise error("a prediction line must be an object with row_id and SageMakerOutput")
    try:
        row_id = join_row_id(record["row_id"])
    except ValueError as exc:
        raise error(str(exc).replace("join_source_value", "row_id")) from None
    output = record["SageMakerOutput"]
    if isinstance(output, str):  # a transform that kept the model's answer line as text
        try:
            output = strict_json(output)
        except ValueError as exc:
            raise error(f"SageMakerOutput is text that is not strict JSON: {exc}") from None
    if not isinstance(output, dict) or "label" not in output or "prob" not in output:
        raise error("SageMakerOutput must be the model's answer {label, prob}")
    label, prob = output["label"], output["prob"]
    if label not in labels:
        raise error(f"predicted label {label!r} is not one of the run's labels")
    if type(prob) is not list or len(prob) != len(labels):
        raise error(f"prob must hold {len(labels)} values, one per label, got {prob!r:.80}")
    if not all(finite_number(p) and 0.0 <= p <= 1.0 + PROBABILITY_SLACK for p in prob):
        raise error("prob holds a value that is not a probability (a finite number from 0 to 1)")
    index = labels.index(label)
    if prob[index] < max(prob):
        raise error(f"label {label!r} is not the top class of its own prob")
    # min(): the offset above may carry a sure class just past 1; what is published stays a probability
    return row_id, index, [min(float(p), 1.0) for p in prob]


def prediction_keys(keys: list[str], prefix: str) -> list[str]:
    """The predictions files under ``prefix``: rows.jsonl.out (Batch Transform) or rows.part-*.jsonl.out (the
    builtin job, one per instance), never both; any other file is refused by name."""
    parts = part_keys(keys, prefix, PREDICTIONS_PART)
    single = [k for k in keys if k == prefix + OUTPUT_FILE]
    unknown = [k for k in keys if k not in parts and k not in single]
    if unknown:
        raise PredictionError(f"unexpected file {unknown[0][len(prefix) :]} beside {OUTPUT_FILE}", file=unknown[0])
    if single and parts:
        raise PredictionError(f"both {OUTPUT_FILE} and {len(parts)} part files under {prefix}", file=parts[0])
    return single or parts


def read_predictions(storage: Storage, bucket: str, prefix: str, labels: list[str], rows: int) -> Predictions:
    """Every prediction under ``prefix`` (predict/output/), in any order; missing rows stay missing."""
    keys = storage.list(bucket, prefix)
    if not keys:
        return Predictions.empty(labels, rows, None, f"no predictions under {prefix}")
    files = prediction_keys(keys, prefix)
    found = Predictions.empty(labels, rows, files[0] if len(files) == 1 else prefix + "rows.part-*.jsonl.out")
    k = len(labels)
    for key in files:
        with storage.open(bucket, key) as stream:
            for number, line in iter_lines(stream, key):
                where = {"file": key, "line": number}
                row_id, index, prob = parse_prediction(line, labels, where)
                if not 1 <= row_id <= rows:
                    raise PredictionError(f"row_id {row_id} names no row of the input (rows 1 to {rows})", **where)
                if found.label_index[row_id - 1] >= 0:
                    raise PredictionError(f"a second prediction for row {row_id}", **where)
                found.label_index[row_id - 1] = index
                found.probabilities[(row_id - 1) * k : row_id * k] = array("d", prob)
    return found


def prediction_lines(rows: Iterable[tuple[int, list[float]]], labels: list[str]) -> Iterable[bytes]:
    """The predictions file from (row_id, probabilities) pairs: what the local mode writes from its scorer."""
    import json

    for row_id, prob in rows:
        top = max(range(len(prob)), key=prob.__getitem__)
        output = {"label": labels[top], "prob": [float(p) for p in prob]}
        yield (json.dumps({"row_id": row_id, "SageMakerOutput": output}) + "\n").encode()

"""The `pipeline` hosting mode: adapters around AWS's built-in BlazingText container in a SageMaker inference pipeline.

Clarify sends CSV or JSON Lines; BlazingText takes ``{"instances": [...], "configuration": {"k": K}}`` and
answers ``[{"label": ["__label__x", ...], "prob": [...]}, ...]`` sorted by probability. A serial pipeline
returns the last container's answer, so two adapters are needed:

- pre-adapter: Clarify's request -> BlazingText's request (texts normalised exactly as in training,
  k = the number of labels, so every probability comes back);
- post-adapter: BlazingText's answer -> the container's contract (full vector in LABELS order, one line per record).

``blazingtext_answer`` writes BlazingText's answer format, so the whole chain can run locally with our
server standing in for the built-in container.
"""

from __future__ import annotations

import numpy as np
import orjson

from fasttext_server.codec import RequestError
from fasttext_server.model import LABEL_PREFIX, normalize_batch


def blazingtext_request(texts: list[str], k: int) -> bytes:
    return orjson.dumps({"instances": normalize_batch(texts), "configuration": {"k": k}})


def requested_k(body: bytes, default: int = 1) -> int:
    """``configuration.k`` of a BlazingText request (its default is 1)."""
    try:
        value = orjson.loads(body).get("configuration", {}).get("k", default)
    except (orjson.JSONDecodeError, AttributeError):
        return default
    if not isinstance(value, int) or value < 1:
        raise RequestError(400, "invalid_configuration", f"configuration.k must be a positive integer, got {value!r}")
    return value


def blazingtext_answer(probs: np.ndarray, labels: list[str], k: int) -> bytes:
    """BlazingText's answer for a (n, K) matrix: per row the top-k labels (prefixed) and probabilities."""
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    prefixed = [LABEL_PREFIX + lab for lab in labels]
    return orjson.dumps(
        [{"label": [prefixed[j] for j in row], "prob": probs[i, row].tolist()} for i, row in enumerate(order.tolist())]
    )


def from_blazingtext_answer(body: bytes, labels: list[str]) -> np.ndarray:
    """BlazingText's answer -> (n, K) float32 in ``labels`` order; labels it left out are 0."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(400, "malformed_json", f"not a BlazingText answer: {exc}") from None
    if isinstance(answer, dict) and isinstance(answer.get("predictions"), list):
        answer = answer["predictions"]
    if not isinstance(answer, list):
        raise RequestError(400, "malformed_json", 'expected a JSON list of {"label": [...], "prob": [...]}')
    column = {LABEL_PREFIX + lab: i for i, lab in enumerate(labels)} | {lab: i for i, lab in enumerate(labels)}
    out = np.zeros((len(answer), len(labels)), dtype=np.float32)
    for i, item in enumerate(answer):
        if not isinstance(item, dict) or "label" not in item or "prob" not in item:
            raise RequestError(400, "malformed_json", f'record {i + 1}: expected {{"label": [...], "prob": [...]}}')
        names = [item["label"]] if isinstance(item["label"], str) else item["label"]
        values = [item["prob"]] if isinstance(item["prob"], int | float) else item["prob"]
        if len(names) != len(values):
            raise RequestError(
                400, "malformed_json", f"record {i + 1}: {len(names)} labels but {len(values)} probabilities"
            )
        for name, value in zip(names, values, strict=True):
            if name not in column:
                raise RequestError(400, "unknown_label", f"record {i + 1}: label {name!r} is not in LABELS")
            out[i, column[name]] = value
    return out

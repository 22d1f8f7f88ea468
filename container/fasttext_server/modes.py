"""What POST /invocations does, by ``SERVE_MODE``: the model itself, BlazingText's API, or a `pipeline`-mode adapter.

Each mode is a function (body, content type, accept header, deadline) -> (status, body, content type) over
the pure codec, model and adapter modules; the WSGI app calls whichever one the server was started with.
Every mode works within ``Limits``: a record count that keeps the answer under the response limit, the
text-length limit, and the request's deadline (checked between blocks of rows).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from fasttext_server.adapters import blazingtext_answer, blazingtext_request, from_blazingtext_answer, requested_k
from fasttext_server.codec import (
    JSON,
    NUMBER_BYTES,
    Bounds,
    RequestError,
    ResponseEncoder,
    choose_accept,
    decode_request,
    parse_media_type,
)
from fasttext_server.model import LABEL_PREFIX, Classifier


class Deadline:
    """The time a request may take; ``check()`` answers 503 with our JSON error once it has passed."""

    def __init__(self, budget: float):
        self.budget = budget
        self.at = time.monotonic() + budget

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def check(self) -> None:
        if time.monotonic() > self.at:
            raise RequestError(
                503,
                "deadline_exceeded",
                f"the request was not answered within its {self.budget:.1f}-second budget (the worker timeout "
                "SAGEMAKER_MODEL_SERVER_TIMEOUT less a margin); send fewer records per request",
            )


@dataclass(frozen=True)
class Limits:
    max_records: int = 10_000
    max_response_bytes: int = 5 * 1024 * 1024
    max_text_chars: int = 5_000

    def bounds(self, row_fit: int, what: str) -> Bounds:
        """The record bound: MAX_RECORDS, or fewer when that many answer rows would not fit the response limit."""
        if row_fit < self.max_records:
            why = f"{row_fit} answer rows of {what} fill MAX_RESPONSE_BYTES={self.max_response_bytes}"
            return Bounds(row_fit, self.max_text_chars, why)
        return Bounds(self.max_records, self.max_text_chars, f"MAX_RECORDS={self.max_records}")


# (body, Content-Type, Accept, deadline) -> (status, answer as bytes or consecutive parts, Content-Type)
Invoke = Callable[[bytes, str | None, str | None, Deadline], tuple[int, bytes | list[bytes], str]]
MODES = ("model", "blazingtext", "pre-adapter", "post-adapter", "explain")
NEEDS_MODEL = ("model", "blazingtext", "explain")  # explain: fasttext_server.explain_mode


def _checked(body: bytes | list[bytes], limit: int) -> bytes | list[bytes]:
    size = len(body) if isinstance(body, bytes) else sum(map(len, body))
    if size > limit:  # cannot happen within the bounds; kept so no answer ever exceeds the limit
        detail = f"the answer of {size} bytes exceeds {limit} bytes (MAX_RESPONSE_BYTES)"
        raise RequestError(413, "response_too_large", detail)
    return body


def model(classifier: Classifier, limits: Limits = Limits()) -> Invoke:
    """The container's contract: texts in, one {"label", "prob"} line per record out."""
    encoder = ResponseEncoder(classifier.labels)
    bounds = limits.bounds(encoder.max_rows(limits.max_response_bytes), f"{len(classifier.labels)} probabilities")

    def invoke(body, content_type, accept_header, deadline):
        accept = choose_accept(accept_header)
        texts = decode_request(body, content_type, bounds)
        answer = encoder.encode_parts(classifier.predict_blocks(texts, check=deadline.check), accept)
        return 200, _checked(answer, limits.max_response_bytes), accept

    return invoke


def blazingtext(classifier: Classifier, limits: Limits = Limits()) -> Invoke:
    """BlazingText's own API, so the `pipeline` chain can run locally: JSON instances in, top-k labels out."""
    labels = classifier.labels
    row = sum(len(LABEL_PREFIX) + len(lab) + 3 for lab in labels) + len(labels) * (NUMBER_BYTES + 1) + 24
    bounds = limits.bounds(max(1, limits.max_response_bytes // row), f"{len(labels)} labels")

    def invoke(body, content_type, accept_header, deadline):
        if parse_media_type(content_type)[0] != JSON:
            raise RequestError(
                415, "unsupported_content_type", 'BlazingText takes application/json {"instances": [...]}'
            )
        texts = decode_request(body, content_type, bounds)
        k = min(requested_k(body), len(labels))
        deadline.check()
        return 200, _checked(blazingtext_answer(classifier.predict(texts), labels, k), limits.max_response_bytes), JSON

    return invoke


def pre_adapter(labels: list[str], limits: Limits = Limits()) -> Invoke:
    """Clarify's CSV / JSON Lines -> BlazingText's request, asking for every label."""
    bounds = limits.bounds(limits.max_records, "")

    def invoke(body, content_type, accept_header, deadline):
        return 200, blazingtext_request(decode_request(body, content_type, bounds), len(labels)), JSON

    return invoke


def post_adapter(labels: list[str], limits: Limits = Limits()) -> Invoke:
    """BlazingText's answer -> the container's contract, full vectors in LABELS order."""
    encoder = ResponseEncoder(labels)
    bounds = limits.bounds(encoder.max_rows(limits.max_response_bytes), f"{len(labels)} probabilities")

    def invoke(body, content_type, accept_header, deadline):
        accept = choose_accept(accept_header)
        if not body:
            raise RequestError(400, "empty_body", "the request body is empty")
        probs = from_blazingtext_answer(body, labels)
        if len(probs) > bounds.max_records:
            raise bounds.too_many()
        return 200, _checked(encoder.encode(probs, accept), limits.max_response_bytes), accept

    return invoke

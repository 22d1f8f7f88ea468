"""What POST /invocations does, by ``SERVE_MODE``: the model itself, BlazingText's API, or an Option A adapter.

Each mode is a function (body, content type, accept header) -> (status, body, content type) over the
pure codec, model and adapter modules; the WSGI app calls whichever one the server was started with.
"""

from __future__ import annotations

from collections.abc import Callable

from fasttext_server.adapters import blazingtext_answer, blazingtext_request, from_blazingtext_answer, requested_k
from fasttext_server.codec import JSON, RequestError, ResponseEncoder, choose_accept, decode_request, parse_media_type
from fasttext_server.model import Classifier

Invoke = Callable[[bytes, str | None, str | None], tuple[int, bytes, str]]
MODES = ("model", "blazingtext", "pre-adapter", "post-adapter")
NEEDS_MODEL = ("model", "blazingtext")


def model(classifier: Classifier) -> Invoke:
    """The ▶ contract: texts in, one {"label", "prob"} line per record out."""
    encoder = ResponseEncoder(classifier.labels)

    def invoke(body, content_type, accept_header):
        accept = choose_accept(accept_header)
        return 200, encoder.encode(classifier.predict(decode_request(body, content_type)), accept), accept

    return invoke


def blazingtext(classifier: Classifier) -> Invoke:
    """BlazingText's own API, so the Option A chain can run locally: JSON instances in, top-k labels out."""

    def invoke(body, content_type, accept_header):
        if parse_media_type(content_type)[0] != JSON:
            raise RequestError(
                415, "unsupported_content_type", 'BlazingText takes application/json {"instances": [...]}'
            )
        texts = decode_request(body, content_type)
        k = min(requested_k(body), len(classifier.labels))
        return 200, blazingtext_answer(classifier.predict(texts), classifier.labels, k), JSON

    return invoke


def pre_adapter(labels: list[str]) -> Invoke:
    """Clarify's CSV / JSON Lines -> BlazingText's request, asking for every label."""

    def invoke(body, content_type, accept_header):
        return 200, blazingtext_request(decode_request(body, content_type), len(labels)), JSON

    return invoke


def post_adapter(labels: list[str]) -> Invoke:
    """BlazingText's answer -> the ▶ contract, full vectors in LABELS order."""
    encoder = ResponseEncoder(labels)

    def invoke(body, content_type, accept_header):
        accept = choose_accept(accept_header)
        if not body:
            raise RequestError(400, "empty_body", "the request body is empty")
        return 200, encoder.encode(from_blazingtext_answer(body, labels), accept), accept

    return invoke

"""The SageMaker hosting contract as a plain WSGI callable: /ping, /invocations, /execution-parameters.

A thin shell: decoding, scoring and encoding live in ``codec`` and ``model``. No web framework:
at 500-row requests the framework's per-request cost is measurable, and three routes need none.
Every answer, refusals included, is our JSON; the body is read within the request's deadline, so a
client that trickles its body gets a 408 instead of holding anything past the worker timeout.
"""

from __future__ import annotations

import logging

import gevent
import orjson

from fasttext_server.codec import RequestError
from fasttext_server.modes import Deadline, Invoke

log = logging.getLogger("fasttext_server")

STATUS = {
    200: "200 OK",
    400: "400 Bad Request",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    406: "406 Not Acceptable",
    408: "408 Request Timeout",
    413: "413 Payload Too Large",
    415: "415 Unsupported Media Type",
    500: "500 Internal Server Error",
    503: "503 Service Unavailable",
}
_READ_BLOCK = 1 << 16


class InferenceApp:
    """WSGI application over one ``invoke`` function (see ``modes``)."""

    def __init__(self, invoke: Invoke, max_payload_bytes: int, workers: int = 1, budget: float = 54.0):
        self.invoke = invoke
        self.max_payload_bytes = max_payload_bytes
        self.budget = budget
        # Client sockets of requests not yet answered: if the worker is aborted, they still get our JSON error.
        self.unanswered: dict[int, object] = {}
        self._execution_parameters = orjson.dumps(
            {
                "MaxConcurrentTransforms": workers,
                "BatchStrategy": "MULTI_RECORD",
                "MaxPayloadInMB": max(1, max_payload_bytes // (1024 * 1024)),
            }
        )

    def __call__(self, environ, start_response):
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        deadline = Deadline(self.budget)
        sock = environ.get("gunicorn.socket")
        key = id(environ)
        if sock is not None:
            self.unanswered[key] = sock
        try:
            try:
                if path == "/invocations":
                    self._require(method, "POST")
                    status, body, kind = self.invoke(
                        self._read_body(environ, deadline), environ.get("CONTENT_TYPE"), environ.get("HTTP_ACCEPT"),
                        deadline,
                    )  # fmt: skip
                elif path == "/ping":
                    self._require(method, "GET")
                    status, body, kind = 200, b"", "application/json"
                elif path == "/execution-parameters":
                    self._require(method, "GET")
                    status, body, kind = 200, self._execution_parameters, "application/json"
                else:
                    raise RequestError(404, "not_found", f"no route {path!r}; use /ping or /invocations")
            except RequestError as exc:
                log.warning("%s %s -> %d %s: %s", method, path, exc.status, exc.error, exc.detail)
                status, body, kind = exc.status, exc.body(), "application/json"
            except Exception:  # a bug, never bad input: answer, log the trace, keep serving
                log.exception("%s %s failed", method, path)
                status, kind = 500, "application/json"
                body = RequestError(500, "internal_error", "the server failed; see its log").body()
            parts = [body] if isinstance(body, bytes) else body
            start_response(STATUS[status], [("Content-Type", kind), ("Content-Length", str(sum(map(len, parts))))])
        finally:
            self.unanswered.pop(key, None)
        return parts

    @staticmethod
    def _require(method: str, allowed: str) -> None:
        if method != allowed:
            raise RequestError(405, "method_not_allowed", f"{method} is not allowed here; use {allowed}")

    def _read_body(self, environ, deadline: Deadline) -> bytes:
        limit = self.max_payload_bytes
        length = environ.get("CONTENT_LENGTH") or ""
        declared = int(length) if length.isdigit() else None
        if declared is not None and declared > limit:
            raise RequestError(
                413, "payload_too_large", f"body of {declared} bytes exceeds the {limit}-byte limit (MAX_PAYLOAD_BYTES)"
            )
        late = RequestError(
            408, "body_timeout", f"the body did not arrive within the request's {deadline.budget:.1f}-second budget"
        )
        parts, size, wanted = [], 0, declared if declared is not None else limit + 1
        try:
            # cooperative under gevent: a slow client waits here without holding the worker
            with gevent.Timeout(max(0.0, deadline.remaining()), late):
                while size < wanted:
                    block = environ["wsgi.input"].read(min(_READ_BLOCK, wanted - size))
                    if not block:
                        break
                    parts.append(block)
                    size += len(block)
        except RequestError:
            raise
        except Exception as exc:  # the HTTP framing is broken (bad chunk sizes, a cut connection)
            raise RequestError(400, "malformed_body", f"the request body could not be read: {exc}") from None
        if size > limit:
            raise RequestError(413, "payload_too_large", f"body exceeds the {limit}-byte limit (MAX_PAYLOAD_BYTES)")
        if declared is not None and size < declared:
            raise RequestError(
                400,
                "incomplete_body",
                f"the body ended after {size} of the {declared} bytes its Content-Length declares",
            )
        return b"".join(parts)

"""The SageMaker hosting contract as a plain WSGI callable: /ping, /invocations, /execution-parameters.

A thin shell: decoding, scoring and encoding live in ``codec`` and ``model``. No web framework:
at 500-row requests the framework's per-request cost is measurable, and three routes need none.
"""

from __future__ import annotations

import logging

import orjson

from fasttext_server.codec import RequestError
from fasttext_server.modes import Invoke

log = logging.getLogger("fasttext_server")

_STATUS = {
    200: "200 OK",
    400: "400 Bad Request",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    406: "406 Not Acceptable",
    413: "413 Payload Too Large",
    415: "415 Unsupported Media Type",
    500: "500 Internal Server Error",
}


class InferenceApp:
    """WSGI application over one ``invoke`` function (see ``modes``)."""

    def __init__(self, invoke: Invoke, max_payload_bytes: int, workers: int = 1):
        self.invoke = invoke
        self.max_payload_bytes = max_payload_bytes
        self._execution_parameters = orjson.dumps(
            {
                "MaxConcurrentTransforms": workers,
                "BatchStrategy": "MULTI_RECORD",
                "MaxPayloadInMB": max(1, max_payload_bytes // (1024 * 1024)),
            }
        )

    def __call__(self, environ, start_response):
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        try:
            if path == "/invocations":
                self._require(method, "POST")
                status, body, kind = self._invoke(environ)
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
        start_response(_STATUS[status], [("Content-Type", kind), ("Content-Length", str(len(body)))])
        return [body]

    @staticmethod
    def _require(method: str, allowed: str) -> None:
        if method != allowed:
            raise RequestError(405, "method_not_allowed", f"{method} is not allowed here; use {allowed}")

    def _invoke(self, environ) -> tuple[int, bytes, str]:
        return self.invoke(self._read_body(environ), environ.get("CONTENT_TYPE"), environ.get("HTTP_ACCEPT"))

    def _read_body(self, environ) -> bytes:
        limit = self.max_payload_bytes
        length = environ.get("CONTENT_LENGTH") or ""
        declared = int(length) if length.isdigit() else None
        if declared is not None and declared > limit:
            raise RequestError(413, "payload_too_large", f"body of {declared} bytes exceeds the {limit}-byte limit")
        body = environ["wsgi.input"].read(declared if declared is not None else limit + 1)
        if len(body) > limit:
            raise RequestError(413, "payload_too_large", f"body exceeds the {limit}-byte limit")
        return body

"""Request bodies in, response bodies out: the wire formats of the ▶ Model I/O contract.

Pure functions over bytes. Every rejection is a ``RequestError`` carrying the HTTP status, a short
error name and a detail that says where (record number or byte offset), so the HTTP shell can
answer it as JSON and keep serving.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from itertools import repeat

import numpy as np
import orjson

CSV = "text/csv"
JSONLINES = "application/jsonlines"
JSON = "application/json"
# Aliases seen in the wild for JSON Lines; answered as application/jsonlines.
_JSONLINES_ALIASES = {JSONLINES, "application/jsonl", "application/x-jsonlines", "application/json-lines"}
_UTF8_NAMES = {"utf-8", "utf8"}


class RequestError(Exception):
    """A request the server refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, error: str, detail: str):
        super().__init__(f"{status} {error}: {detail}")
        self.status, self.error, self.detail = status, error, detail

    def body(self) -> bytes:
        return orjson.dumps({"error": self.error, "detail": self.detail})


def parse_media_type(header: str | None) -> tuple[str, dict[str, str]]:
    """``"Text/CSV; charset=UTF-8"`` -> ``("text/csv", {"charset": "utf-8"})``."""
    if not header:
        return "", {}
    kind, *params = header.split(";")
    parsed = {}
    for param in params:
        name, _, value = param.partition("=")
        parsed[name.strip().lower()] = value.strip().strip('"').lower()
    return kind.strip().lower(), parsed


def _decode_utf8(body: bytes) -> str:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(
            400, "invalid_encoding", f"body is not valid UTF-8 at byte offset {exc.start}: {exc.reason}"
        ) from None
    return text.removeprefix("\ufeff")


def _csv_texts(text: str) -> list[str]:
    """One text per CSV record: RFC 4180 quoting, quoted newlines, no header, exactly one column.

    A blank line is a record with an empty text (Clarify must get one answer per line it sent).
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    texts: list[str] = []
    append = texts.append
    try:
        for row in reader:
            if len(row) == 1:
                append(row[0])
            elif not row:
                append("")
            else:
                raise RequestError(
                    400,
                    "too_many_columns",
                    f"record {len(texts) + 1} (line {reader.line_num}) has {len(row)} columns; "
                    "expected exactly one text column (quote texts that contain commas)",
                )
    except csv.Error as exc:
        raise RequestError(400, "malformed_csv", f"record {len(texts) + 1} (line {reader.line_num}): {exc}") from None
    return texts


def _jsonlines_texts(text: str) -> list[str]:
    """One text per line: a JSON string, or an object with a string field ``text``."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last record
    texts = []
    for number, line in enumerate(lines, start=1):
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise RequestError(400, "malformed_jsonlines", f"line {number}: {exc}") from None
        texts.append(_text_of(value, f"line {number}"))
    return texts


def _json_texts(text: str) -> list[str]:
    """BlazingText's request shape ``{"instances": [...]}`` (a ``configuration`` key is ignored)."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise RequestError(400, "malformed_json", str(exc)) from None
    if not isinstance(value, dict) or not isinstance(value.get("instances"), list):
        raise RequestError(400, "malformed_json", 'expected an object {"instances": [text, ...]}')
    return [_text_of(item, f"instance {i}") for i, item in enumerate(value["instances"], start=1)]


def _text_of(value: object, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        return value["text"]
    raise RequestError(400, "invalid_record", f'{where}: expected a string or {{"text": string}}')


_DECODERS = {CSV: _csv_texts, JSON: _json_texts, **dict.fromkeys(_JSONLINES_ALIASES, _jsonlines_texts)}


def decode_request(body: bytes, content_type: str | None) -> list[str]:
    """The texts in a request body, in order. Raises ``RequestError`` for anything else."""
    kind, params = parse_media_type(content_type)
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise RequestError(
            415,
            "unsupported_content_type",
            f"Content-Type {content_type!r} is not supported; use {CSV}, {JSONLINES} or {JSON}",
        )
    charset = params.get("charset", "utf-8")
    if charset not in _UTF8_NAMES:
        raise RequestError(415, "unsupported_charset", f"charset {charset!r} is not supported; send UTF-8")
    if not body:
        raise RequestError(400, "empty_body", "the request body is empty; send at least one record")
    return decoder(_decode_utf8(body))


def choose_accept(header: str | None) -> str:
    """The response type for an Accept header: JSON Lines by default, JSON when asked first."""
    if not header:
        return JSONLINES
    for part in header.split(","):
        kind, _ = parse_media_type(part)
        if kind in _JSONLINES_ALIASES or kind in ("*/*", "application/*"):
            return JSONLINES
        if kind == JSON:
            return JSON
    raise RequestError(406, "unsupported_accept", f"Accept {header!r} cannot be answered; use {JSONLINES} or {JSON}")


class ResponseEncoder:
    """Encodes (n, K) probability matrices as the contract's response bodies, one row per record.

    Built once per label list: the per-label prefixes are precomputed bytes, and the whole matrix
    goes through one orjson call, so encoding costs a few C-level joins per row.
    """

    def __init__(self, labels: Sequence[str]):
        self.labels = list(labels)
        self._prefixes = [b'{"label":' + orjson.dumps(lab) + b',"prob":[' for lab in self.labels]

    def _rows(self, probs: np.ndarray) -> list[bytes]:
        if len(probs) == 0:
            return []
        matrix = orjson.dumps(np.ascontiguousarray(probs), option=orjson.OPT_SERIALIZE_NUMPY)
        numbers = matrix[2:-2].split(b"],[")  # b"[[a,b],[c,d]]" -> [b"a,b", b"c,d"]
        prefixes = map(self._prefixes.__getitem__, probs.argmax(axis=1).tolist())
        return list(map(b"".join, zip(prefixes, numbers, repeat(b"]}"), strict=False)))

    def encode(self, probs: np.ndarray, accept: str = JSONLINES) -> bytes:
        rows = self._rows(probs)
        if accept == JSON:
            return b'{"predictions":[' + b",".join(rows) + b"]}"
        return b"\n".join(rows) + b"\n" if rows else b""


def encode_csv_batch(texts: Sequence[str]) -> bytes:
    """A batch as Clarify sends it: one double-quoted field per line, no header, UTF-8."""
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows([t] for t in texts)
    return out.getvalue().encode("utf-8")


def decode_jsonlines_response(body: bytes) -> list[dict]:
    """Parse a JSON Lines response into its records (for clients and tests)."""
    return [json.loads(line) for line in body.decode("utf-8").splitlines() if line]

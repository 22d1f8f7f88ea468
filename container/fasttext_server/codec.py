"""Request bodies in, response bodies out: the container's wire formats (docs/container.md).

Pure functions over bytes. Every rejection is a ``RequestError`` carrying the HTTP status, a short
error name and a detail that says where (record number or byte offset), so the HTTP shell can
answer it as JSON and keep serving.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat

import numpy as np
import orjson

from explain_workflow.contract import CsvRecords
from fasttext_server.normalize import PLACEHOLDER

CSV = "text/csv"
JSONLINES = "application/jsonlines"
JSON = "application/json"
# Aliases seen in the wild for JSON Lines; answered as application/jsonlines.
_JSONLINES_ALIASES = {JSONLINES, "application/jsonl", "application/x-jsonlines", "application/json-lines"}
_UTF8_NAMES = {"utf-8", "utf8"}
# csv's own field limit (131,072 characters by default) must never be the rule that refuses a text:
# a field cannot be longer than the body, and our own MAX_TEXT_CHARS speaks first.
csv.field_size_limit(2**31 - 1)
# The longest JSON number orjson writes for a float32 probability is 15 characters; 20 leaves room.
NUMBER_BYTES = 20


class RequestError(Exception):
    """A request the server refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, error: str, detail: str):
        super().__init__(f"{status} {error}: {detail}")
        self.status, self.error, self.detail = status, error, detail

    def body(self) -> bytes:
        return orjson.dumps({"error": self.error, "detail": self.detail})


@dataclass(frozen=True)
class Bounds:
    """What one request may hold. ``why`` names the settings behind ``max_records`` for the 413 detail."""

    max_records: int = 10_000
    max_text_chars: int = 5_000
    why: str = "MAX_RECORDS"

    def too_many(self) -> RequestError:
        return RequestError(
            413,
            "too_many_records",
            f"more than {self.max_records} records in one request (limit {self.max_records}: {self.why}); "
            "send the records in smaller batches",
        )

    def check_text(self, text: str, where: str) -> None:
        """Refuse a text over MAX_TEXT_CHARS; baseline placeholders such as <UNK> are not counted, so every
        variant Clarify derives from a text that prepare admitted is admitted too."""
        if len(text) <= self.max_text_chars:
            return
        length = len(PLACEHOLDER.sub("", text))
        if length > self.max_text_chars:
            raise RequestError(
                413,
                "text_too_long",
                f"{where} has {length} characters (not counting placeholders such as <UNK>), over the limit "
                f"of {self.max_text_chars} (MAX_TEXT_CHARS)",
            )


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


def _csv_texts(text: str, bounds: Bounds) -> list[str]:
    """One text per CSV record: RFC 4180 quoting, quoted newlines, no header, exactly one column; only LF (or CR LF)
    ends a record, a bare CR is text (the contract's one rule, which prepare applies to the user's file too).

    A blank line is a record with an empty text (Clarify must get one answer per line it sent).
    """
    reader = CsvRecords.of_text(text)
    texts: list[str] = []
    append, limit = texts.append, bounds.max_records
    try:
        for row in reader:
            if len(texts) == limit:
                raise bounds.too_many()
            if len(row) == 1:
                value = row[0]
                if len(value) > bounds.max_text_chars:
                    bounds.check_text(value, f"record {len(texts) + 1} (line {reader.line_num})")
                append(value)
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


def _jsonlines_texts(text: str, bounds: Bounds) -> list[str]:
    """One text per line: a JSON string, or an object with a string field ``text``."""
    if text.count("\n", 0, len(text) - 1) >= bounds.max_records:
        raise bounds.too_many()
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last record
    texts = []
    for number, line in enumerate(lines, start=1):
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise RequestError(400, "malformed_jsonlines", f"line {number}: {exc}") from None
        texts.append(_text_of(value, f"line {number}", bounds))
    return texts


def _json_texts(text: str, bounds: Bounds) -> list[str]:
    """BlazingText's request shape ``{"instances": [...]}`` (a ``configuration`` key is ignored)."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise RequestError(400, "malformed_json", str(exc)) from None
    if not isinstance(value, dict) or not isinstance(value.get("instances"), list):
        raise RequestError(400, "malformed_json", 'expected an object {"instances": [text, ...]}')
    if len(value["instances"]) > bounds.max_records:
        raise bounds.too_many()
    return [_text_of(item, f"instance {i}", bounds) for i, item in enumerate(value["instances"], start=1)]


def _text_of(value: object, where: str, bounds: Bounds) -> str:
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        value = value["text"]
    if isinstance(value, str):
        if len(value) > bounds.max_text_chars:
            bounds.check_text(value, where)
        return value
    raise RequestError(400, "invalid_record", f'{where}: expected a string or {{"text": string}}')


_DECODERS = {CSV: _csv_texts, JSON: _json_texts, **dict.fromkeys(_JSONLINES_ALIASES, _jsonlines_texts)}


def decode_request(body: bytes, content_type: str | None, bounds: Bounds | None = None) -> list[str]:
    """The texts in a request body, in order, within ``bounds``. Raises ``RequestError`` for anything else."""
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
    return decoder(_decode_utf8(body), bounds or Bounds())


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

    def max_rows(self, max_bytes: int) -> int:
        """How many rows always fit in ``max_bytes``, whatever the probabilities (either Accept type)."""
        row = max(map(len, self._prefixes)) + len(self.labels) * (NUMBER_BYTES + 1) + 3
        return max(1, (max_bytes - len(b'{"predictions":[]}')) // row)

    def _rows(self, probs: np.ndarray) -> list[bytes]:
        if len(probs) == 0:
            return []
        matrix = orjson.dumps(np.ascontiguousarray(probs), option=orjson.OPT_SERIALIZE_NUMPY)
        numbers = matrix[2:-2].split(b"],[")  # b"[[a,b],[c,d]]" -> [b"a,b", b"c,d"]
        prefixes = map(self._prefixes.__getitem__, probs.argmax(axis=1).tolist())
        return list(map(b"".join, zip(prefixes, numbers, repeat(b"]}"), strict=False)))

    def encode(self, probs: np.ndarray, accept: str = JSONLINES) -> bytes:
        return b"".join(self.encode_parts([probs], accept))

    def encode_parts(self, chunks: Iterable[np.ndarray], accept: str = JSONLINES) -> list[bytes]:
        """The body as consecutive parts, one per (n_i, K) block: a block's per-row objects are freed as soon
        as it is encoded, and the parts are sent as they are, never copied into one buffer."""
        if accept == JSON:
            parts = [b'{"predictions":[']
            for rows in map(self._rows, chunks):
                if rows:
                    parts += [b",", b",".join(rows)] if len(parts) > 1 else [b",".join(rows)]
            return [*parts, b"]}"]
        return [b"\n".join(rows) + b"\n" for rows in map(self._rows, chunks) if rows]


def encode_csv_batch(texts: Sequence[str]) -> bytes:
    """A batch as Clarify sends it: one double-quoted field per line, no header, UTF-8."""
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows([t] for t in texts)
    return out.getvalue().encode("utf-8")

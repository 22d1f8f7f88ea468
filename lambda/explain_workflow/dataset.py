"""Validate the user's CSV while streaming it, and write the frozen dataset Clarify reads.

Input: UTF-8 (a BOM is accepted), RFC 4180, a header row, the text column by name or 0-based index; only LF (or CR
LF) ends a row, a bare CR is text (``contract.CsvRecords``, the rule the container reads its requests by).
Output: ``row_id,text`` with no header row (the analysis config names the columns), every field
quoted; ``row_id`` is the 1-based data-row number in the user's file, so results join back.
Any problem raises ``InputValidationError`` saying what and where (row, line, byte).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from explain_workflow.contract import CsvRecords, Limits
from explain_workflow.errors import InputValidationError
from explain_workflow.evaluation import label_line

FROZEN_HEADERS = ["row_id", "text"]
# csv's own field limit (131,072 characters by default) must never decide: a column that is not explained may be
# as long as the file, and the explained one is held to limits.max_text_chars (the container's MAX_TEXT_CHARS).
csv.field_size_limit(2**31 - 1)
_CHUNK = 1 << 16


@dataclass(frozen=True)
class DatasetSummary:
    rows: int
    sha256: str  # of the user's bytes as read
    bytes: int


class _HashingReader(io.RawIOBase):
    """Counts and hashes the bytes read through it."""

    def __init__(self, raw: BinaryIO):
        self.raw, self.count, self.sha = raw, 0, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.count += n
        self.sha.update(data)
        return n


def first_invalid_utf8_byte(stream: BinaryIO) -> int | None:
    """Offset of the first byte that is not valid UTF-8, or None (read in chunks)."""
    pending, base = b"", 0  # ``base`` is the offset of pending[0] in the stream
    while chunk := stream.read(_CHUNK):
        data = pending + chunk
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.reason != "unexpected end of data" or exc.end != len(data):
                return base + exc.start
            pending, base = data[exc.start :], base + exc.start  # a character cut by the chunk edge
        else:
            pending, base = b"", base + len(data)
    return base if pending else None


def resolve_text_column(header: list[str], text_column: str | int) -> int:
    """Index of the text column: a header name, or a 0-based index (as int or digits)."""
    # ASCII digits only: "²" and "①" are digits to str.isdigit() but not to int() (a raw ValueError)
    if isinstance(text_column, int) or (str(text_column).isascii() and str(text_column).isdigit()):
        index = int(text_column)
        if index >= len(header):
            raise InputValidationError(
                f"text column index {index} is out of range: the header has {len(header)} columns {header}", row=0
            )
        return index
    if text_column not in header:
        raise InputValidationError(f"no column named {text_column!r}; the header has {header}", row=0)
    if header.count(text_column) > 1:
        raise InputValidationError(f"the header names {text_column!r} more than once: {header}", row=0)
    return header.index(text_column)


def iter_texts(stream: BinaryIO, text_column: str | int, limits: Limits) -> Iterator[tuple[int, str]]:
    """(row_id, text) for every data row, validated. Raises ``InputValidationError``."""
    for row_id, value, _ in iter_rows(stream, text_column, limits):
        yield row_id, value


def _label_index(header: list[str], label_column: str, text: int) -> int:
    """The label column (by name, as in training), never the text column itself."""
    if label_column not in header:
        raise InputValidationError(f"no label column named {label_column!r}; the header has {header}", row=0)
    if header.count(label_column) > 1:
        raise InputValidationError(f"the header names {label_column!r} more than once: {header}", row=0)
    index = header.index(label_column)
    if index == text:
        raise InputValidationError(f"the label column {label_column!r} is the text column", row=0)
    return index


def iter_rows(
    stream: BinaryIO, text_column: str | int, limits: Limits, label_column: str | None = None
) -> Iterator[tuple[int, str, str | None]]:
    """(row_id, text, label) for every data row, validated; label is None without a label column or for an empty
    cell (white space stripped). Raises ``InputValidationError``."""
    reader = CsvRecords.of_stream(io.BufferedReader(stream, _CHUNK), encoding="utf-8-sig")
    try:
        header = next(reader, None)
        if header is None:
            raise InputValidationError("the file is empty: expected a header row and at least one data row")
        if any("\r" in name.replace("\r\n", "") for name in header):
            raise InputValidationError(
                "the header row holds a bare CR: only LF or CR LF ends a row (a bare CR is part of a text), so a "
                "file whose lines end with CR alone is one row; save it with LF or CR LF line ends",
                row=0,
            )
        column = resolve_text_column(header, text_column)
        labelled = _label_index(header, label_column, column) if label_column is not None else None
        row_id = 0
        for row in reader:
            row_id += 1
            if row_id > limits.max_rows:
                raise InputValidationError(
                    f"more than {limits.max_rows} data rows (the limit limits.max_rows); split the file",
                    row=row_id,
                    line=reader.line_num,
                )
            if len(row) != len(header):
                raise InputValidationError(
                    f"{len(row)} fields where the header has {len(header)}", row=row_id, line=reader.line_num
                )
            value = row[column]
            if not value.strip():
                raise InputValidationError("the text is empty", row=row_id, line=reader.line_num)
            if len(value) > limits.max_text_chars:
                raise InputValidationError(
                    f"the text has {len(value)} characters, over the limit of {limits.max_text_chars} "
                    "(limits.max_text_chars)",
                    row=row_id,
                    line=reader.line_num,
                )
            yield row_id, value, (row[labelled].strip() or None) if labelled is not None else None
        if row_id == 0:
            raise InputValidationError("the file has a header row but no data rows", row=1)
    except csv.Error as exc:
        raise InputValidationError(f"malformed CSV: {exc}", line=reader.line_num) from None
    except UnicodeDecodeError:
        raise InputValidationError("the file is not valid UTF-8", line=reader.line_num) from None


def prediction_line(row_id: int, text: str) -> bytes:
    """One line of predict/input/rows.jsonl, the Batch Transform input (its filter sends only ``text``)."""
    return (json.dumps({"row_id": row_id, "text": text}, ensure_ascii=False) + "\n").encode("utf-8")


def freeze(
    source: BinaryIO,
    target: BinaryIO,
    text_column: str | int,
    limits: Limits,
    rows_target: BinaryIO | None = None,
    label_column: str | None = None,
    labels_target: BinaryIO | None = None,
) -> DatasetSummary:
    """Validate ``source`` and write the frozen dataset to ``target`` (and the same rows as JSON lines to
    ``rows_target``, for the model's own predictions; with ``label_column``, each row's label to ``labels_target``,
    never to the dataset); returns what was read."""
    counted = _HashingReader(source)
    out = io.TextIOWrapper(target, encoding="utf-8", newline="", write_through=True)
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    rows = 0
    for row_id, value, label in iter_rows(counted, text_column, limits, label_column):
        writer.writerow((row_id, value))
        if rows_target is not None:
            rows_target.write(prediction_line(row_id, value))
        if labels_target is not None:
            labels_target.write(label_line(row_id, label))
        rows += 1
    out.flush()
    out.detach()  # leave ``target`` open for the caller
    return DatasetSummary(rows, counted.sha.hexdigest(), counted.count)


def read_frozen(stream: BinaryIO) -> Iterator[tuple[int, str]]:
    """(row_id, text) from a frozen dataset, streaming."""
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
    for row in csv.reader(text, strict=True):
        yield int(row[0]), row[1]

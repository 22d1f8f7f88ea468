"""Inputs the tests make themselves: the sample texts and labels, and the one CSV writer."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path

LABELS = ["NaturalPlace", "Film", "Animal"]
# markup, a script, a non-ASCII letter, doubled spaces and a line break: each must come through unchanged
TEXTS = [
    "The river flows into a lake.",
    "A film directed by an old friend, <b>bold</b> & <script>document.title='pwned'</script>",
    "Zürich:  a glacier\nand a valley",
]


def csv_rows(header: Sequence[str], rows: Iterable[Sequence]) -> bytes:
    """A CSV file as Python's csv module writes it (CRLF line ends, minimal quoting)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence]) -> Path:
    path.write_bytes(csv_rows(header, rows))
    return path


def csv_bytes(texts: Iterable[str], label: str = "x") -> bytes:
    """A labelled file (label, text), every row labelled ``label``: what a user uploads to be explained."""
    return csv_rows(["label", "text"], ([label, text] for text in texts))


def write_texts(path: Path, texts: Iterable[str], prefix: str = "r") -> Path:
    """An (id, text) file with ids ``r1``, ``r2``, ...: what local mode is given to explain."""
    return write_csv(path, ["id", "text"], ([f"{prefix}{i}", text] for i, text in enumerate(texts, start=1)))

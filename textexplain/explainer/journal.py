"""The rows a local run has explained so far, kept on disk so an interrupted run resumes.

One JSON line per explained row, appended and flushed as each row is done: its row id, the
model's outputs on the whole and the fully masked text, and the attributions, all as float64
written in their shortest round-trip form (so a restored row is bit-identical to the computed
one). The first line names what the rows were computed with; a journal of another run, another
seed or another estimator is discarded. A line cut short by a kill is dropped on reading.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

FORMAT = 1


@dataclass(frozen=True)
class Entry:
    row_id: int
    f_all: np.ndarray
    f_none: np.ndarray
    attributions: np.ndarray  # (M, K)


def _encode(entry: Entry) -> bytes:
    body = {
        "row_id": entry.row_id,
        "f_all": entry.f_all,
        "f_none": entry.f_none,
        "attributions": entry.attributions,
    }
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"


def _decode(line: bytes, k: int) -> Entry:
    body = orjson.loads(line)
    attributions = np.array(body["attributions"], dtype=np.float64).reshape(-1, k)
    return Entry(
        int(body["row_id"]),
        np.array(body["f_all"], dtype=np.float64),
        np.array(body["f_none"], dtype=np.float64),
        attributions,
    )


class Journal:
    """``with Journal(path, identity, k) as journal: journal.done; journal.add(entry)``."""

    def __init__(self, path: str | Path, identity: dict, k: int):
        self.path, self.k = Path(path), k
        self.header = orjson.dumps({"journal": FORMAT, "identity": identity}, option=orjson.OPT_SORT_KEYS) + b"\n"
        self.done: dict[int, Entry] = {}
        self._fh = None

    def _read(self) -> int:
        """Entries from an existing journal of the same identity; returns the byte length worth keeping."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return 0
        if not data.startswith(self.header):
            return 0
        keep = len(self.header)
        while True:
            end = data.find(b"\n", keep)
            if end < 0:
                break  # a line cut short by a kill: recomputed
            try:
                entry = _decode(data[keep:end], self.k)
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                break
            self.done[entry.row_id] = entry
            keep = end + 1
        return keep

    def open(self) -> Journal:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keep = self._read()
        if keep == 0:
            self.done.clear()
            self._fh = self.path.open("wb")
            self._fh.write(self.header)
        else:
            self._fh = self.path.open("r+b")
            self._fh.truncate(keep)
            self._fh.seek(keep)
        self._fh.flush()
        return self

    def add(self, entry: Entry) -> None:
        """Append one row; flushed to the OS at once, so it survives a SIGKILL of this process."""
        self._fh.write(_encode(entry))
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def remove(self) -> None:
        self.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def __enter__(self) -> Journal:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

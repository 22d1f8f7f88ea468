"""The AG News sample the benchmarks train and explain on, read in place and never copied into the repository.

A folder with ``train.csv`` and ``explain.csv`` (class index, text; no header) and ``meta.txt`` (``index: name``
lines): the folder ``AGNEWS_DIR`` names, else ``../shared/data/agnews`` beside the checkout. Benchmarks skip it,
saying so, when it is not there.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

FOLDER = Path(os.environ.get("AGNEWS_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data" / "agnews")


def rows(name: str, folder: Path = FOLDER) -> list[tuple[str, str]]:
    """(class name, text) of every row of ``name`` (train.csv or explain.csv); "Sci/Tech" becomes "SciTech", a
    fastText label being one token without a slash."""
    names = dict(line.split(": ", 1) for line in (folder / "meta.txt").read_text().splitlines() if ": " in line)
    with (folder / name).open(encoding="utf-8", newline="") as fh:
        return [(names[index].replace("/", ""), text) for index, text in csv.reader(fh)]

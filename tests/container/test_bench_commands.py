"""The benchmark command docs/container.md shows for hostile load, run as written (with small sizes appended), so
the documented command cannot rot."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "container.md").read_text(encoding="utf-8")


def test_hostile_bench_prints_every_figure():
    (command,) = sorted(set(re.findall(r"`(python -m bench hostile[^`]*)`", DOC)))
    args = shlex.split(command)
    small = ["--slow-clients", "2", "--seconds", "3", "--records", "2000", "--queued", "6", "--timeout", "6"]
    small += ["--idle-connections", "600"]  # past 2 workers x 256: the flood is shed; the bench raises its own fd limit
    done = subprocess.run([sys.executable, *args[1:], *small], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert re.search(r"slow clients: 2 for 3 s -> /ping (\d+)/\1 answered", out), out
    assert re.search(r"another client: (\d+)/\1 500-record requests answered 200", out), out
    assert "slow clients got ['HTTP/1.1 408 Request Timeout (json)']" in out
    assert re.search(r"memory: 2000 records .* -> 200 in [\d.]+ s, peak RSS growth -?\d+ bytes/record", out), out
    assert re.search(r"tiny records: \d+ bytes of 2-byte records -> 413 in", out), out
    assert "SIGTERM: 6/6 requests answered 200, exit code 0" in out
    assert re.search(r"idle flood: 600 idle connections for 3 s -> /ping (\d+)/\1 answered within 2 s", out), out

"""The engines benchmark as docs/engine.md shows it, run as written (with a tiny size appended), so the documented
command cannot rot. Figures are not asserted: benchmarks measure, tests check that every figure is printed."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "engine.md").read_text(encoding="utf-8")
NUMBER = r"[\d.]+"


def test_engines_bench_prints_both_paths_and_both_ratios():
    (command,) = sorted(set(re.findall(r"`(python -m bench engines[^`]*)`", DOC)))
    args = shlex.split(command)
    assert args[:4] == ["python", "-m", "bench", "engines"]
    small = ["--records", "20", "--num-samples", "40", "--repeat", "1"]
    done = subprocess.run([sys.executable, *args[1:], *small], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert re.search(rf"^load {NUMBER} {NUMBER} {NUMBER} \(1, 5, 15 min\) before", out, re.M), out
    assert re.search(r": 20 records \(.* 40 samples per record .* largest attribution difference", out), out
    clarify = rf"\(a\) clarify-style.*500-row requests: wall +{NUMBER} s x 2 instances = {NUMBER} instance-s/record"
    assert re.search(clarify, out), out
    for workers in ("1 worker :", "2 workers:"):
        assert re.search(rf"\(b\) builtin job, {workers} +wall +{NUMBER} s x 1 instance += {NUMBER} instance-s", out)
    assert re.search(r"job.s fixed cost .*: wall [\d.]+ s", out), out
    assert re.search(rf"builtin \(2 workers\) vs clarify-style: {NUMBER}x fewer .*\(target >= 4x: (met|MISSED)\)", out)
    assert re.search(rf"2 workers vs 1: {NUMBER}x the records per second \(target >= 1.7x: (met|MISSED)\)", out), out
    # the same records at the same budget: both paths' attributions agree (to the HTTP decimal form)
    gap = float(re.search(r"largest attribution difference between the paths (\S+)", out).group(1))
    assert gap < 1e-6, out

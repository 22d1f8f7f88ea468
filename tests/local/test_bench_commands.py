"""The explainer benchmark commands of docs/local.md, run as written (the speed bench with fewer records), so a
documented command cannot rot. Figures are not asserted: benchmarks measure, tests check behaviour."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from bench import shared_sample

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "local.md").read_text(encoding="utf-8")
AGNEWS = shared_sample.FOLDER


def documented(prefix: str) -> list[str]:
    return sorted(set(re.findall(rf"`({re.escape(prefix)}[^`]*)`", DOC)))


def run(command: str, *extra: str) -> str:
    args = shlex.split(command)
    assert args[0] == "python"
    done = subprocess.run([sys.executable, *args[1:], *extra], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_speed_bench_prints_the_ratio_to_the_model_alone():
    (command,) = documented("python -m bench explain")
    out = run(command, "--records", "6", "--num-samples", "200", "--repeat", "1")
    assert re.search(r"whole explain, model in-process: .* ratio [\d.]+x", out), out
    assert re.search(r"whole explain through the server: .* ratio [\d.]+x", out), out


@pytest.mark.skipif(not AGNEWS.is_dir(), reason=f"no AG News sample at {AGNEWS} (bench/shared_sample.py)")
def test_quick_comparison_prints_every_method_at_every_budget():
    (command,) = documented("python -m bench compare --quick")
    out = run(command)
    for title in ("short texts (exact Shapley values)", "long texts"):
        assert title in out
    for method in ("ours", "kernel-l1off", "kernel-default", "partition", "previous"):
        for budget in (100, 300, 1000):
            assert re.search(rf"^{re.escape(method)}\s+{budget}\s+\d+\s", out, re.M), (method, budget, out)


@pytest.mark.skipif(not AGNEWS.is_dir(), reason=f"no AG News sample at {AGNEWS} (bench/shared_sample.py)")
def test_full_comparison_command_runs_at_a_small_size():
    assert "`python -m bench compare`" in DOC  # the full one, without options
    small = ("--short", "1", "--long", "1", "--seeds", "2", "--reference-permutations", "50", "--budgets", "100")
    small += ("--methods", "ours,kernel-l1off")
    out = run("python -m bench compare", *small)
    assert re.search(r"^ours\s+100\s+102\s", out, re.M), out

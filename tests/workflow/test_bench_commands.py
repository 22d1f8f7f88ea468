"""The postprocess benchmark commands of docs/workflow.md, run as written (small sizes where the docs give sizes as
options), so a documented command cannot rot."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "workflow.md").read_text(encoding="utf-8")
AGNEWS = ROOT.parent / "shared" / "data" / "agnews"


def documented(prefix: str) -> list[str]:
    return sorted(set(re.findall(rf"`({re.escape(prefix)}[^`]*)`", DOC)))


def run(command: str) -> str:
    args = shlex.split(command)
    assert args[0] == "python"
    done = subprocess.run([sys.executable, *args[1:]], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize("storage", ["files", "s3"])
def test_postprocess_bench_prints_records_per_second(storage):
    commands = [c for c in documented("python -m bench postprocess --sizes") if f"--storage {storage}" in c]
    assert commands, f"docs/workflow.md shows no postprocess bench command for {storage}"
    out = run(re.sub(r"--sizes \S+", "--sizes 200", commands[0]))
    assert re.search(r"^\s+200\s+[\d.]+\s+[\d,]+\s+[\d.]+", out, re.M), out


@pytest.mark.browser
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_report_bench_prints_the_time_to_interactive():
    """docs/workflow.md's report benchmark, at 60 records and 2 loads: it prints the size and the time it measured."""
    (command,) = documented("python -m bench report")
    out = run(command.replace("--records 1000", "--records 60").replace("--loads 5", "--loads 2"))
    size, median, slowest = re.search(r"^\s+60\s+14\s+([\d,]+)\s+(\d+)\s+(\d+)$", out, re.M).groups()
    assert int(size.replace(",", "")) > 10_000, out
    assert 0 < int(median) <= int(slowest), out


@pytest.mark.skipif(not AGNEWS.is_dir(), reason="the AG News sample is not beside the project (../shared/data/agnews)")
def test_agnews_class_summary_command_as_documented():
    (command,) = documented("python -m bench postprocess --agnews")
    out = run(command)
    before = float(re.search(r"top 10, before: (\d+)%", out).group(1))
    after = float(re.search(r"top 10, after: (\d+)%", out).group(1))
    assert after < before / 2, out
    # the figures docs/workflow.md publishes are this command's. Training and sampling are seeded on one thread, but
    # fastText is compiled from source with -march=native, so another CPU may train a slightly different model:
    # a token or two of a class's top 10 may move (10 points each in one class, 2.5 in the mean of four)
    documented_row = re.search(r"^\| mean \| \| \*\*(\d+)%\*\* \| \*\*(\d+)%\*\*", DOC, re.M)
    assert documented_row, "docs/workflow.md has no mean row for the class-summary comparison"
    shown = float(documented_row.group(1)), float(documented_row.group(2))
    assert abs(before - shown[0]) <= 10, (shown, out)
    assert abs(after - shown[1]) <= 10, (shown, out)

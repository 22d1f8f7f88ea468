"""The report opened in real headless Chromium: charts and highlights render, injected script does not run."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from explain_workflow.postprocess import postprocess_run
from explain_workflow.storage import read_bytes
from tests.support.clarify_output import write_clarify_output

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/ensure-system-packages.sh)"),
]


def chromium(tmp_path: Path, *args: str) -> str:
    profile = tmp_path / "profile"
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout


def test_report_renders_and_escapes(tmp_path, storage, settings, prepared):
    layout, run = prepared
    write_clarify_output(storage, layout, run)
    postprocess_run(storage, layout.run_id, settings)
    page = tmp_path / "report.html"
    page.write_bytes(read_bytes(storage, layout.bucket, layout.results_prefix + "report.html"))

    dom = chromium(tmp_path, "--virtual-time-budget=2000", "--dump-dom", page.as_uri())
    assert "<title>Explanations" in dom
    assert "pwned" not in dom.split("<title>")[1].split("</title>")[0]  # the injected script never ran
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in dom  # it shows as text
    assert dom.count('<svg class="bars"') >= 3
    assert dom.count('class="tok"') == sum(len(e.units) for e in run.explanations)
    assert 'style="background: rgba(' in dom  # the script coloured the units

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    chromium(tmp_path, "--window-size=1200,1600", f"--screenshot={shot}", page.as_uri())
    assert shot.stat().st_size > 10_000

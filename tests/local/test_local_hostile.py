"""The local mode under a careless user: concurrent runs on one --out, and a symlink planted in it. Real
``textexplain explain`` processes on a real model trained in the session."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.data import TEXTS, csv_bytes


def explain(trained_model, data, out, cwd) -> subprocess.Popen:
    args = ["explain", "--model", str(trained_model.tarball), "--data", str(data), "--num-samples", "8",
            "--out", str(out)]  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "textexplain.cli", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def test_four_concurrent_runs_on_one_out_all_succeed_with_one_manifest(trained_model, tmp_path):
    """Failed before the fix: 3 of 4 failed (ENOENT renaming a .partial-* file another run had reaped) and a losing
    run wrote FAILED over the winner's SUCCEEDED manifest."""
    data = tmp_path / "texts.csv"
    data.write_bytes(csv_bytes(TEXTS * 4))
    out = tmp_path / "out"
    runs = [explain(trained_model, data, out, tmp_path) for _ in range(4)]
    done = [(p.wait(timeout=600), p.stdout.read(), p.stderr.read()) for p in runs]
    assert [code for code, _, _ in done] == [0, 0, 0, 0], [err[-800:] for _, _, err in done]
    (manifest,) = out.rglob("manifest.json")
    assert json.loads(manifest.read_text())["status"] == "SUCCEEDED"
    assert not list(out.rglob(".partial-*"))


def test_a_symlink_planted_in_out_is_never_written_through(trained_model, tmp_path):
    """Failed before the fix: shutil.copyfile followed the planted link and overwrote the file outside --out
    before the storage's root check ran."""
    data = tmp_path / "texts.csv"
    data.write_bytes(csv_bytes(TEXTS))
    outside = tmp_path / "precious.txt"
    outside.write_text("not yours")
    out = tmp_path / "out"
    (out / "input" / "incoming").mkdir(parents=True)
    (out / "input" / "incoming" / "texts.csv").symlink_to(outside)
    run = explain(trained_model, data, out, tmp_path)
    code, err = run.wait(timeout=300), run.stderr.read()
    assert code != 0
    assert "escapes the storage root" in err, err
    assert "Traceback" not in err
    assert outside.read_text() == "not yours"

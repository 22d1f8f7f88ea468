"""The small defects hostile input found, each reproduced with the real code on real files and processes."""

from __future__ import annotations

import json

import pytest

from explain_workflow.contract import SEED_MAX, ClarifyOptions, Limits, RunRequest, WorkflowSettings
from explain_workflow.errors import InputValidationError
from explain_workflow.prepare import prepare_run
from explain_workflow.request import apply_overrides
from explain_workflow.storage import FileStorage
from tests.support.cli import cli
from tests.support.data import LABELS, TEXTS, csv_bytes

SETTINGS = WorkflowSettings(results_bucket="results", labels=LABELS, model_name="m", defaults={"num_samples": 8})


@pytest.mark.parametrize("seed", [10**29, -1, SEED_MAX + 1])
def test_a_seed_outside_32_bits_is_refused_naming_the_bounds(seed):
    """Failed before the fix: any whole number passed; 1e29 crashed the local journal with a traceback."""
    with pytest.raises(InputValidationError, match=f"seed must be a whole number from 0 to {SEED_MAX}"):
        apply_overrides(ClarifyOptions(), Limits(), {"seed": seed})


def test_the_largest_seed_is_taken():
    assert apply_overrides(ClarifyOptions(), Limits(), {"seed": SEED_MAX})[0].seed == SEED_MAX


def test_the_cli_refuses_a_huge_seed_in_one_line(tmp_path):
    """Failed before the fix: ``--seed 1e29`` (as digits) reached the journal and ended in a traceback."""
    data = tmp_path / "t.csv"
    data.write_bytes(csv_bytes(TEXTS))
    done = cli("explain", "--model", "m.tar.gz", "--data", str(data), "--seed", str(10**29), cwd=tmp_path)
    assert done.returncode == 2
    assert f"must be from 0 to {SEED_MAX}" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_superscript_digit_as_text_column_is_a_clear_failure(tmp_path):
    """Failed before the fix: "²".isdigit() is true, so int("²") raised a raw ValueError out of prepare."""
    storage = FileStorage(tmp_path / "s3")
    storage.put("input", "incoming/s.csv", csv_bytes(TEXTS), "text/csv")
    request = RunRequest(bucket="input", key="incoming/s.csv", overrides={"text_column": "²"})
    with pytest.raises(InputValidationError, match="no column named '²'"):
        prepare_run(storage, request, SETTINGS)
    (manifest,) = (tmp_path / "s3" / "results").rglob("manifest.json")
    assert json.loads(manifest.read_text())["status"] == "FAILED"

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


# ---- postprocess: lines without join values ----


def _without_join(run):
    from explain_workflow.clarify_format import LocalExplanation

    run.explanations[:] = [LocalExplanation(e.units, None) for e in run.explanations]
    return run


def test_swapped_lines_without_join_values_fail_the_run_naming_the_line(storage, settings, prepared):
    """Failed before the fix: the two swapped lines were published as SUCCEEDED, complete, each row carrying the
    other row's units (counted only as misaligned units)."""
    from explain_workflow.clarify_format import ClarifyOutputError
    from explain_workflow.postprocess import postprocess_run
    from explain_workflow.runs import read_manifest
    from tests.support.clarify_output import write_clarify_output

    layout, run = prepared
    run = _without_join(run)
    run.explanations[0], run.explanations[1] = run.explanations[1], run.explanations[0]
    write_clarify_output(storage, layout, run)
    with pytest.raises(ClarifyOutputError, match="does not match row 1 by its content"):
        postprocess_run(storage, layout.run_id, settings)
    manifest = read_manifest(storage, layout)
    assert manifest["status"] == "FAILED"
    assert manifest["where"]["line"] == 1
    assert "out.jsonl" in manifest["where"]["file"]


def test_lines_without_join_values_in_order_are_matched_by_content(storage, settings, prepared):
    from explain_workflow.postprocess import postprocess_run
    from tests.support.clarify_output import write_clarify_output

    layout, run = prepared
    write_clarify_output(storage, layout, _without_join(run))
    answer = postprocess_run(storage, layout.run_id, settings)
    assert (answer.status, answer.records) == ("SUCCEEDED", 3)

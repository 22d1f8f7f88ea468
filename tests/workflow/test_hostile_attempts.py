"""A manifest is never replaced by an older attempt's: the real handlers and the manifest writer against a real S3 API
(moto server on 127.0.0.1), with a late step of attempt 1 arriving after attempt 2 has been prepared and has
failed."""

from __future__ import annotations

import json

import pytest

from explain_workflow import aws
from explain_workflow.clarify_format import SHAP_DIR
from explain_workflow.contract import RunStatus, WorkflowSettings
from explain_workflow.errors import ClarifyOutputError
from explain_workflow.runs import RunLayout, StaleAttemptError, read_manifest, write_manifest
from tests.support.clarify_output import known_run, write_clarify_output
from tests.support.data import LABELS, TEXTS, csv_bytes
from tests.support.lambda_context import Context
from tests.support.s3 import all_keys, handlers_s3, upload


@pytest.fixture
def s3(moto_url, monkeypatch):
    settings = WorkflowSettings(results_bucket="results", labels=LABELS, model_name="text-model")
    with handlers_s3(moto_url, monkeypatch, settings) as client:
        yield client


def _manifest(client, run_id: str) -> dict:
    return json.loads(client.get_object(Bucket="results", Key=f"runs/{run_id}/manifest.json")["Body"].read())


def test_a_late_postprocess_of_attempt_1_leaves_attempt_2s_manifest(s3):
    """Failed before the fix: attempt 1's postprocess, invoked late (a retried invocation) after attempt 2 had been
    prepared and had failed, read attempt 2's request.json and published the outputs it found as a SUCCEEDED run,
    replacing attempt 2's FAILED manifest."""
    from postprocess.handler import handler as postprocess
    from prepare.handler import handler as prepare
    from record_failure.handler import handler as record_failure

    event = upload(s3, "incoming/attempts.csv", csv_bytes(TEXTS))
    first = prepare(event, Context())
    assert first["attempt"] == 1
    record_failure({"request": {**event, "prepare": first}, "error": {"Error": "JobTimedOut"}}, Context())
    second = prepare(event, Context())  # the run is FAILED: a new attempt
    assert (second["run_id"], second["attempt"]) == (first["run_id"], 2)
    layout = RunLayout("results", second["run_id"])
    storage = aws.storage()
    run = known_run(TEXTS, LABELS, seed=2)
    write_clarify_output(storage, layout, run)
    storage.put("results", layout.clarify_prefix + SHAP_DIR + "out.jsonl", b"{not json\n", "x")
    with pytest.raises(ClarifyOutputError):
        postprocess(second, Context())
    failed = _manifest(s3, second["run_id"])
    assert (failed["status"], failed["attempt"], failed["stage"]) == ("FAILED", 2, "postprocess")

    write_clarify_output(storage, layout, run)  # well-formed output lands late, from attempt 1's job
    with pytest.raises(StaleAttemptError, match="attempt 1 reached postprocess after attempt 2"):
        postprocess(first, Context())
    assert _manifest(s3, second["run_id"]) == failed  # attempt 2's word stands, unchanged
    assert not any(k.startswith(layout.results_prefix) for k in all_keys(s3, "results"))  # nothing published
    # its catch-all then records nothing over it either
    answer = record_failure({"request": {**event, "prepare": first}, "error": {"Error": "Stale"}}, Context())
    assert (answer["attempt"], answer["reason"]) == (2, failed["reason"])
    assert _manifest(s3, second["run_id"]) == failed


def test_the_manifest_writer_refuses_to_replace_a_newer_attempts_manifest(s3):
    """The one writer every step uses: a manifest of attempt 1 never goes over attempt 3's (S3 keeps attempt 3's)."""
    storage = aws.storage()
    layout = RunLayout("results", "some-run")
    newer = write_manifest(storage, layout, RunStatus.FAILED, stage="postprocess", attempt=3, reason="three")
    with pytest.raises(StaleAttemptError, match="attempt 3's; attempt 1 does not replace it"):
        write_manifest(storage, layout, RunStatus.SUCCEEDED, attempt=1)
    assert read_manifest(storage, layout) == json.loads(json.dumps(newer))
    later = write_manifest(storage, layout, RunStatus.FAILED, stage="workflow", attempt=4, reason="four")
    assert read_manifest(storage, layout)["attempt"] == later["attempt"] == 4

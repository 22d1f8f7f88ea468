"""Fixtures for the workflow tier: settings, a prepared run on the file-system storage."""

from __future__ import annotations

import pytest

from explain_workflow.contract import RunRequest, WorkflowSettings
from explain_workflow.prepare import prepare_run
from explain_workflow.runs import RunLayout
from explain_workflow.storage import FileStorage
from tests.support.clarify_output import known_run
from tests.support.data import LABELS, TEXTS, csv_bytes


@pytest.fixture
def settings() -> WorkflowSettings:
    return WorkflowSettings(results_bucket="results", labels=LABELS, model_name="m", defaults={"num_samples": 8})


@pytest.fixture
def storage(tmp_path) -> FileStorage:
    return FileStorage(tmp_path / "s3")


@pytest.fixture
def prepared(storage, settings):
    storage.put("input", "incoming/sample.csv", csv_bytes(TEXTS), "text/csv")
    result = prepare_run(storage, RunRequest(bucket="input", key="incoming/sample.csv"), settings)
    layout = RunLayout(settings.results_bucket, result.run_id)
    return layout, known_run(TEXTS, LABELS, seed=3)

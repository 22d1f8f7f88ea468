"""Requests and races a careless or hostile user makes, against the real handlers and a real S3 API (moto's server
on 127.0.0.1, with the loopback fault proxy where a race must fall between two calls)."""

from __future__ import annotations

import io
import json

import boto3
import pytest

from explain_workflow import aws
from explain_workflow.contract import RunRequest, WorkflowSettings
from explain_workflow.dataset import read_frozen
from explain_workflow.errors import InputValidationError
from explain_workflow.prepare import prepare_run
from explain_workflow.runs import RunLayout, read_manifest
from explain_workflow.storage import CLIENT_CONFIG, FileStorage, S3Storage
from tests.support.data import LABELS, TEXTS, csv_bytes
from tests.support.faulty_s3 import Fault, faulty_proxy
from tests.support.lambda_context import Context
from tests.support.s3 import all_keys, handlers_s3, upload

SETTINGS = WorkflowSettings(results_bucket="results", labels=LABELS, model_name="text-model")
SECOND = ["a second upload replaced the first", "nobody checked this one"]


@pytest.fixture
def s3(moto_url, monkeypatch):
    with handlers_s3(moto_url, monkeypatch, SETTINGS) as client:
        yield client


def _prepare_through(proxy: str, monkeypatch, event: dict) -> dict:
    from prepare.handler import handler as prepare

    client = boto3.client("s3", endpoint_url=proxy, region_name="us-east-1", config=CLIENT_CONFIG)
    with monkeypatch.context() as patch:
        patch.setattr(aws, "storage", lambda: S3Storage(client))
        return prepare(event, Context())


def test_an_object_overwritten_between_check_and_read_fails_the_run_naming_it(s3, moto_url, monkeypatch):
    """Failed before the fix: prepare's GET had no IfMatch, so the run pinned to upload 1's ETag froze upload 2."""
    event = upload(s3, "incoming/raced.csv", csv_bytes(TEXTS))

    def overwrite():
        s3.put_object(Bucket="input", Key="incoming/raced.csv", Body=csv_bytes(SECOND))

    with faulty_proxy(moto_url) as (proxy, plan):
        plan.faults.append(Fault("before", "GET", lambda path: "raced.csv" in path, overwrite))
        with pytest.raises(InputValidationError, match="changed after it was checked"):
            _prepare_through(proxy, monkeypatch, event)
    assert plan.injected, "the overwrite never fell between the HEAD and the GET"
    runs = [k for k in all_keys(s3, "results") if k.endswith("manifest.json")]
    (manifest_key,) = runs
    manifest = json.loads(s3.get_object(Bucket="results", Key=manifest_key)["Body"].read())
    assert manifest["status"] == "FAILED"
    assert event["etag"] in manifest["reason"]
    assert "incoming/raced.csv" in manifest["reason"]
    assert not [k for k in all_keys(s3, "results") if k.endswith("dataset.csv")]


def test_a_versioned_object_overwritten_in_between_is_read_at_its_checked_version(s3, moto_url, monkeypatch):
    s3.put_bucket_versioning(Bucket="input", VersioningConfiguration={"Status": "Enabled"})
    event = upload(s3, "incoming/versioned.csv", csv_bytes(TEXTS))
    assert event["version_id"]

    def overwrite():
        s3.put_object(Bucket="input", Key="incoming/versioned.csv", Body=csv_bytes(SECOND))

    with faulty_proxy(moto_url) as (proxy, plan):
        plan.faults.append(Fault("before", "GET", lambda path: "versioned.csv" in path, overwrite))
        prepared = _prepare_through(proxy, monkeypatch, event)
    assert plan.injected
    layout = RunLayout("results", prepared["run_id"])
    frozen = s3.get_object(Bucket="results", Key=layout.dataset_key)["Body"].read()
    assert [text for _, text in read_frozen(io.BytesIO(frozen))] == TEXTS


class _OverwrittenAfterHead(FileStorage):
    """The local storage, with another writer replacing the input right after prepare's check of it."""

    def head(self, bucket, key, version_id=None):
        info = super().head(bucket, key, version_id)
        if key.startswith("incoming/"):
            super().put(bucket, key, csv_bytes(SECOND), "text/csv")
        return info


def test_the_local_storage_refuses_a_file_replaced_after_its_check(tmp_path):
    """Failed before the fix: FileStorage.open ignored what head() had seen, so the replacement was frozen."""
    storage = _OverwrittenAfterHead(tmp_path / "s3")
    storage.put("input", "incoming/local.csv", csv_bytes(TEXTS), "text/csv")
    with pytest.raises(InputValidationError, match="changed after it was checked") as info:
        prepare_run(storage, RunRequest(bucket="input", key="incoming/local.csv"), SETTINGS)
    assert "local.csv" in info.value.reason
    (manifest,) = (tmp_path / "s3" / "results").rglob("manifest.json")
    assert json.loads(manifest.read_text())["status"] == "FAILED"
    layout = RunLayout("results", manifest.parent.name)
    assert read_manifest(storage, layout)["stage"] == "prepare"


# ---- prepare: one check of what a request may name (the starter's: tests/workflow/test_start_run.py) ----


def test_prepare_fails_a_request_naming_what_it_may_not_read(tmp_path):
    """The same check in prepare (an execution started by hand): a FAILED manifest, nothing read."""
    storage = FileStorage(tmp_path / "s3")
    storage.put("results", "runs/other/input/dataset.csv", csv_bytes(TEXTS), "text/csv")
    request = RunRequest(bucket="results", key="runs/other/input/dataset.csv")
    with pytest.raises(InputValidationError, match="results bucket"):
        prepare_run(storage, request, SETTINGS)
    manifests = [json.loads(p.read_text()) for p in (tmp_path / "s3" / "results").rglob("manifest.json")]
    assert [m["status"] for m in manifests] == ["FAILED"]
    assert "results bucket" in manifests[0]["reason"]

"""Two writers of one run's manifest racing: attempt 2's manifest is written between attempt 1's read of the manifest
and attempt 1's write of its own. Over a real S3 API (moto server on 127.0.0.1: the second write is a real PutObject
sent from a botocore hook just before attempt 1's PutObject goes out) and over the local FileStorage. The read-then-put
of 6ba7e04 (kept below as ``_read_then_put``) lets attempt 1 replace attempt 2's manifest; the conditional write keeps
attempt 2's and attempt 1 gets StaleAttemptError."""

from __future__ import annotations

import json
import threading

import pytest

from explain_workflow.contract import RunStatus, WorkflowSettings
from explain_workflow.failure import FailureEvent, record_failure
from explain_workflow.runs import RunLayout, StaleAttemptError, read_manifest, utc_now, write_manifest
from explain_workflow.storage import FileStorage, S3Storage, WriteConflict
from tests.support.s3 import all_keys, s3_client

LAYOUT = RunLayout("results", "raced-run")


def _read_then_put(storage, layout, status, **fields):
    """write_manifest as 6ba7e04 had it: read, judge, then an unconditional put."""
    attempt = fields.get("attempt")
    existing = read_manifest(storage, layout)
    theirs = existing.get("attempt") if existing else None
    if type(theirs) is int and theirs > attempt:
        raise StaleAttemptError(f"attempt {theirs}'s; attempt {attempt} does not replace it")
    manifest = {"run_id": layout.run_id, "status": status, "written_at": utc_now(), **fields}
    storage.put(layout.bucket, layout.manifest_key, json.dumps(manifest).encode(), "application/json")
    return manifest


@pytest.fixture
def clients(moto_url):
    """Two clients of one local S3: attempt 1's (hooked) and the other writer's."""
    first, other = s3_client(moto_url), s3_client(moto_url)
    first.create_bucket(Bucket="results")
    yield first, other
    for key in all_keys(first, "results"):
        first.delete_object(Bucket="results", Key=key)
    first.delete_bucket(Bucket="results")


def _before_first_put(client, write):
    """Run ``write`` (a real write by another writer) once, just before ``client`` sends its first PutObject; the
    HTTP status of every PutObject ``client`` gets back is collected in the returned list."""
    statuses, fired = [], []

    def before_send(**_):
        if not fired:
            fired.append(True)
            write()

    def after_call(http_response, **_):
        statuses.append(http_response.status_code)

    client.meta.events.register("before-send.s3.PutObject", before_send)
    client.meta.events.register("after-call.s3.PutObject", after_call)
    return statuses


def _attempt_2_writes(storage):
    return lambda: write_manifest(storage, LAYOUT, RunStatus.FAILED, stage="postprocess", attempt=2, reason="two")


@pytest.mark.parametrize("earlier", [None, 1], ids=["no-manifest-yet", "attempt-1s-manifest"])
def test_s3_read_then_put_let_attempt_1_replace_attempt_2s_manifest(clients, earlier):
    """The old writer: attempt 1 read (nothing, or its own manifest), attempt 2 wrote, attempt 1 put over it."""
    first, other = clients
    if earlier:
        write_manifest(S3Storage(other), LAYOUT, RunStatus.FAILED, stage="workflow", attempt=earlier, reason="x")
    _before_first_put(first, _attempt_2_writes(S3Storage(other)))
    _read_then_put(S3Storage(first), LAYOUT, RunStatus.SUCCEEDED, attempt=1)
    assert read_manifest(S3Storage(other), LAYOUT)["attempt"] == 1  # attempt 2's manifest is gone


@pytest.mark.parametrize("earlier", [None, 1], ids=["no-manifest-yet", "attempt-1s-manifest"])
def test_s3_conditional_write_keeps_attempt_2s_manifest(clients, earlier):
    """Failed before the fix (DID NOT RAISE, attempt 1's SUCCEEDED written over attempt 2's FAILED): S3 refuses attempt
    1's PutObject (412: If-None-Match "*" or If-Match the ETag it read), it reads again and stops."""
    first, other = clients
    if earlier:
        write_manifest(S3Storage(other), LAYOUT, RunStatus.FAILED, stage="workflow", attempt=earlier, reason="x")
    statuses = _before_first_put(first, _attempt_2_writes(S3Storage(other)))
    with pytest.raises(StaleAttemptError, match="attempt 2's; attempt 1 does not replace it"):
        write_manifest(S3Storage(first), LAYOUT, RunStatus.SUCCEEDED, attempt=1)
    assert statuses == [412]  # one put, refused by S3; after the second read none is sent
    manifest = read_manifest(S3Storage(other), LAYOUT)
    assert (manifest["attempt"], manifest["status"], manifest["reason"]) == (2, "FAILED", "two")


def test_s3_newer_attempt_beaten_by_an_older_write_reads_again_and_stands(clients):
    """The other way round: attempt 1 writes between attempt 2's read and put; attempt 2's put is refused, it reads
    attempt 1's manifest, judges it older and writes over it (conditional on that one)."""
    first, other = clients
    write_manifest(S3Storage(other), LAYOUT, RunStatus.FAILED, stage="workflow", attempt=1, reason="one")
    late = lambda: _read_then_put(S3Storage(other), LAYOUT, RunStatus.SUCCEEDED, attempt=1)  # noqa: E731
    statuses = _before_first_put(first, late)
    write_manifest(S3Storage(first), LAYOUT, RunStatus.FAILED, stage="postprocess", attempt=2, reason="two")
    assert statuses == [412, 200]
    assert read_manifest(S3Storage(other), LAYOUT)["attempt"] == 2


def test_s3_put_if_conditions(clients):
    """The storage call itself against the S3 API: If-None-Match "*" only creates, If-Match only replaces that
    ETag (also refused once the object is deleted), and a refused write changes nothing."""
    first, _ = clients
    storage = S3Storage(first)
    storage.put_if("results", "k", b"one", "text/plain", None)
    with pytest.raises(WriteConflict, match="exists now"):
        storage.put_if("results", "k", b"two", "text/plain", None)
    data, etag = storage.read_tagged("results", "k")
    assert data == b"one"
    storage.put_if("results", "k", b"three", "text/plain", etag)
    with pytest.raises(WriteConflict, match=f"is no longer ETag {etag}"):
        storage.put_if("results", "k", b"four", "text/plain", etag)
    assert storage.read_tagged("results", "k")[0] == b"three"
    first.delete_object(Bucket="results", Key="k")
    with pytest.raises(WriteConflict):
        storage.put_if("results", "k", b"five", "text/plain", etag)
    assert "k" not in all_keys(first, "results")


class _Interleaved(FileStorage):
    """The local storage, running another writer's real write once, as this writer's put (or put_if) begins."""

    def __init__(self, root, write):
        super().__init__(root)
        self.write = write

    def _other_first(self):
        write, self.write = self.write, None
        if write:
            write()

    def put(self, bucket, key, data, content_type):
        self._other_first()
        super().put(bucket, key, data, content_type)

    def put_if(self, bucket, key, data, content_type, etag):
        self._other_first()
        super().put_if(bucket, key, data, content_type, etag)


@pytest.mark.parametrize("earlier", [None, 1], ids=["no-manifest-yet", "attempt-1s-manifest"])
def test_file_storage_read_then_put_let_attempt_1_replace_attempt_2s_manifest(tmp_path, earlier):
    other = FileStorage(tmp_path)
    if earlier:
        write_manifest(other, LAYOUT, RunStatus.FAILED, stage="workflow", attempt=earlier, reason="x")
    _read_then_put(_Interleaved(tmp_path, _attempt_2_writes(other)), LAYOUT, RunStatus.SUCCEEDED, attempt=1)
    assert read_manifest(other, LAYOUT)["attempt"] == 1


@pytest.mark.parametrize("earlier", [None, 1], ids=["no-manifest-yet", "attempt-1s-manifest"])
def test_file_storage_conditional_write_keeps_attempt_2s_manifest(tmp_path, earlier):
    """Failed before the fix (DID NOT RAISE): the compare-and-swap sees attempt 2's manifest, not the one read."""
    other = FileStorage(tmp_path)
    if earlier:
        write_manifest(other, LAYOUT, RunStatus.FAILED, stage="workflow", attempt=earlier, reason="x")
    with pytest.raises(StaleAttemptError, match="attempt 2's; attempt 1 does not replace it"):
        write_manifest(_Interleaved(tmp_path, _attempt_2_writes(other)), LAYOUT, RunStatus.SUCCEEDED, attempt=1)
    manifest = read_manifest(other, LAYOUT)
    assert (manifest["attempt"], manifest["status"], manifest["reason"]) == (2, "FAILED", "two")
    assert [p.name for p in (tmp_path / "results" / "runs" / "raced-run").iterdir()] == ["manifest.json"]


def test_record_failure_of_an_overtaken_attempt_answers_with_the_newer_manifest(tmp_path):
    """Failed before (StaleAttemptError escaped the failure handler, so attempt 1's execution ended on a Lambda
    error): attempt 1's run fails with no manifest yet, and attempt 2 writes its own between record_failure's read and
    its write; attempt 2's manifest stands and record_failure answers with it."""
    other = FileStorage(tmp_path)
    settings = WorkflowSettings(results_bucket="results", labels=["a", "b"], model_name="m")
    event = FailureEvent(request={"prepare": {"run_id": LAYOUT.run_id, "attempt": 1}}, error={"Error": "E1"})
    answer = record_failure(_Interleaved(tmp_path, _attempt_2_writes(other)), event, settings)
    assert (answer.attempt, answer.status, answer.reason) == (2, "FAILED", "two")
    manifest = read_manifest(other, LAYOUT)
    assert (manifest["attempt"], manifest["reason"]) == (2, "two")


class _PausedAfterCheck(FileStorage):
    """The local storage whose first write, inside put_if (after its check, before its rename), starts another
    writer's put_if in a thread and gives it until ``join`` returns to get past the check too."""

    def __init__(self, root, other_write):
        super().__init__(root)
        self.other_write, self.thread = other_write, None

    def writer(self, bucket, key, content_type):
        if self.thread is None:
            self.thread = threading.Thread(target=self.other_write)
            self.thread.start()
            self.thread.join(0.5)  # with the lock it cannot finish: it waits for this write's rename
        return super().writer(bucket, key, content_type)


def test_file_storage_check_and_rename_are_one_step_across_threads(tmp_path):
    """Both writers read ETag E of the same manifest; the first is inside its put_if when the second calls its own.
    The second must find the first's manifest, not E, so it is refused (and its content never lands)."""
    plain = FileStorage(tmp_path)
    plain.put("results", "k", b"E", "text/plain")
    _, etag = plain.read_tagged("results", "k")
    outcome = []

    def second():
        try:
            plain.put_if("results", "k", b"second", "text/plain", etag)
            outcome.append("written")
        except WriteConflict:
            outcome.append("refused")

    storage = _PausedAfterCheck(tmp_path, second)
    storage.put_if("results", "k", b"first", "text/plain", etag)
    storage.thread.join()
    assert outcome == ["refused"]
    assert plain.read_tagged("results", "k")[0] == b"first"

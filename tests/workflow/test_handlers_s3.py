"""The three Lambda handlers, invoked with real events, against a real S3 API (moto server on 127.0.0.1)."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from explain_workflow import aws
from explain_workflow.contract import SETTINGS_ENV, Limits, WorkflowSettings
from explain_workflow.runs import RunLayout
from explain_workflow.storage import S3Storage
from tests.support.clarify_output import known_run, write_clarify_output
from tests.support.data import LABELS, TEXTS, csv_bytes
from tests.support.lambda_context import Context
from tests.support.s3 import all_keys, handlers_s3, upload


@pytest.fixture
def s3(moto_url, monkeypatch):
    settings = WorkflowSettings(
        results_bucket="results", labels=LABELS, model_name="text-model", limits=Limits(max_rows=50)
    )
    with handlers_s3(moto_url, monkeypatch, settings) as client:
        yield client


def test_prepare_then_postprocess_through_s3(s3):
    from postprocess.handler import handler as postprocess
    from prepare.handler import handler as prepare

    event = upload(s3, "incoming/good.csv", csv_bytes(TEXTS))
    prepared = prepare(event, Context())
    assert prepared["status"] == "READY"
    assert prepared["rows"] == 3
    assert prepared["dataset_s3_uri"] == f"s3://results/runs/{prepared['run_id']}/input/"
    keys = all_keys(s3, "results")
    run = f"runs/{prepared['run_id']}/"
    assert set(keys) == {
        run + "input/dataset.csv",
        run + "predict/input/rows.jsonl",
        run + "config/analysis_config.json",
        run + "request.json",
    }
    assert prepared["attempt"] == 1
    assert prepared["job_name"] == f"cx-{prepared['run_id']}-1"
    assert prepared["predict"] == {
        "job_name": f"cp-{prepared['run_id']}-1",
        "input_s3_uri": f"s3://results/{run}predict/input/",
        "output_s3_uri": f"s3://results/{run}predict/output/",
    }
    rows = s3.get_object(Bucket="results", Key=run + "predict/input/rows.jsonl")["Body"].read().decode()
    assert [json.loads(line) for line in rows.splitlines()] == [
        {"row_id": i, "text": t} for i, t in enumerate(TEXTS, start=1)
    ]
    request = json.loads(s3.get_object(Bucket="results", Key=run + "request.json")["Body"].read())
    assert request["identity"]["input"] == {"bucket": "input", "key": "incoming/good.csv", "version": event["etag"]}
    assert request["identity"]["options"]["num_samples"] == 1000
    assert request["identity"]["limits"]["max_rows"] == 50
    assert request["identity"]["model"]["model_name"] == "text-model"
    config = json.loads(s3.get_object(Bucket="results", Key=run + "config/analysis_config.json")["Body"].read())
    assert config["predictor"]["model_name"] == "text-model"

    from explain_workflow.runs import RunLayout

    write_clarify_output(aws.storage(), RunLayout("results", prepared["run_id"]), known_run(TEXTS, LABELS, seed=1))
    done = postprocess(prepared, Context())
    assert done == {
        "run_id": prepared["run_id"],
        "status": "SUCCEEDED",
        "attempt": 1,
        "complete": True,
        "manifest_s3_uri": f"s3://results/{run}manifest.json",
        "results_prefix": f"s3://results/{run}results/",
        "records": 3,
    }
    body = s3.get_object(Bucket="results", Key=run + "results/records.jsonl")["Body"].read().decode()
    assert [json.loads(line)["text"] for line in body.splitlines()] == TEXTS


def test_duplicate_request_writes_nothing_new(s3):
    from prepare.handler import handler as prepare

    event = upload(s3, "incoming/dup.csv", csv_bytes(TEXTS))
    first = prepare(event, Context())
    run = f"runs/{first['run_id']}/"
    aws.storage().put("results", run + "manifest.json", b'{"status": "SUCCEEDED"}', "x")
    for name in ("records.jsonl", "classes.json", "report.html"):
        aws.storage().put("results", run + "results/" + name, b"{}", "x")
    before = all_keys(s3, "results")
    second = prepare(event, Context())
    assert second["status"] == "ALREADY_DONE"
    assert second["run_id"] == first["run_id"]
    assert all_keys(s3, "results") == before


@pytest.mark.parametrize(
    ("manifest", "results"),
    [
        (b'{"status": "SUCCEEDED", "attempt": 1}', ("classes.json", "report.html")),  # records.jsonl deleted since
        (b'{"status": "SUCCE', ("records.jsonl", "classes.json", "report.html")),  # a torn manifest
        (b"[1]", ()),  # JSON, but no manifest
        (b"\xff\xfe", ()),  # not even text
    ],
)
def test_a_run_without_its_results_or_with_an_unreadable_manifest_is_prepared_again(s3, manifest, results):
    """Old main answered ALREADY_DONE for a SUCCEEDED manifest whose results were gone (the CLI then printed report
    paths that do not exist) and crashed prepare on a manifest that is not a JSON object."""
    from prepare.handler import handler as prepare

    event = upload(s3, "incoming/gone.csv", csv_bytes(TEXTS))
    first = prepare(event, Context())
    run = f"runs/{first['run_id']}/"
    aws.storage().put("results", run + "manifest.json", manifest, "x")
    for name in results:
        aws.storage().put("results", run + "results/" + name, b"{}", "x")
    again = prepare(event, Context())
    assert (again["status"], again["run_id"], again["attempt"]) == ("READY", first["run_id"], 2)
    assert again["job_name"].endswith("-2")
    keys = all_keys(s3, "results")
    assert run + "manifest.json" not in keys  # cleared: the run reads as not finished until this attempt ends
    assert not [k for k in keys if k.startswith(run + "results/")]


@pytest.mark.parametrize(
    ("body", "reason", "where"),
    [
        (b"", "the file is empty (0 bytes)", {"byte": 0}),
        (b"label,body\nx,y\n", "no column named 'text'", {"row": 0}),
        (b'label,text\nx,"ok"\ny,"caf\xe9"\n', "not valid UTF-8", {"byte": 24}),
        (b'label,text\nx,"unterminated\n', "malformed CSV", {"line": 2}),
        (b"label,text\n" + b"x,a\n" * 51, "more than 50 data rows", {"row": 51, "line": 52}),
        (b"label,text\nx,y,z\n", "3 fields where the header has 2", {"row": 1, "line": 2}),
    ],
)
def test_bad_input_gets_a_failed_manifest_and_nothing_else(s3, body, reason, where):
    from prepare.handler import handler as prepare

    from explain_workflow.dataset import InputValidationError

    event = upload(s3, "incoming/bad.csv", body)
    with pytest.raises(InputValidationError):
        prepare(event, Context())
    keys = all_keys(s3, "results")
    assert len(keys) == 1
    (key,) = keys
    assert key.endswith("/manifest.json")
    manifest = json.loads(s3.get_object(Bucket="results", Key=key)["Body"].read())
    assert manifest["status"] == "FAILED"
    assert reason in manifest["reason"]
    assert manifest["where"] == where
    assert all_keys(s3, "input") == {"incoming/bad.csv": f'"{event["etag"]}"'}  # the user's input is untouched


def test_missing_object_and_changed_etag(s3):
    from prepare.handler import handler as prepare

    from explain_workflow.dataset import InputValidationError

    with pytest.raises(InputValidationError, match="cannot be read"):
        prepare({"bucket": "input", "key": "incoming/none.csv"}, Context())
    event = upload(s3, "incoming/changed.csv", csv_bytes(TEXTS))
    with pytest.raises(InputValidationError, match="object changed"):
        prepare(event | {"etag": "0123"}, Context())


def test_record_failure_writes_once_and_never_overwrites(s3):
    from record_failure.handler import handler as record_failure

    request = {"bucket": "input", "key": "incoming/x.csv", "etag": "abc"}
    error = {"Error": "States.TaskFailed", "Cause": json.dumps({"FailureReason": "ClientError: endpoint failed"})}
    first = record_failure({"request": request, "error": error}, Context())
    assert first["status"] == "FAILED"
    assert first["reason"] == "States.TaskFailed: ClientError: endpoint failed"
    again = record_failure({"request": request, "error": {"Error": "Other"}}, Context())
    assert again["reason"] == first["reason"]
    bad = record_failure({"request": {"nothing": 1}, "error": {"Error": "X"}}, Context())
    assert bad == {
        "run_id": None,
        "attempt": None,
        "status": "FAILED",
        "reason": "X; bad request: the request lacks ['bucket', 'key']; got keys ['nothing']",
        "manifest_s3_uri": None,
    }


@pytest.mark.parametrize(
    ("code", "message"),
    [("404", "does not exist"), ("NoSuchKey", "does not exist"), ("403", "access denied"), ("AccessDenied", "access")],
)
def test_missing_or_forbidden_objects_are_storage_errors_that_say_which(code, message):
    """S3 answers 403 for a missing key when the caller may not list: both must reach the user as a clear reason."""
    error = S3Storage._unreadable(ClientError({"Error": {"Code": code}}, "HeadObject"), "in", "incoming/a.csv")
    assert message in str(error)
    assert "s3://in/incoming/a.csv" in str(error)
    assert S3Storage._unreadable(ClientError({"Error": {"Code": "SlowDown"}}, "GetObject"), "in", "k") is None


def test_a_failed_run_runs_again_as_a_new_attempt(s3):
    """Old main answered ALREADY_DONE for a FAILED manifest: a failed run could never run again."""
    from postprocess.handler import handler as postprocess
    from prepare.handler import handler as prepare

    from explain_workflow.clarify_format import ClarifyOutputError
    from explain_workflow.runs import RunLayout

    event = upload(s3, "incoming/retry.csv", csv_bytes(TEXTS))
    first = prepare(event, Context())
    layout = RunLayout("results", first["run_id"])
    # attempt 1: Clarify wrote two part files and one line too few
    write_clarify_output(aws.storage(), layout, known_run(TEXTS[:2], LABELS, seed=1), split=1)
    with pytest.raises(ClarifyOutputError):
        postprocess(first, Context())
    failed = json.loads(s3.get_object(Bucket="results", Key=layout.manifest_key)["Body"].read())
    assert (failed["status"], failed["attempt"]) == ("FAILED", 1)

    second = prepare(event | {"attempt": 3}, Context())  # the starter's count (execution <run_id>-a3)
    assert (second["status"], second["run_id"], second["attempt"]) == ("READY", first["run_id"], 3)
    assert second["job_name"] == f"cx-{first['run_id']}-3"
    assert second["predict"]["job_name"] == f"cp-{first['run_id']}-3"
    left = set(all_keys(s3, "results"))
    assert not [k for k in left if "/clarify/" in k or k.endswith("manifest.json")]  # attempt 1's output is gone
    write_clarify_output(aws.storage(), layout, known_run(TEXTS, LABELS, seed=1))
    done = postprocess(second, Context())
    assert (done["status"], done["attempt"]) == ("SUCCEEDED", 3)
    assert prepare(event | {"attempt": 4}, Context())["status"] == "ALREADY_DONE"


def test_a_repeated_attempt_number_never_reuses_job_names(s3):
    """A request that names attempt 1 again (a direct execution) still gets the next attempt's job names."""
    from prepare.handler import handler as prepare

    from explain_workflow.runs import RunLayout, write_manifest

    event = upload(s3, "incoming/direct.csv", csv_bytes(TEXTS))
    first = prepare(event, Context())
    write_manifest(aws.storage(), RunLayout("results", first["run_id"]), "FAILED", attempt=4, reason="x")
    again = prepare(event, Context())
    assert again["attempt"] == 5
    assert again["job_name"].endswith("-5")


def test_record_failure_replaces_an_earlier_attempts_manifest_only(s3):
    from record_failure.handler import handler as record_failure

    request = {"bucket": "input", "key": "incoming/x.csv", "etag": "abc"}
    first = record_failure({"request": request, "error": {"Error": "One"}}, Context())
    later = record_failure({"request": request | {"attempt": 2}, "error": {"Error": "Two"}}, Context())
    assert (later["run_id"], later["attempt"], later["reason"]) == (first["run_id"], 2, "Two")
    same = record_failure({"request": request | {"attempt": 2}, "error": {"Error": "Three"}}, Context())
    assert same["reason"] == "Two"  # this attempt's own manifest stays


def test_record_failure_replaces_an_unreadable_manifest(s3):
    """Old main crashed on a torn manifest (JSONDecodeError), so the failed run was left with no readable word."""
    from record_failure.handler import handler as record_failure

    request = {"bucket": "input", "key": "incoming/x.csv", "etag": "abc"}
    first = record_failure({"request": request, "error": {"Error": "One"}}, Context())
    key = f"runs/{first['run_id']}/manifest.json"
    s3.put_object(Bucket="results", Key=key, Body=b'{"status": "FAI')
    again = record_failure({"request": request, "error": {"Error": "Two"}}, Context())
    assert (again["status"], again["reason"]) == ("FAILED", "Two")
    manifest = json.loads(s3.get_object(Bucket="results", Key=key)["Body"].read())
    assert (manifest["status"], manifest["reason"]) == ("FAILED", "Two")


@pytest.mark.parametrize("fault", ["slow_down", "cut"])
def test_transient_s3_errors_are_retried_inside_postprocess(s3, moto_url, monkeypatch, fault):
    """Old main had no retry of a body that broke mid-read: one reset connection failed the run for good."""
    from explain_workflow import aws as aws_module
    from explain_workflow.runs import RunLayout
    from explain_workflow.storage import CLIENT_CONFIG, S3Storage
    from tests.support.faulty_s3 import Fault, faulty_proxy

    event = upload(s3, "incoming/flaky.csv", csv_bytes(TEXTS * 15))
    from postprocess.handler import handler as postprocess
    from prepare.handler import handler as prepare

    prepared = prepare(event, Context())
    layout = RunLayout("results", prepared["run_id"])
    write_clarify_output(aws.storage(), layout, known_run(TEXTS * 15, LABELS, seed=1))
    with faulty_proxy(moto_url) as (proxy, plan):
        is_out = lambda path: "out.jsonl" in path and "list-type" not in path  # noqa: E731
        is_frozen = lambda path: "dataset.csv" in path  # noqa: E731
        plan.faults += [Fault(fault, "GET", is_out), Fault(fault, "GET", is_frozen), Fault(fault, "GET", is_out)]
        if fault == "slow_down":
            plan.faults.append(Fault(fault, "PUT", lambda path: "records.jsonl" in path))
        import boto3

        client = boto3.client("s3", endpoint_url=proxy, region_name="us-east-1", config=CLIENT_CONFIG)
        with monkeypatch.context() as patch:
            patch.setattr(aws_module, "storage", lambda: S3Storage(client))
            done = postprocess(prepared, Context())
    assert done["status"] == "SUCCEEDED"
    assert done["records"] == 45
    assert len(plan.injected) >= 3, plan.injected
    body = s3.get_object(Bucket="results", Key=layout.results_prefix + "records.jsonl")["Body"].read().decode()
    assert [json.loads(line)["text"] for line in body.splitlines()] == TEXTS * 15


@pytest.mark.parametrize("fault", ["slow_down", "cut"])
def test_transient_s3_errors_are_retried_inside_prepare_and_on_the_predictions(s3, moto_url, monkeypatch, fault):
    """The S3 calls prepare makes (the manifest look-up, the GET of the input, the frozen copy's upload, the listing it
    clears) and postprocess's read of the model's predictions survive a throttled or cut answer."""
    from explain_workflow import aws as aws_module
    from explain_workflow.storage import CLIENT_CONFIG, S3Storage
    from tests.support.faulty_s3 import Fault, faulty_proxy

    texts = TEXTS * 15
    event = upload(s3, "incoming/flaky-prepare.csv", csv_bytes(texts))
    from postprocess.handler import handler as postprocess
    from prepare.handler import handler as prepare

    def is_input(path):
        return "flaky-prepare.csv" in path

    with faulty_proxy(moto_url) as (proxy, plan):
        import boto3

        client = boto3.client("s3", endpoint_url=proxy, region_name="us-east-1", config=CLIENT_CONFIG)
        with monkeypatch.context() as patch:
            # HEAD goes straight to the S3 API: the proxy answers a HEAD with Content-Length 0 (its own body)
            storage = S3Storage(client)
            storage.head = S3Storage(s3).head
            patch.setattr(aws_module, "storage", lambda: storage)
            plan.faults += [Fault(fault, "GET", is_input), Fault(fault, "GET", lambda p: "rows.jsonl.out" in p)]
            if fault == "slow_down":
                plan.faults += [
                    Fault(fault, "GET", lambda p: "manifest.json" in p),
                    Fault(fault, "GET", lambda p: "list-type" in p),
                    Fault(fault, "PUT", lambda p: "dataset.csv" in p),
                    Fault(fault, "PUT", lambda p: "request.json" in p),
                ]
            prepared = prepare(event, Context())
            assert prepared["status"] == "READY"
            layout = RunLayout("results", prepared["run_id"])
            write_clarify_output(aws.storage(), layout, known_run(texts, LABELS, seed=1))
            done = postprocess(prepared, Context())
    assert not plan.faults, f"faults never met: {plan.faults}"
    assert (done["status"], done["records"], done["complete"]) == ("SUCCEEDED", 45, True)
    import io

    from explain_workflow.dataset import read_frozen

    frozen = s3.get_object(Bucket="results", Key=layout.dataset_key)["Body"].read()
    # every row once, in order: nothing lost or doubled by a resumed read
    assert [text for _, text in read_frozen(io.BytesIO(frozen))] == texts
    body = s3.get_object(Bucket="results", Key=layout.results_prefix + "records.jsonl")["Body"].read().decode()
    assert all(json.loads(line)["probabilities"] is not None for line in body.splitlines())


def test_a_changed_object_is_never_spliced_into_a_resumed_read(s3, moto_url):
    """The rest of a broken body is fetched pinned to the first answer's ETag: a changed object is an error."""
    from explain_workflow.storage import CLIENT_CONFIG, S3Storage
    from tests.support.faulty_s3 import Fault, faulty_proxy

    s3.put_object(Bucket="input", Key="incoming/big.csv", Body=b"a" * 300_000)
    with faulty_proxy(moto_url) as (proxy, plan):
        import boto3

        storage = S3Storage(boto3.client("s3", endpoint_url=proxy, region_name="us-east-1", config=CLIENT_CONFIG))
        plan.faults.append(Fault("cut", "GET", lambda path: "big.csv" in path))
        with storage.open("input", "incoming/big.csv") as stream:
            first = stream.read(1000)
            s3.put_object(Bucket="input", Key="incoming/big.csv", Body=b"b" * 300_000)
            with pytest.raises(ClientError, match=r"PreconditionFailed|412"):
                stream.read()
    assert first == b"a" * 1000


def emitted_metrics(printed: str) -> list[tuple[str, str]]:
    """(namespace, metric name) of every CloudWatch embedded-metric record a handler printed."""
    found = []
    for line in printed.splitlines():
        record = json.loads(line) if line.startswith("{") else {}
        for directive in record.get("_aws", {}).get("CloudWatchMetrics", []):
            found += [(directive["Namespace"], metric["Name"]) for metric in directive["Metrics"]]
    return found


def test_every_handler_counts_in_the_one_namespace_whatever_the_environment_says(s3, monkeypatch, capsys):
    """Old handlers took the namespace from POWERTOOLS_METRICS_NAMESPACE: without it their metrics failed to flush."""
    from postprocess.handler import handler as postprocess
    from prepare.handler import handler as prepare
    from record_failure.handler import handler as record_failure

    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE", raising=False)
    event = upload(s3, "incoming/counted.csv", csv_bytes(TEXTS))
    prepared = prepare(event, Context())
    write_clarify_output(aws.storage(), RunLayout("results", prepared["run_id"]), known_run(TEXTS, LABELS, seed=1))
    postprocess(prepared, Context())
    record_failure({"request": {"nothing": 1}, "error": {"Error": "X"}}, Context())
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "SomethingElse")
    prepare(event, Context())
    assert emitted_metrics(capsys.readouterr().out) == [
        ("TextExplanations", "RunPrepared"),
        ("TextExplanations", "RecordsExplained"),
        ("TextExplanations", "RunFailed"),
        ("TextExplanations", "DuplicateRequest"),
    ]


def test_unusable_settings_fail_the_first_invocation_naming_the_variable_and_the_field(s3, monkeypatch):
    from record_failure.handler import handler as record_failure

    from explain_workflow.contract import SettingsError

    monkeypatch.setenv(SETTINGS_ENV, json.dumps({"results_bucket": "results", "labels": []}))
    aws.settings.cache_clear()  # a new container
    with pytest.raises(SettingsError, match=r"WORKFLOW_SETTINGS: .*labels"):
        record_failure({"request": {"bucket": "input", "key": "incoming/x.csv"}, "error": {}}, Context())
    assert all_keys(s3, "results") == {}  # nothing written with half a configuration

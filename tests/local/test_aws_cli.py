"""The CLI's AWS commands against a local AWS API (moto server on 127.0.0.1): start, follow, status, estimate."""

from __future__ import annotations

import json
import subprocess
import sys

import boto3
import pytest
import requests

from explain_workflow.contract import SETTINGS_ENV, RunRequest, WorkflowSettings
from explain_workflow.identity import run_identity
from tests.support.data import TEXTS, csv_bytes
from textexplain import aws_cli

ACCOUNT = "123456789012"


@pytest.fixture
def local_aws(moto_url):
    """A stage as the CLI finds it: its buckets, its state machine (run by moto) and its stack's outputs."""
    requests.post(moto_url + "/moto-api/config", json={"stepfunctions": {"execute_state_machine": True}}, timeout=10)
    make = lambda s: boto3.client(s, endpoint_url=moto_url, region_name="us-east-1",  # noqa: E731
                                  aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    clients = {name: make(name) for name in ("s3", "stepfunctions", "cloudformation")}
    for bucket in ("in-bucket", "results-bucket"):
        clients["s3"].create_bucket(Bucket=bucket)
    machine = clients["stepfunctions"].create_state_machine(
        name="explanations",
        definition=json.dumps({"StartAt": "Prepare", "States": {"Prepare": {"Type": "Pass", "End": True}}}),
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn",
    )["stateMachineArn"]
    settings = WorkflowSettings(results_bucket="results-bucket", labels=["a", "b"], model_name="Model-1a2b")
    workflow_env = {SETTINGS_ENV: settings.model_dump_json()}  # as the stack outputs it
    outputs = {
        "InputBucket": "in-bucket",
        "ResultsBucket": "results-bucket",
        "StateMachineArn": machine,
        "WorkflowEnvironment": json.dumps(workflow_env),
    }
    template = {
        "Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {k: {"Value": v} for k, v in outputs.items()},
    }
    clients["cloudformation"].create_stack(StackName="TextExplanations-test", TemplateBody=json.dumps(template))
    return clients


def test_stage_targets_come_from_the_stack_outputs(local_aws):
    targets = aws_cli.StageTargets.from_stack(local_aws["cloudformation"], "test")
    assert (targets.input_bucket, targets.results_bucket) == ("in-bucket", "results-bucket")
    with pytest.raises(aws_cli.AwsCliError, match="TextExplanations-nope"):
        aws_cli.StageTargets.from_stack(local_aws["cloudformation"], "nope")


def test_start_uploads_a_local_file_runs_once_and_follows_to_the_end(local_aws, tmp_path):
    targets = aws_cli.StageTargets.from_stack(local_aws["cloudformation"], "test")
    data = tmp_path / "texts.csv"
    data.write_bytes(csv_bytes(TEXTS))
    s3, sfn = local_aws["s3"], local_aws["stepfunctions"]
    started = aws_cli.start(targets, str(data), {"num_samples": 50}, s3, sfn, ACCOUNT)
    assert started["status"] == "STARTED"
    # staged under uploads/ (an upload to incoming/ would start a second run by itself), pinned to its content
    uploaded = s3.get_object(Bucket="in-bucket", Key="uploads/texts.csv")
    assert uploaded["Body"].read() == data.read_bytes()
    etag = uploaded["ETag"].strip('"')
    request = RunRequest(bucket="in-bucket", key="uploads/texts.csv", version_id=etag, overrides={"num_samples": 50})
    assert started["run_id"] == run_identity(request, targets.settings()).run_id  # as the starter computes it
    again = aws_cli.start(targets, "s3://in-bucket/uploads/texts.csv", {"num_samples": 50}, s3, sfn, ACCOUNT)
    assert again["status"] == "DUPLICATE"
    seen: list[str] = []
    assert aws_cli.follow(sfn, targets.state_machine_arn, started["run_id"], poll_seconds=0.05, report=seen.append) == (
        "SUCCEEDED"
    )
    assert any("Prepare" in line for line in seen)
    with pytest.raises(aws_cli.AwsCliError, match="cannot be read"):
        aws_cli.start(targets, "s3://in-bucket/incoming/none.csv", {}, s3, sfn, ACCOUNT)
    with pytest.raises(aws_cli.AwsCliError, match="not an s3://bucket/key"):
        aws_cli.split_s3_uri("s3://only-bucket")


def test_status_reads_the_manifest(local_aws):
    s3 = local_aws["s3"]
    s3.put_object(
        Bucket="results-bucket", Key="runs/r-1/manifest.json", Body=b'{"run_id": "r-1", "status": "SUCCEEDED"}'
    )
    s3.put_object(Bucket="results-bucket", Key="runs/r-2/input/dataset.csv", Body=b'"1","x"\n')
    assert aws_cli.status(s3, "results-bucket", "r-1")["status"] == "SUCCEEDED"
    assert aws_cli.status(s3, "results-bucket", "r-2")["status"] == "RUNNING"
    with pytest.raises(aws_cli.AwsCliError, match="no run r-3"):
        aws_cli.status(s3, "results-bucket", "r-3")


def test_estimate_counts_calls_like_clarify(tmp_path):
    data = tmp_path / "e.csv"
    data.write_text('id,text\n1,"one"\n2,"two words"\n3,"a b c d e f g h i j k l"\n', encoding="utf-8")
    result = aws_cli.estimate(data, "text", num_samples=1000, price_per_hour=0.5, rows_per_second=100)
    # 1 unit: full + masked only; 2 units: + 2 coalitions; 12 units: + min(1000, 4094)
    assert result.model_calls == 2 + (2 + 2) + (2 + 1000)
    assert result.rows == 3
    assert result.scoring_seconds == pytest.approx(result.model_calls / 100)
    assert result.cost == pytest.approx(0.5 * result.job_seconds / 3600)


def test_estimate_command(tmp_path):
    data = tmp_path / "e.csv"
    data.write_bytes(csv_bytes(TEXTS))
    out = subprocess.run(
        [sys.executable, "-m", "textexplain.cli", "estimate", "--input", str(data), "--stage", "dev"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "model invocations (rows x samples): " in out.stdout
    assert "USD" in out.stdout

"""The CLI's AWS commands against a local AWS API (moto server on 127.0.0.1): start, follow, status, estimate."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import boto3
import pytest
import requests

from explain_workflow.contract import SETTINGS_ENV, RunRequest, WorkflowSettings, stack_names
from explain_workflow.identity import run_identity
from tests.support.data import TEXTS, csv_bytes
from textexplain import aws_cli

ACCOUNT = "123456789012"
ROOT = Path(__file__).resolve().parents[2]


class LocalStage:
    """A deployed stage as the CLI finds it, in the local AWS API: its buckets, its state machine (run by moto; a
    Wait of ``wait_seconds`` stands in for the workflow) and its stack's outputs."""

    def __init__(self, moto_url: str, stage: str, wait_seconds: int = 0):
        self.url = moto_url
        config = {"stepfunctions": {"execute_state_machine": True}}
        requests.post(moto_url + "/moto-api/config", json=config, timeout=10)
        self.clients = {
            name: boto3.client(name, **self.credentials()) for name in ("s3", "stepfunctions", "cloudformation")
        }
        for bucket in ("in-bucket", "results-bucket"):
            self.clients["s3"].create_bucket(Bucket=bucket)
        states = {"Prepare": {"Type": "Wait", "Seconds": wait_seconds, "End": True}}
        self.machine = self.clients["stepfunctions"].create_state_machine(
            name="explanations",
            definition=json.dumps({"StartAt": "Prepare", "States": states}),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn",
        )["stateMachineArn"]
        settings = WorkflowSettings(results_bucket="results-bucket", labels=["a", "b"], model_name="Model-1a2b")
        outputs = {
            "InputBucket": "in-bucket",
            "ResultsBucket": "results-bucket",
            "StateMachineArn": self.machine,
            "WorkflowEnvironment": json.dumps({SETTINGS_ENV: settings.model_dump_json()}),  # as the stack outputs it
        }
        template = {
            "Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
            "Outputs": {k: {"Value": v} for k, v in outputs.items()},
        }
        self.clients["cloudformation"].create_stack(StackName=stack_names(stage)[1], TemplateBody=json.dumps(template))

    def credentials(self) -> dict:
        return {"endpoint_url": self.url, "region_name": "us-east-1", "aws_access_key_id": "testing",
                "aws_secret_access_key": "testing"}  # fmt: skip

    def environment(self) -> dict:
        """What a shell needs for boto3 to reach this stage (AWS_ENDPOINT_URL: botocore's own setting)."""
        return {"AWS_ENDPOINT_URL": self.url, "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing"}  # fmt: skip

    @contextlib.contextmanager
    def writing_manifests(self):
        """While open, each new execution's run gets a SUCCEEDED manifest, as the workflow's last step writes one."""
        stop, s3, sfn = threading.Event(), self.clients["s3"], self.clients["stepfunctions"]

        def write():
            done: set[str] = set()
            while not stop.wait(0.1):
                for execution in sfn.list_executions(stateMachineArn=self.machine)["executions"]:
                    run_id = re.sub(r"-a\d+$", "", execution["name"])
                    if run_id not in done:
                        manifest = json.dumps({"run_id": run_id, "status": "SUCCEEDED"}).encode()
                        s3.put_object(Bucket="results-bucket", Key=f"runs/{run_id}/manifest.json", Body=manifest)
                        done.add(run_id)

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        try:
            yield
        finally:
            stop.set()
            writer.join(timeout=10)


@pytest.fixture
def local_aws(moto_url):
    return LocalStage(moto_url, "test", wait_seconds=5).clients  # a run stays running while a test looks at it


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
    # old main crashed with JSONDecodeError on a torn manifest; the CLI then exits 1 (not SUCCEEDED) saying why
    s3.put_object(Bucket="results-bucket", Key="runs/r-4/manifest.json", Body=b'{"status": "SUCC')
    torn = aws_cli.status(s3, "results-bucket", "r-4")
    assert torn["status"] == "UNREADABLE"
    assert "runs/r-4/manifest.json is not JSON" in torn["reason"]


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


def test_estimate_prints_both_engines_each_derived_from_its_instances_and_measured_rate(tmp_path):
    """dev: processing 1 x ml.m5.xlarge and a 1 x ml.m5.xlarge endpoint for Clarify (both priced, even of one type),
    the processing instance alone for builtin; every figure recomputed here from the printed inputs."""
    from infra.config import load_stage

    data = tmp_path / "e.csv"
    data.write_bytes(csv_bytes(TEXTS * 200))
    out = subprocess.run(
        [sys.executable, "-m", "textexplain.cli", "estimate", "--input", str(data), "--stage", "dev"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    config = load_stage("dev")
    calls = int(re.search(r"model invocations \(rows x samples\): ([\d,]+)", out.stdout)[1].replace(",", ""))
    assert calls == aws_cli.estimate(data, "text", config.clarify.num_samples, None).model_calls
    price = config.prices_per_hour["ml.m5.xlarge"]
    clarify_minutes = (aws_cli.ENDPOINT_STARTUP_SECONDS + calls / aws_cli.DEFAULT_ROWS_PER_SECOND) / 60
    assert f"job incl. ~5 min endpoint start: {clarify_minutes:.1f} min" in out.stdout
    clarify_cost = 2 * price * clarify_minutes / 60
    line = f"cost = {2 * price:.3f} USD/hour (processing 1 x ml.m5.xlarge, endpoint 1 x ml.m5.xlarge) x job hours"
    assert f"{line}: {clarify_cost:.2f} USD" in out.stdout
    builtin_seconds = calls / (aws_cli.BUILTIN_CALLS_PER_SECOND_PER_VCPU * 4)
    assert f"x 4 vCPUs x 1 instance(s): {builtin_seconds / 60:.1f} min" in out.stdout
    assert "measured: explainer in-process, one core of a quiet 2-core machine, docs/local.md" in out.stdout
    assert f"(processing 1 x ml.m5.xlarge) x job hours: {price * builtin_seconds / 3600:.2f} USD" in out.stdout
    assert "builtin engine (processing instances only" in out.stdout


def deploy_guide_commands() -> list[str]:
    """The CLI lines of docs/deploy.md's "Start a run" block, as written (comments dropped)."""
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    lines = [line.split("  #")[0].strip() for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S)
             for line in block.splitlines()]  # fmt: skip
    return [line for line in lines if line.startswith(".venv/bin/textexplain ")]


def test_the_deploy_guide_commands_run_as_written(moto_url, tmp_path):
    """docs/deploy.md's explain / status / estimate lines, run as written (the run id put for `<run_id>`) against
    a stage the local AWS API holds (AWS_ENDPOINT_URL points boto3 there). A two-second Wait stands in for the
    workflow, and a thread writes the run's manifest as postprocess would, so `explain --stage` follows a real
    execution to its end."""
    commands = deploy_guide_commands()
    assert [c.split()[1] for c in commands] == ["explain", "status", "estimate"], commands
    stage = LocalStage(moto_url, "dev", wait_seconds=2)
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    (tmp_path / "texts.csv").write_bytes(csv_bytes(TEXTS))
    env = {k: v for k, v in os.environ.items() if k != "AWS_PROFILE"} | stage.environment()
    with stage.writing_manifests():
        explained = subprocess.run(shlex.split(commands[0]), cwd=tmp_path, env=env, capture_output=True, text=True,
                                   timeout=300)  # fmt: skip
    assert explained.returncode == 0, explained.stdout + explained.stderr
    run_id = re.search(r"^run (\S+): started$", explained.stdout, re.M).group(1)
    assert "execution succeeded" in explained.stdout, explained.stdout
    shown = subprocess.run(shlex.split(commands[1].replace("<run_id>", run_id)), cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == {"run_id": run_id, "status": "SUCCEEDED"}
    estimated = subprocess.run(shlex.split(commands[2]), cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=120)  # fmt: skip
    assert estimated.returncode == 0, estimated.stderr
    assert f"rows: {len(TEXTS):,}" in estimated.stdout, estimated.stdout

"""The CLI's AWS side: start a run in a deployed stage and follow it, read a run's status, estimate a run.

Where the stage's buckets and state machine are comes from the stack's CloudFormation outputs, or from
explicit options; nothing here runs at synth time.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from explain_workflow.contract import (
    UPLOADS_PREFIX,
    DetailType,
    Limits,
    SettingsError,
    StartStatus,
    WorkflowSettings,
    stack_names,
)
from explain_workflow.dataset import iter_texts
from explain_workflow.executions import ExecutionStatus, StepFunctionsExecutions
from explain_workflow.runs import RunLayout, execution_name_for, read_manifest
from explain_workflow.start import Caller, start_run
from explain_workflow.storage import S3Storage
from fasttext_server.normalize import tokenize

# Measured (docs/container.md): our container, 2 workers on 2 cores, 500-row requests.
DEFAULT_ROWS_PER_SECOND = 140_000
ENDPOINT_STARTUP_SECONDS = 300  # a temporary Clarify endpoint takes about 5 minutes to come up
# Builtin engine (issue 21), measured: the explainer in-process, one worker on one core of a quiet 2-core machine
# (docs/local.md, `python -m bench explain`, generated corpus, 14 classes): 100,200 model calls in 1.99 s, the slower
# of its two corpora. The job runs one worker per vCPU; to be replaced by `python -m bench engines`' figure.
BUILTIN_CALLS_PER_SECOND_PER_VCPU = 50_000
INSTANCE_VCPUS = {
    "ml.m5.large": 2,
    "ml.m5.xlarge": 4,
    "ml.m5.2xlarge": 8,
    "ml.m5.4xlarge": 16,
    "ml.c5.xlarge": 4,
    "ml.c5.2xlarge": 8,
    "ml.c5.4xlarge": 16,
}  # AWS instance type sizes (vCPUs)


def builtin_seconds(model_calls: int, instance_type: str, instance_count: int) -> float | None:
    """Scoring time of the builtin job: calls / (per-vCPU rate x vCPUs x instances); None for an unknown type."""
    vcpus = INSTANCE_VCPUS.get(instance_type)
    if vcpus is None:
        return None
    return model_calls / (BUILTIN_CALLS_PER_SECOND_PER_VCPU * vcpus * instance_count)


class AwsCliError(RuntimeError):
    """A stage, run or object cannot be found or used; the message says which."""


@dataclass(frozen=True)
class StageTargets:
    input_bucket: str
    results_bucket: str
    state_machine_arn: str
    # The workflow functions' environment (stack output WorkflowEnvironment): the run id depends on it
    workflow_env: dict | None = None

    @classmethod
    def from_stack(cls, cloudformation, stage: str) -> StageTargets:
        name = stack_names(stage)[1]  # the stage's own stack (the first holds its image repository)
        try:
            stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        except cloudformation.exceptions.ClientError as exc:
            raise AwsCliError(
                f"stack {name} cannot be read ({exc}); deploy it or pass the targets explicitly"
            ) from None
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        missing = [k for k in ("InputBucket", "ResultsBucket", "StateMachineArn") if k not in outputs]
        if missing:
            raise AwsCliError(f"stack {name} has no outputs {missing}")
        env = json.loads(outputs["WorkflowEnvironment"]) if "WorkflowEnvironment" in outputs else None
        return cls(outputs["InputBucket"], outputs["ResultsBucket"], outputs["StateMachineArn"], env)

    def settings(self) -> WorkflowSettings:
        """The stage's workflow settings, so the CLI computes the run id exactly as the starter and prepare do."""
        if self.workflow_env is None:
            raise AwsCliError("the stack has no WorkflowEnvironment output; deploy this version of the app")
        try:
            return WorkflowSettings.from_env(self.workflow_env)
        except SettingsError as exc:
            raise AwsCliError(f"the stack's WorkflowEnvironment is unusable: {exc}") from None


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise AwsCliError(f"{uri!r} is not an s3://bucket/key URI")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


def start(targets: StageTargets, source: str, overrides: dict, s3, sfn, account: str) -> dict:
    """Start a run for an S3 object or a local file.

    A local file goes to uploads/, not incoming/: an upload to incoming/ would start a second run by itself.
    """
    if source.startswith("s3://"):
        bucket, key = split_s3_uri(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise AwsCliError(f"{path} does not exist")
        bucket, key = targets.input_bucket, f"{UPLOADS_PREFIX}{path.name}"
        s3.upload_file(str(path), bucket, key)
    event = {
        "source": "textexplain.cli",
        "detail-type": DetailType.REQUESTED,
        "account": account,
        "detail": {"bucket": bucket, "key": key, "overrides": overrides},
    }
    executions = StepFunctionsExecutions(sfn, targets.state_machine_arn)
    result = start_run(event, Caller(account), S3Storage(s3), executions, targets.settings())
    if result.status == StartStatus.REJECTED:
        raise AwsCliError(result.reason)
    return result.answer()


def follow(
    sfn,
    state_machine_arn: str,
    run_id: str,
    poll_seconds: float = 5.0,
    timeout: float = 6 * 3600,
    report=print,
    attempt: int = 1,
):
    """Wait for the run's execution (of ``attempt``) to end, reporting each state it enters; returns its status."""
    executions, name = StepFunctionsExecutions(sfn, state_machine_arn), execution_name_for(run_id, attempt)
    seen, deadline = 0, time.monotonic() + timeout
    while True:
        entered = executions.states_entered(name)
        for when, state in entered[seen:]:
            report(f"  {when:%H:%M:%S}  {state}")
        seen = len(entered)
        status = executions.status(name)
        if status is None:
            raise AwsCliError(f"no execution {name} of {state_machine_arn}")
        if status != ExecutionStatus.RUNNING or time.monotonic() > deadline:
            return status
        time.sleep(poll_seconds)


def status(s3, results_bucket: str, run_id: str) -> dict:
    """The run's manifest, or a clear answer that it has none yet."""
    layout = RunLayout(results_bucket, run_id)
    manifest = read_manifest(S3Storage(s3), layout)  # a torn one reads as status UNREADABLE, never a crash
    if manifest is not None:
        return manifest
    if S3Storage(s3).list(results_bucket, layout.prefix):
        return {"run_id": run_id, "status": "RUNNING", "reason": "no manifest yet: the run has not finished"}
    raise AwsCliError(f"no run {run_id} in s3://{results_bucket}/runs/")


@dataclass(frozen=True)
class Estimate:
    rows: int
    model_calls: int
    scoring_seconds: float
    job_seconds: float
    cost: float | None


def estimate(
    path: Path,
    text_column: str,
    num_samples: int,
    price_per_hour: float | None,
    rows_per_second: float = DEFAULT_ROWS_PER_SECOND,
) -> Estimate:
    """Model calls (rows × min(num_samples, 2^tokens − 2) + 2 each), job time and cost for a CSV."""
    rows = calls = 0
    with path.open("rb") as fh:
        for _, text in iter_texts(fh, text_column, Limits(max_rows=10**9, max_text_chars=10**9)):
            units = len(tokenize(text))
            calls += 2 + (min(num_samples, 2**units - 2) if 1 < units < 63 else (num_samples if units >= 63 else 0))
            rows += 1
    scoring = calls / rows_per_second
    job = ENDPOINT_STARTUP_SECONDS + scoring
    cost = None if price_per_hour is None else price_per_hour * job / 3600
    return Estimate(rows, calls, scoring, job, cost)

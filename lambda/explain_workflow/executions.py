"""The workflow's executions behind one small interface, beside ``Storage``: what the starter asks of Step Functions.

An ``Executions`` is bound to one state machine and speaks of executions by name (a run's attempts are named by
``runs.execution_name_for``). ``StepFunctionsExecutions`` is the boto3 adapter; anything that keeps the same
promises (a name starts at most one execution, ever) can stand in for it.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Protocol

from explain_workflow.contract import execution_arn


class ExecutionStatus(StrEnum):
    """Step Functions' own words for where an execution is (not a run's status: see contract.RunStatus)."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    ABORTED = "ABORTED"
    PENDING_REDRIVE = "PENDING_REDRIVE"


class ExecutionExists(RuntimeError):
    """An execution of this name exists already (Step Functions never reuses a name)."""


class Executions(Protocol):
    def start(self, name: str, input: dict) -> str:
        """Start the execution ``name`` with ``input``; its ARN. ``ExecutionExists`` when the name is taken."""
        ...

    def status(self, name: str) -> ExecutionStatus | None:
        """Where the execution ``name`` is; None when there is no such execution."""
        ...


class StepFunctionsExecutions:
    """The executions of ``state_machine_arn`` through a boto3 Step Functions client."""

    def __init__(self, client, state_machine_arn: str):
        self.client, self.state_machine_arn = client, state_machine_arn

    def arn(self, name: str) -> str:
        """An execution's ARN from its name, as Step Functions derives it."""
        return execution_arn(self.state_machine_arn, name)

    def start(self, name, input):
        try:
            answer = self.client.start_execution(
                stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(input)
            )
        except self.client.exceptions.ExecutionAlreadyExists:
            raise ExecutionExists(f"an execution named {name} exists already") from None
        return answer["executionArn"]

    def status(self, name):
        try:
            return ExecutionStatus(self.client.describe_execution(executionArn=self.arn(name))["status"])
        except self.client.exceptions.ExecutionDoesNotExist:
            return None

    def states_entered(self, name: str) -> list[tuple[object, str]]:
        """(time, state name) of every state the execution has entered so far, in order (for the CLI's follow)."""
        events, token = [], None
        while True:
            page = self.client.get_execution_history(
                executionArn=self.arn(name), maxResults=1000, **({"nextToken": token} if token else {})
            )
            events.extend(page["events"])
            token = page.get("nextToken")
            if not token:
                break
        entered = (e for e in events if "stateEnteredEventDetails" in e)
        return [(e["timestamp"], e["stateEnteredEventDetails"]["name"]) for e in entered]

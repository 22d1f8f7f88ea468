"""An in-memory ``Executions`` (explain_workflow/executions.py) that keeps the port's promises, for starter tests
that need no Step Functions API; tests/workflow/test_executions.py holds it and the boto3 adapter to the same ones."""

from __future__ import annotations

from explain_workflow.executions import ExecutionExists


class MemoryExecutions:
    """Executions of one state machine by name; ``end`` moves one out of RUNNING as Step Functions would."""

    def __init__(self, machine_arn: str = "arn:aws:states:us-east-1:123456789012:stateMachine:workflow"):
        self.machine_arn = machine_arn
        self.inputs: dict[str, dict] = {}
        self.statuses: dict[str, str] = {}

    def start(self, name: str, input: dict) -> str:
        if name in self.statuses:
            raise ExecutionExists(f"an execution named {name} exists already")
        self.inputs[name], self.statuses[name] = input, "RUNNING"
        return self.machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"

    def status(self, name: str) -> str | None:
        return self.statuses.get(name)

    def end(self, name: str, status: str) -> None:
        self.statuses[name] = status

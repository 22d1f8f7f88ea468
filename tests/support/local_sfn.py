"""Execute a synthesized Step Functions definition on this machine with moto's ASL interpreter.

Task states can be bound to Python callables: Lambda tasks by the function's logical id (the real
handlers), service integrations by ``"<service>:<apiAction>"`` (fakes shaped like the AWS API, e.g.
DescribeProcessingJob). Everything else (Choice, Catch, Retry, JSONPath data flow) is moto's own.
moto's interpreter internals are patched only while an execution runs; pin moto exactly.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from unittest import mock

import boto3
from moto import mock_aws
from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds
from moto.stepfunctions.parser.asl.component.state.exec.state_parallel import branches_decl
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service,
    state_task_service_callback,
    state_task_service_factory,  # noqa: F401 - imports every service class, so all are patched
)
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

from tests.support.api_model import ApiModelError, check_task
from tests.support.cfn import Resolver
from tests.support.lambda_context import Context

REGION, ACCOUNT = "eu-west-1", "111111111111"


class TaskFailed(Exception):
    """Raised by a service binding to fail its task with ``error`` and ``cause``, as AWS would."""

    def __init__(self, error: str, cause: str):
        super().__init__(f"{error}: {cause}")
        self.error, self.cause = error, cause


def definition_from_template(template: dict, region: str = REGION, account: str = ACCOUNT) -> dict:
    """The state machine definition of a synthesized template, with references made concrete."""
    resources = template["Resources"]
    (machine,) = [r for r in resources.values() if r["Type"] == "AWS::StepFunctions::StateMachine"]
    # a Lambda's ARN names the function by its logical id, so tests bind handlers by logical id
    return json.loads(Resolver(template, account, region)(machine["Properties"]["DefinitionString"]))


def quick(definition):
    """The definition with its waits shortened to one second (Wait states' Seconds, the job-follow poll, retry
    intervals), so that the tests run the real definition without waiting as AWS would."""
    if isinstance(definition, dict):
        out = {k: quick(v) for k, v in definition.items()}
        if out.get("Type") == "Wait" and "Seconds" in out:
            out["Seconds"] = 1
        for retry in out.get("Retry", []) if isinstance(out.get("Retry"), list) else []:
            retry["IntervalSeconds"] = 1
        return out
    return [quick(v) for v in definition] if isinstance(definition, list) else definition


def workflow_lambdas(ids: dict[str, str], prepare: Callable[[dict], dict] | None = None) -> dict:
    """The workflow's Lambda tasks bound to the real handlers, each called with a Lambda context, by the logical id
    the template gives each handler (``ids``: handler -> logical id); ``prepare``, if given, stands in for
    prepare's. Import the handlers only once the test's environment is set (call this then)."""
    from postprocess.handler import handler as postprocess
    from prepare.handler import handler as real_prepare
    from record_failure.handler import handler as record_failure

    return {
        ids["prepare.handler.handler"]: prepare or (lambda e: real_prepare(e, Context())),
        ids["postprocess.handler.handler"]: lambda e: postprocess(e, Context()),
        ids["record_failure.handler.handler"]: lambda e: record_failure(e, Context()),
    }


@dataclass
class Execution:
    status: str
    output: dict | None
    error: str | None
    cause: str | None
    path: list[str]
    calls: list[tuple[str, dict]] = field(default_factory=list)


class LocalSfn:
    def __init__(
        self,
        lambdas: dict[str, Callable[[dict], dict]] | None = None,
        services: dict[str, Callable[[dict], dict]] | None = None,
    ):
        self.lambdas = lambdas or {}
        self.services = services or {}
        self.calls: list[tuple[str, dict]] = []
        self.refused: list[str] = []  # requests the service's API model refused (tests/support/api_model.py)

    # -- the three seams --

    def _invoke_lambda(self, parameters: dict, region, state_credentials):
        name = parameters["FunctionName"].rsplit(":", 1)[-1]
        payload = parameters.get("Payload")
        event = json.loads(payload) if isinstance(payload, str | bytes) else payload
        self.calls.append((name, event))
        try:
            return {"StatusCode": 200, "Payload": self.lambdas[name](event)}
        except Exception as exc:  # what Lambda reports for an unhandled exception
            return {
                "StatusCode": 200,
                "FunctionError": "Unhandled",
                "Payload": {"errorType": type(exc).__name__, "errorMessage": str(exc)},
            }

    def _service_task(self, original):
        outer = self

        def eval_service_task(task, env, resource_runtime_part, normalised_parameters, state_credentials):
            key = _key(task)
            if not env.is_running():  # a branch cancelled by its sibling's failure: AWS would not call it
                env.stack.append({})
                return None
            if key not in outer.services:
                return original(task, env, resource_runtime_part, normalised_parameters, state_credentials)
            outer.calls.append((key, normalised_parameters))
            try:
                if not key.startswith("lambda:"):  # a Lambda payload is the handler's to check, not botocore's
                    check_task(key, normalised_parameters)
            except ApiModelError as exc:  # the service would answer ValidationException; the test fails
                outer.refused.append(str(exc))
                raise FailureEventException(
                    FailureEvent(
                        env=env,
                        error_name=StatesErrorName.from_name("States.TaskFailed"),
                        event_type=HistoryEventType.TaskFailed,
                        event_details=EventDetails(
                            taskFailedEventDetails=TaskFailedEventDetails(error="ValidationException", cause=str(exc))
                        ),
                    )
                ) from None
            try:
                env.stack.append(outer.services[key](normalised_parameters))
            except TaskFailed as exc:
                raise FailureEventException(
                    FailureEvent(
                        env=env,
                        error_name=(
                            StatesErrorName.from_name(exc.error)
                            if exc.error.startswith("States.")
                            else CustomErrorName(exc.error)
                        ),
                        event_type=HistoryEventType.TaskFailed,
                        event_details=EventDetails(
                            taskFailedEventDetails=TaskFailedEventDetails(error=exc.error, cause=exc.cause)
                        ),
                    )
                ) from None

        return eval_service_task

    def _integration_pattern(self, original):
        outer = self

        def eval_integration_pattern(task, env, **kwargs):
            if _key(task) in outer.services:
                return None  # the binding already answered with the finished job
            return original(task, env=env, **kwargs)

        return eval_integration_pattern

    def _pattern_check(self, original):
        outer = self

        def assert_supported(task):
            if _key(task) in outer.services:
                return None  # a bound task completes synchronously: .sync needs no support from moto
            return original(task)

        return assert_supported

    def execute(self, definition: dict, execution_input: dict, name: str = "run", timeout: float = 60) -> Execution:
        """Run the definition; raises ApiModelError after the run if a task sent a request its API model refuses."""
        self.calls, self.refused = [], []
        base = state_task_service.StateTaskService
        callback = state_task_service_callback.StateTaskServiceCallback
        with ExitStack() as stack:
            stack.enter_context(mock_aws(config={"stepfunctions": {"execute_state_machine": True}}))
            stack.enter_context(mock.patch.object(lambda_eval_utils, "_invoke_lambda_function", self._invoke_lambda))
            for cls in {base, callback, *_subclasses(base)}:
                if "_eval_service_task" in cls.__dict__:
                    stack.enter_context(
                        mock.patch.object(
                            cls, "_eval_service_task", self._service_task(cls.__dict__["_eval_service_task"])
                        )
                    )
            stack.enter_context(mock.patch.object(TimeoutSeconds, "eval", _literal_timeout))
            stack.enter_context(
                mock.patch.object(
                    callback, "_eval_integration_pattern", self._integration_pattern(callback._eval_integration_pattern)
                )
            )
            stack.enter_context(
                mock.patch.object(
                    callback,
                    "_assert_integration_pattern_is_supported",
                    self._pattern_check(callback._assert_integration_pattern_is_supported),
                )
            )
            # a Parallel fails with its branch's error, States.TaskFailed included (moto would refuse that name)
            stack.enter_context(mock.patch.object(branches_decl, "CustomErrorName", _error_name))
            client = boto3.client("stepfunctions", region_name=REGION)
            arn = client.create_state_machine(
                name="local", definition=json.dumps(definition), roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn"
            )["stateMachineArn"]
            before = set(threading.enumerate())
            execution = client.start_execution(stateMachineArn=arn, name=name, input=json.dumps(execution_input))
            deadline = time.monotonic() + timeout
            while True:
                described = client.describe_execution(executionArn=execution["executionArn"])
                if described["status"] != "RUNNING" or time.monotonic() > deadline:
                    break
                time.sleep(0.005)
            # A Parallel whose branch failed has ended, but moto leaves its sibling branches running in their own
            # threads (Step Functions stops them): wait for them here, inside the patches, so a branch's task
            # neither runs unpatched nor writes to the test's buckets after this returns.
            for thread in set(threading.enumerate()) - before - {t for t in threading.enumerate() if not _moto(t)}:
                thread.join(max(0.0, deadline - time.monotonic()))
                if thread.is_alive():
                    raise TimeoutError(f"a branch of the execution was still running after {timeout} s ({thread})")
            history = client.get_execution_history(executionArn=execution["executionArn"])["events"]
        if self.refused:
            raise ApiModelError("; ".join(self.refused))
        path = [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]
        output = described.get("output")
        return Execution(
            described["status"],
            json.loads(output) if output else None,
            described.get("error"),
            described.get("cause"),
            path,
            list(self.calls),
        )


def _moto(thread: threading.Thread) -> bool:
    """Whether the thread runs moto's code (an execution, a branch, a state): not, say, a progress-bar monitor."""
    target = getattr(thread, "_target", None)  # CPython keeps it until the thread ends
    return getattr(target, "__module__", "").startswith("moto.")


def _literal_timeout(self, env) -> None:
    # moto's eval is a no-op once a sibling branch has failed the Parallel, yet the task still pops the
    # stack for its timeoutInSeconds: it would record the branch's input there, and GetExecutionHistory
    # could not serialize it. A literal TimeoutSeconds is known whatever the state of the run.
    env.stack.append(self.timeout_seconds)


def _error_name(error_name: str):
    return StatesErrorName.from_name(error_name) if error_name.startswith("States.") else CustomErrorName(error_name)


def _key(task) -> str:
    """``sagemaker:createProcessingJob`` (optimized integration), ``aws-sdk:sagemaker:describeProcessingJob``."""
    resource = task.resource
    if resource.service_name == "aws-sdk":
        return f"aws-sdk:{resource.api_name}:{resource.api_action}"
    return f"{resource.service_name}:{resource.api_action}"


def _subclasses(cls) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found

"""Every AWS request the offline tier sees, checked against the service's own API model (botocore's).

botocore's ParamValidator checks member names, required members, types and minimum lengths/values. It does not check
what the model also carries, and what the service enforces on receipt: enums, maximum lengths/values and patterns.
``problems`` adds those from each shape's metadata, so a misspelt field, a wrong type, a name over 63 characters or
an unknown enum value fails the test that sent it, whether the request came from a state machine task (the resolved
Parameters of an optimized integration are the API's request members) or from a function's boto3 client.

Patterns are matched as whole-value matches (``re.fullmatch``): the services validate the whole value.
"""

from __future__ import annotations

import json
import re
from functools import cache

import botocore.session
from botocore.model import OperationModel, Shape
from botocore.validate import ParamValidator

# Step Functions' optimized integrations (arn:aws:states:::<service>:<action>[.sync]) and the API they call
SERVICE_NAMES = {"sagemaker": "sagemaker", "events": "events", "states": "stepfunctions", "s3": "s3"}


class ApiModelError(AssertionError):
    """A request the service's API model refuses."""


@cache
def _session():
    return botocore.session.get_session()


@cache
def operation(service: str, action: str) -> OperationModel:
    """The operation of ``service`` named ``action`` (``createProcessingJob`` or ``CreateProcessingJob``)."""
    model = _session().get_service_model(SERVICE_NAMES.get(service, service))
    name = action[0].upper() + action[1:]
    return model.operation_model(name)


def problems(service: str, action: str, params: dict) -> list[str]:
    """What botocore's validator and the model's enum/max/pattern constraints say about ``params``."""
    op = operation(service, action)
    report = ParamValidator().validate(params, op.input_shape)
    found = (
        [line.strip() for line in report.generate_report().splitlines() if line.strip()] if report.has_errors() else []
    )
    found += list(_constraints(params, op.input_shape, ""))
    return found


def check(service: str, action: str, params: dict, where: str = "") -> None:
    """Raise ApiModelError naming each problem of the request."""
    found = problems(service, action, params)
    if found:
        name = operation(service, action).name
        raise ApiModelError(f"{where or service} {name} request refused by the API model: " + "; ".join(found))


def check_task(key: str, params: dict) -> None:
    """A state machine task's resolved Parameters, by its binding key (``sagemaker:createProcessingJob``,
    ``aws-sdk:sagemaker:describeProcessingJob``, ``events:putEvents``)."""
    parts = key.split(":")
    service, action = (parts[1], parts[2]) if parts[0] == "aws-sdk" else (parts[0], parts[1])
    if service == "events" and action == "putEvents":
        # the optimized integration takes Detail as a JSON object and sends it as the string the API takes
        params = {
            **params,
            "Entries": [
                {**e, "Detail": json.dumps(e["Detail"])} if isinstance(e.get("Detail"), dict) else e
                for e in params.get("Entries", [])
            ],
        }
    check(service, action, params, where=f"task {key}:")


def _constraints(value, shape: Shape, path: str):
    meta = shape.metadata
    name = path or shape.name
    if shape.type_name == "structure" and isinstance(value, dict):
        for key, member in shape.members.items():
            if key in value:
                yield from _constraints(value[key], member, f"{path}.{key}" if path else key)
    elif shape.type_name == "list" and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            yield f"{name} has {len(value)} items, more than {meta['max']}"
        for i, item in enumerate(value):
            yield from _constraints(item, shape.member, f"{name}[{i}]")
    elif shape.type_name == "map" and isinstance(value, dict):
        if "max" in meta and len(value) > meta["max"]:
            yield f"{name} has {len(value)} entries, more than {meta['max']}"
        for key, item in value.items():
            yield from _constraints(key, shape.key, f"{name} key {key!r}")
            yield from _constraints(item, shape.value, f"{name}[{key!r}]")
    elif shape.type_name == "string" and isinstance(value, str):
        if shape.enum and value not in shape.enum:
            yield f"{name} is {value!r}, not one of {shape.enum}"
        if "max" in meta and len(value) > meta["max"]:
            yield f"{name} has {len(value)} characters, more than {meta['max']}"
        pattern = meta.get("pattern")
        if pattern and not _matches(pattern, value):
            yield f"{name} {value!r} does not match the pattern {pattern}"
    elif _too_large(shape, value):
        yield f"{name} is {value}, more than {meta['max']}"


def _too_large(shape: Shape, value) -> bool:
    numeric = shape.type_name in ("integer", "long", "float", "double") and isinstance(value, int | float)
    return numeric and "max" in shape.metadata and value > shape.metadata["max"]


@cache
def _compiled(pattern: str):
    try:
        return re.compile(pattern, re.DOTALL)
    except re.error:  # a construct Python's re lacks (e.g. \p{...}): not checked, botocore's checks still apply
        return None


def _matches(pattern: str, value: str) -> bool:
    compiled = _compiled(pattern)
    return compiled is None or compiled.fullmatch(value) is not None


# ---- the definition as synthesized, before any execution ----
#
# An execution checks the Parameters of the tasks it reaches, resolved. A task on a path no test takes (a describe
# call that follows an existing job, an engine's other branch) would go unchecked; so every service task of a
# definition is also checked as written: literal members fully (names, types, enums, lengths, patterns), and a
# ``Member.$`` (a JSONPath or an intrinsic function, resolved only at run time) by its name, standing for the member.


def task_key(resource: str) -> str | None:
    """``sagemaker:createProcessingJob`` / ``aws-sdk:sagemaker:describeProcessingJob`` for a Task's Resource ARN,
    None for a Lambda function ARN (its payload is the handler's contract, not an AWS API's)."""
    prefix = "arn:aws:states:::"
    if not resource.startswith(prefix):
        return None
    key = resource[len(prefix) :].removesuffix(".sync").removesuffix(".waitForTaskToken")
    return None if key.startswith("lambda:") else key


def static_problems(key: str, params: dict) -> list[str]:
    """What the API model says about a task's Parameters as written (``.$`` members stand for their member)."""
    parts = key.split(":")
    service, action = (parts[1], parts[2]) if parts[0] == "aws-sdk" else (parts[0], parts[1])
    if service == "events" and action == "putEvents":  # Detail: an object the integration sends as a string
        params = {
            **params,
            "Entries": [
                {**e, "Detail": json.dumps(e["Detail"])} if isinstance(e.get("Detail"), dict) else e
                for e in params.get("Entries", [])
            ],
        }
    literal, dynamic, unknown = _literal(params, operation(service, action).input_shape, "")
    found = [
        p
        for p in problems(service, action, literal)
        if not any(p == f'Missing required parameter in {where}: "{name}"' for where, name in dynamic)
    ]
    return unknown + found


def definition_problems(definition: dict) -> list[str]:
    """Every problem of every service task of a definition (Parallel branches and Map iterators included)."""
    found = []
    for name, state in all_states(definition).items():
        key = task_key(state.get("Resource", "")) if state.get("Type") == "Task" else None
        if key is not None:
            found += [f"task {name} ({key}): {p}" for p in static_problems(key, state.get("Parameters", {}))]
    return found


def all_states(definition: dict) -> dict[str, dict]:
    """Every state of a definition by name, including those inside Parallel branches and Map iterators."""
    found = {}
    for name, state in definition["States"].items():
        found[name] = state
        for branch in state.get("Branches", []):
            found.update(all_states(branch))
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                found.update(all_states(state[key]))
    return found


def _literal(value, shape: Shape, path: str):
    """(value without its ``.$`` members, [(where, member)] given by a ``.$``, [unknown ``.$`` member names])."""
    where = path or "input"
    if shape.type_name == "structure" and isinstance(value, dict):
        out, dynamic, unknown = {}, [], []
        for key, item in value.items():
            if key.endswith(".$"):
                name = key[:-2]
                if name in shape.members:
                    dynamic.append((where, name))
                else:
                    unknown.append(f'Unknown parameter in {where}: "{key}" (a JSONPath member {name!r}), must be '
                                   f"one of: {', '.join(shape.members)}")  # fmt: skip
            elif key in shape.members:
                out[key], d, u = _literal(item, shape.members[key], f"{path}.{key}" if path else key)
                dynamic += d
                unknown += u
            else:
                out[key] = item  # botocore's validator names it
        return out, dynamic, unknown
    if shape.type_name == "list" and isinstance(value, list):
        out, dynamic, unknown = [], [], []
        for i, item in enumerate(value):
            o, d, u = _literal(item, shape.member, f"{where}[{i}]")
            out.append(o)
            dynamic += d
            unknown += u
        return out, dynamic, unknown
    return value, [], []


# ---- what a stand-in answers ----

# a .sync (run-a-job) task's output is the job's Describe* response
_SYNC_ANSWERS = {"createProcessingJob": "DescribeProcessingJob", "createTransformJob": "DescribeTransformJob"}


def answer_problems(key: str, answer: dict) -> list[str]:
    """What the API model says about a binding's answer to the task ``key``: the operation's output shape (for a
    ``.sync`` create, the Describe* response the integration returns) — member names, types, required members."""
    parts = key.split(":")
    service, action = (parts[1], parts[2]) if parts[0] == "aws-sdk" else (parts[0], parts[1])
    shape = operation(service, _SYNC_ANSWERS.get(action, action)).output_shape
    report = ParamValidator().validate(answer, shape)
    return (
        [line.strip() for line in report.generate_report().splitlines() if line.strip()] if report.has_errors() else []
    )


def checked_binding(key: str, binding, refused: list[str]):
    """``binding`` whose answers (and the Describe* JSON a failed job's cause carries) are checked against the API
    model; each problem is appended to ``refused`` for the test to raise after the run."""

    def call(params: dict):
        try:
            answer = binding(params)
        except Exception as exc:  # a TaskFailed: a failed .sync job's cause is its Describe* response as JSON
            cause = getattr(exc, "cause", None)
            if isinstance(cause, str) and cause.startswith("{") and not key.startswith("aws-sdk:"):
                refused.extend(f"{key} failure cause: {p}" for p in answer_problems(key, json.loads(cause)))
            raise
        refused.extend(f"{key} answer: {p}" for p in answer_problems(key, answer))
        return answer

    return call

"""A pytest plugin that records every AWS call the real Lambda handlers make in the offline tests.

Each botocore call is attributed to the function whose code made it (from the call stack: the handler package or
its logic module), turned into the IAM action and resource AWS authorizes it as, and checked against the
inventory (tests/support/authz_inventory.py). A call the inventory does not list fails the test that made it, with a
message naming the function, the action and the resource: the authorization tests then evaluate that line against
the synthesized templates. Each call's parameters are also checked against the service's API model beyond what
botocore's own validator checks (enums, maximum lengths, patterns: tests/support/api_model.py); a refused one fails
the test too. Calls made by the CLI, the local mode or the tests themselves are not a function's.
"""

from __future__ import annotations

import fnmatch
import json
import os
import sys

import botocore.client
import pytest

from tests.support.api_model import problems
from tests.support.authz_inventory import HANDLER_CALLS

# module (as the Lambda runtime imports it) -> the function whose role makes the call
FUNCTION_MODULES = {
    "prepare.handler": "prepare",
    "postprocess.handler": "postprocess",
    "record_failure.handler": "record_failure",
    "start_run.handler": "starter",
    "explain_workflow.prepare": "prepare",
    "explain_workflow.postprocess": "postprocess",
    "explain_workflow.failure": "record_failure",
    "explain_workflow.start": "starter",
}
CLIENT_CODE = ("textexplain.",)  # the CLI and the local mode: the user's credentials, no function's role
TEST_CODE = ("tests.",)  # test code: calls a handler as the runtime would, or calls AWS itself
SERVICE_PREFIX = {"stepfunctions": "states"}
_S3_ACTIONS = {
    "GetObject": "s3:GetObject", "HeadObject": "s3:GetObject", "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject", "UploadPart": "s3:PutObject", "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload", "DeleteObject": "s3:DeleteObject",
    "DeleteObjects": "s3:DeleteObject", "ListObjectsV2": "s3:ListBucket", "ListObjects": "s3:ListBucket",
    "ListObjectVersions": "s3:ListBucketVersions", "CopyObject": "s3:PutObject",
}  # fmt: skip


def results_bucket() -> str | None:
    """The function's results bucket, from its settings as the handler reads them (the WORKFLOW_SETTINGS JSON)."""
    settings = os.environ.get("WORKFLOW_SETTINGS")
    return json.loads(settings).get("results_bucket") if settings else None


def calling_function() -> str | None:
    """The function whose code made the call, or None when the CLI or the local mode made it.

    The CLI reuses the starter's logic with the user's own credentials, so the nearest project frame is not enough:
    what decides is who called that logic, the CLI (not a function's role) or a test (standing in for the runtime).
    """
    frame, function = sys._getframe(2), None
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if function is None and module in FUNCTION_MODULES:
            function = FUNCTION_MODULES[module]
        elif module.startswith(CLIENT_CODE):
            return None
        elif module.startswith(TEST_CODE):
            return function
        frame = frame.f_back
    return function


def iam_requests(service: str, operation: str, params: dict) -> list[tuple[str, str]]:
    """(IAM action, resource in the inventory's notation) for one API call."""
    if service == "s3":
        action = _S3_ACTIONS.get(operation, f"s3:{operation}")
        if action == "s3:GetObject" and params.get("VersionId"):
            action = "s3:GetObjectVersion"
        bucket = params.get("Bucket", "")
        role = "results" if bucket == results_bucket() else "input"
        if operation == "DeleteObjects":
            return [(action, f"{role}:{o['Key']}") for o in params.get("Delete", {}).get("Objects", [])]
        if action in ("s3:ListBucket", "s3:ListBucketVersions"):
            return [(action, f"{role}:")]
        return [(action, f"{role}:{params.get('Key', '')}")]
    prefix = SERVICE_PREFIX.get(service, service)
    action = f"{prefix}:{operation}"
    if operation == "StartExecution":
        return [(action, "state-machine")]
    if operation in ("DescribeExecution", "StopExecution"):
        return [(action, "execution:" + params.get("executionArn", "").rsplit(":", 1)[-1])]
    if operation == "ListExecutions":
        return [(action, "state-machine")]
    if operation == "PutEvents":
        return [(action, "bus")]
    return [(action, "*")]


def listed(function: str, action: str, resource: str) -> bool:
    return any(a == action and fnmatch.fnmatchcase(resource, r) for a, r in HANDLER_CALLS.get(function, []))


class Recorder:
    def __init__(self):
        self.calls: list[tuple[str, str, str]] = []  # (function, action, resource), this test's
        self.refused: list[str] = []  # what the API model says about this test's function calls

    def install(self):
        original = botocore.client.BaseClient._make_api_call
        recorder = self

        def make_api_call(client, operation_name, api_params):
            function = calling_function()
            if function is not None:
                service = client.meta.service_model.service_name
                for action, resource in iam_requests(service, operation_name, api_params):
                    recorder.calls.append((function, action, resource))
                for problem in problems(service, operation_name, api_params):
                    recorder.refused.append(f"{function}: {service} {operation_name}: {problem}")
            return original(client, operation_name, api_params)

        botocore.client.BaseClient._make_api_call = make_api_call
        return original


RECORDER = Recorder()


@pytest.fixture(scope="session", autouse=True)
def _record_aws_calls():
    original = RECORDER.install()
    yield RECORDER
    botocore.client.BaseClient._make_api_call = original


@pytest.fixture(autouse=True)
def _calls_are_in_the_inventory(_record_aws_calls):
    RECORDER.calls, RECORDER.refused = [], []
    yield
    if RECORDER.refused:
        pytest.fail(
            "a Lambda handler sent a request its service's API model refuses: " + "; ".join(RECORDER.refused),
            pytrace=False,
        )
    missing = sorted({c for c in RECORDER.calls if not listed(*c)})
    if missing:
        pytest.fail(
            "a Lambda handler made AWS calls that tests/support/authz_inventory.py does not list, so no test "
            "evaluates whether its role may make them: "
            + "; ".join(f"{fn}: {action} on {resource}" for fn, action, resource in missing),
            pytrace=False,
        )

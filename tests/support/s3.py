"""A real AWS API on 127.0.0.1: moto in server mode (bench.local_s3, which the benchmarks share), talked to by
unpatched boto3. The test session starts one server (tests/conftest.py ``moto_url``) and empties it before each
test that asks for it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import boto3
import requests

from bench.local_s3 import CREDENTIALS, moto_server
from explain_workflow.contract import SETTINGS_ENV, WorkflowSettings

__all__ = [
    "CREDENTIALS",
    "all_keys",
    "handler_env",
    "handlers_s3",
    "moto_server",
    "remove_buckets",
    "reset",
    "s3_client",
    "upload",
]

# the buckets the workflow's handlers are given in these tests
HANDLER_BUCKETS = ("input", "results")

# what a fresh server answers with: Step Functions records executions without running them
DEFAULT_CONFIG = {"stepfunctions": {"execute_state_machine": False}}


def reset(url: str) -> None:
    """Forget every resource (all services, all accounts) and any configuration an earlier test set."""
    requests.post(url + "/moto-api/reset", timeout=30).raise_for_status()
    requests.post(url + "/moto-api/config", json=DEFAULT_CONFIG, timeout=30).raise_for_status()


def s3_client(endpoint_url: str):
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def all_keys(client, bucket: str) -> dict[str, str]:
    """key -> ETag of every object in ``bucket``, to compare before and after."""
    keys = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.update({obj["Key"]: obj["ETag"] for obj in page.get("Contents", [])})
    return keys


def upload(client, key: str, body: bytes, bucket: str = "input") -> dict:
    """Put ``body`` at ``bucket``/``key``; the run request naming that object (bucket, key, version id, ETag)."""
    client.put_object(Bucket=bucket, Key=key, Body=body)
    head = client.head_object(Bucket=bucket, Key=key)
    return {"bucket": bucket, "key": key, "version_id": head.get("VersionId", ""), "etag": head["ETag"].strip('"')}


def remove_buckets(client, buckets) -> None:
    """Empty each bucket (every object version and delete marker: an unversioned object's version is "null") and
    delete it."""
    for bucket in buckets:
        for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
                client.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
        client.delete_bucket(Bucket=bucket)


def handler_env(monkeypatch, moto_url: str, env: dict[str, str]) -> None:
    """Set ``env`` (what the stack gives a handler) with AWS credentials, moto's S3 on ``moto_url`` as the S3
    endpoint and tracing off; forget the handlers' cached settings and storage, so that they read it."""
    from explain_workflow import aws

    for key, value in (
        CREDENTIALS | env | {"AWS_ENDPOINT_URL_S3": moto_url, "POWERTOOLS_TRACE_DISABLED": "true"}
    ).items():
        monkeypatch.setenv(key, value)
    aws.settings.cache_clear()
    aws.storage.cache_clear()


@contextmanager
def handlers_s3(moto_url: str, monkeypatch, settings: WorkflowSettings | None = None) -> Iterator:
    """The environment the stack gives the Lambda handlers, pointed at moto's S3 on ``moto_url``: credentials, the
    S3 endpoint, ``settings`` as the stack sets them (none: the test sets SETTINGS_ENV itself), tracing off; the
    handlers' cached settings and storage forgotten, on entry and on exit. Yields a client with the input and
    results buckets made; on exit they are removed (``remove_buckets``)."""
    from explain_workflow import aws  # here: tests/conftest.py imports this module, and not every test runs handlers

    env = {"POWERTOOLS_SERVICE_NAME": "workflow"}
    if settings is not None:
        env[SETTINGS_ENV] = settings.model_dump_json()
    handler_env(monkeypatch, moto_url, env)
    client = s3_client(moto_url)
    for bucket in HANDLER_BUCKETS:
        client.create_bucket(Bucket=bucket)
    try:
        yield client
    finally:
        remove_buckets(client, HANDLER_BUCKETS)
        aws.settings.cache_clear()
        aws.storage.cache_clear()

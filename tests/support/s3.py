"""A real AWS API on 127.0.0.1: moto in server mode (bench.local_s3, which the benchmarks share), talked to by
unpatched boto3. The test session starts one server (tests/conftest.py ``moto_url``) and empties it before each
test that asks for it."""

from __future__ import annotations

import boto3
import requests

from bench.local_s3 import CREDENTIALS, moto_server

__all__ = ["CREDENTIALS", "all_keys", "moto_server", "reset", "s3_client", "upload"]

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

"""A real S3 API on 127.0.0.1: moto in server mode (bench.local_s3, which the benchmarks share), talked to by unpatched
boto3."""

from __future__ import annotations

import boto3

from bench.local_s3 import CREDENTIALS, moto_server

__all__ = ["CREDENTIALS", "all_keys", "moto_server", "s3_client"]


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

"""A real S3 API on 127.0.0.1: moto in server mode, talked to by unpatched boto3."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import boto3
from moto.server import ThreadedMotoServer

from textexplain.serving import free_port

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """Start moto's HTTP server on a free loopback port; yields its URL."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


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

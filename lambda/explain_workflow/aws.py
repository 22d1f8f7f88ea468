"""What the three Lambda handlers share: settings from the environment and S3 storage."""

from __future__ import annotations

import functools

import boto3

from explain_workflow.settings import WorkflowSettings
from explain_workflow.storage import CLIENT_CONFIG, S3Storage

__all__ = ["CLIENT_CONFIG", "settings", "storage"]


@functools.cache
def settings() -> WorkflowSettings:
    return WorkflowSettings.from_env()


@functools.cache
def storage() -> S3Storage:
    # boto3 honours AWS_ENDPOINT_URL_S3, so a local S3 API needs no code change
    return S3Storage(boto3.client("s3", config=CLIENT_CONFIG))

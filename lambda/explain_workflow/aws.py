"""The AWS edge the four handlers share: their settings from the environment and their clients, made once per
container (at cold start) and reused by every invocation."""

from __future__ import annotations

import functools

import boto3

from explain_workflow.contract import StarterSettings, WorkflowSettings
from explain_workflow.executions import StepFunctionsExecutions
from explain_workflow.start import Caller
from explain_workflow.storage import CLIENT_CONFIG, S3Storage

__all__ = ["caller", "events", "executions", "settings", "starter", "storage"]


@functools.cache
def settings() -> WorkflowSettings:
    """The stage's workflow settings (``WORKFLOW_SETTINGS``), validated once."""
    return WorkflowSettings.from_env()


@functools.cache
def starter() -> StarterSettings:
    """The starter's own settings (``STARTER_SETTINGS``): who may ask, which state machine, which bus."""
    return StarterSettings.from_env()


@functools.cache
def storage() -> S3Storage:
    # boto3 honours AWS_ENDPOINT_URL_S3, so a local S3 API needs no code change
    return S3Storage(boto3.client("s3", config=CLIENT_CONFIG))


@functools.cache
def caller() -> Caller:
    """Who may ask the starter for a run."""
    return Caller.of(starter())


@functools.cache
def executions() -> StepFunctionsExecutions:
    """The stage's state machine, whose executions the starter starts."""
    return StepFunctionsExecutions(boto3.client("stepfunctions", config=CLIENT_CONFIG), starter().state_machine_arn)


@functools.cache
def events():
    return boto3.client("events", config=CLIENT_CONFIG)

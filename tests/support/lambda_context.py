"""The context object the Lambda runtime passes a handler, with the attributes our handlers and Powertools read."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Context:
    function_name: str = "test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test"
    aws_request_id: str = "req-1"

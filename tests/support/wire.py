"""Reading the container's answers in tests: JSON Lines into records."""

from __future__ import annotations

import json


def decode_jsonlines_response(body: bytes) -> list[dict]:
    return [json.loads(line) for line in body.decode("utf-8").splitlines() if line]

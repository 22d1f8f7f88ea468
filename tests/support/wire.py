"""The container's wire in tests: batches as Clarify builds them, and JSON Lines answers read back into records."""

from __future__ import annotations

import json
import random


def clarify_batch(text: str, n: int, seed: int = 0, baseline: str = "<UNK>") -> list[str]:
    """``n`` perturbed variants of ``text`` the way Clarify builds them: some tokens replaced by the baseline."""
    rng = random.Random(seed)
    tokens = text.split(" ")
    return [" ".join(baseline if rng.random() < 0.5 else tok for tok in tokens) for _ in range(n)]


def decode_jsonlines_response(body: bytes) -> list[dict]:
    return [json.loads(line) for line in body.decode("utf-8").splitlines() if line]

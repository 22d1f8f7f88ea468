"""The request that starts a run, and its per-run overrides, validated with clear errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from explain_workflow.contract import AGG_METHODS, GRANULARITIES, ClarifyOptions, Limits
from explain_workflow.dataset import InputValidationError
from explain_workflow.languages import clarify_language

OVERRIDABLE = ("text_column", "granularity", "language", "num_samples", "baseline", "agg_method", "max_rows", "seed")


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class RunRequest:
    bucket: str
    key: str
    version_id: str = ""
    etag: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)
    attempt: int = 1  # which try of this run the execution is (the starter counts); not part of the identity

    @classmethod
    def from_event(cls, event: dict) -> RunRequest:
        if not isinstance(event, dict):
            raise InputValidationError(f"the request must be a JSON object, got {type(event).__name__}")
        missing = [k for k in ("bucket", "key") if not isinstance(event.get(k), str) or not event.get(k)]
        if missing:
            raise InputValidationError(f"the request lacks {missing}; got keys {sorted(event)}")
        overrides = event.get("overrides") or {}
        if not isinstance(overrides, dict):
            raise InputValidationError("overrides must be a JSON object")
        unknown = sorted(set(overrides) - set(OVERRIDABLE))
        if unknown:
            raise InputValidationError(f"unknown overrides {unknown}; allowed: {list(OVERRIDABLE)}")
        return cls(
            bucket=event["bucket"],
            key=event["key"],
            version_id=str(event.get("version_id") or ""),
            etag=str(event.get("etag") or "").strip('"'),
            overrides=overrides,
            attempt=_attempt(event.get("attempt", 1)),
        )

    @property
    def version(self) -> str:
        return self.version_id or self.etag

    def as_event(self) -> dict:
        return {
            "bucket": self.bucket,
            "key": self.key,
            "version_id": self.version_id,
            "etag": self.etag,
            "overrides": self.overrides,
            "attempt": self.attempt,
        }


def _attempt(value) -> int:
    if not _whole(value) or value < 1:
        raise InputValidationError(f"attempt must be a whole number from 1, got {value!r}")
    return value


def apply_overrides(
    defaults: ClarifyOptions, limits: Limits, overrides: dict[str, Any]
) -> tuple[ClarifyOptions, Limits]:
    """The run's effective Clarify settings and limits. A run may lower max_rows, never raise it.

    Values are normalised to what Clarify's schema takes (language " EN " -> "en"), so two spellings of one
    request are one run.
    """
    values = {k: v for k, v in overrides.items() if k != "max_rows"}
    if "granularity" in values and values["granularity"] not in GRANULARITIES:
        raise InputValidationError(f"granularity {values['granularity']!r} is not one of {list(GRANULARITIES)}")
    if "agg_method" in values and values["agg_method"] not in AGG_METHODS:
        raise InputValidationError(f"agg_method {values['agg_method']!r} is not one of {list(AGG_METHODS)}")
    if "language" in values:
        try:
            values["language"] = clarify_language(values["language"])
        except ValueError as exc:
            raise InputValidationError(str(exc)) from None
    if "num_samples" in values:
        n = values["num_samples"]
        if not _whole(n) or not 1 <= n <= limits.max_num_samples:
            raise InputValidationError(
                f"num_samples must be a whole number from 1 to {limits.max_num_samples} (MAX_NUM_SAMPLES), got {n!r}"
            )
    if "seed" in values and values["seed"] is not None and not _whole(values["seed"]):
        raise InputValidationError(f"seed must be a whole number, got {values['seed']!r}")
    if "baseline" in values and (not isinstance(values["baseline"], str) or not values["baseline"].strip()):
        raise InputValidationError("baseline must be a non-empty string such as '<UNK>'")
    if "text_column" in values and not isinstance(values["text_column"], str | int):
        raise InputValidationError("text_column must be a column name or a 0-based index")
    if "text_column" in values:
        values["text_column"] = str(values["text_column"])
    effective_limits = limits
    if "max_rows" in overrides:
        max_rows = overrides["max_rows"]
        if not _whole(max_rows) or not 1 <= max_rows <= limits.max_rows:
            raise InputValidationError(f"max_rows must be a whole number from 1 to {limits.max_rows}, got {max_rows!r}")
        effective_limits = limits.model_copy(update={"max_rows": max_rows})
    # each value was checked above, with a message naming the override
    return defaults.model_copy(update=values), effective_limits

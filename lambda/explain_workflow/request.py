"""A run's overrides applied to the stage's options and limits, validated with clear errors."""

from __future__ import annotations

from typing import Any

from explain_workflow.contract import (
    AGG_METHODS,
    GRANULARITIES,
    OVERRIDABLE,
    SEED_MAX,
    ClarifyOptions,
    Limits,
    RunRequest,
)
from explain_workflow.dataset import InputValidationError
from explain_workflow.languages import clarify_language

__all__ = ["OVERRIDABLE", "RunRequest", "apply_overrides", "label_column_of"]


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def label_column_of(overrides: dict[str, Any]) -> str | None:
    """The request's label column (a header name), or None; InputValidationError for anything else."""
    value = overrides.get("label_column")
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InputValidationError(f"label_column must be a column name, got {value!r}")
    return value


def apply_overrides(
    defaults: ClarifyOptions, limits: Limits, overrides: dict[str, Any]
) -> tuple[ClarifyOptions, Limits]:
    """The run's effective Clarify settings and limits. A run may lower max_rows, never raise it.

    Values are normalised to what Clarify's schema takes (language " EN " -> "en"), so two spellings of one
    request are one run.
    """
    values = {k: v for k, v in overrides.items() if k not in ("max_rows", "label_column")}
    label_column_of(overrides)
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
                f"num_samples must be a whole number from 1 to {limits.max_num_samples} (limits.max_num_samples), "
                f"got {n!r}"
            )
    seed = values.get("seed")
    if seed is not None and not (_whole(seed) and 0 <= seed <= SEED_MAX):  # numpy's and Clarify's seeds: 32 bits
        raise InputValidationError(f"seed must be a whole number from 0 to {SEED_MAX}, got {values['seed']!r}")
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

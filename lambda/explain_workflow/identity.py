"""A run's identity: everything that decides its result, and the run id hashed from it.

Input (bucket, key, version), the effective options (stage defaults with the request's overrides, seed
included), the row and size limits, and the model (MODEL_IDENTITY; locally the artifact's sha256 or the
endpoint URL, with the labels). A new model or option is a new run; the same request on the same model is
the same run. The starter, prepare and the local mode all call ``run_identity``, so they agree.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from explain_workflow.contract import RunIdentity, WorkflowSettings, check_input_location, shards_mergeable
from explain_workflow.errors import InputValidationError
from explain_workflow.request import RunRequest, apply_overrides

_SLUG_CHARS = re.compile(r"[^a-z0-9]+")


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def run_id_for(parts: dict) -> str:
    """``<slug of the file name>-<16 hex of a hash of the identity>``, at most 57 characters.

    Valid as a Step Functions execution name (also with an ``-a<n>`` attempt suffix) and inside job names.
    """
    digest = hashlib.sha256(canonical_json(parts).encode()).hexdigest()[:16]
    key = str(parts.get("input", {}).get("key", ""))
    name = key.rsplit("/", 1)[-1].rsplit(".", 1)[0].lower()
    slug = _SLUG_CHARS.sub("-", name).strip("-")[:40].strip("-")
    return f"{slug}-{digest}" if slug else digest


def run_identity(request: RunRequest, settings: WorkflowSettings) -> RunIdentity:
    """The identity of ``request`` on this stage; ``InputValidationError`` for an object it may not name or an
    override it cannot take."""
    check_input_location(request.bucket, request.key, settings.results_bucket)
    options, limits = apply_overrides(settings.defaults, settings.limits, request.overrides)
    try:
        shards_mergeable(settings.engine, options.agg_method, settings.processing.instance_count, "overrides")
    except ValueError as exc:
        raise InputValidationError(str(exc)) from None
    parts = {
        "input": {"bucket": request.bucket, "key": request.key, "version": request.version},
        "options": options.model_dump(),
        "limits": {
            "max_rows": limits.max_rows,
            "max_text_chars": limits.max_text_chars,
            "max_object_bytes": limits.max_object_bytes,
        },
        "model": settings.identity_of_model(),
    }
    if request.overrides.get("label_column") is not None:  # only then, so every run id without one is unchanged
        parts["label_column"] = request.overrides["label_column"]
    return RunIdentity(run_id=run_id_for(parts), parts=parts, options=options, limits=limits)


def rejected_identity(request: RunRequest, settings: WorkflowSettings) -> dict:
    """Identity parts of a request whose overrides are invalid: its own run (never a valid run's), so its FAILED
    manifest can say why without touching the run the same file would have with valid options."""
    return {
        "input": {"bucket": request.bucket, "key": request.key, "version": request.version},
        "rejected_overrides": request.overrides,
        "model": settings.identity_of_model(),
    }

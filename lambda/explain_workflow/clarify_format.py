"""Clarify's text-explainability output files: readers for postprocess, writers for the local explainer.

``explanations_shap/out.jsonl`` — one line per input row, in input order::

    {"explanations": [{"feature_name": "text", "data_type": "free_text",
                       "attributions": [{"attribution": [one float per label_headers entry],
                                         "description": {"partial_text": "river", "start_idx": 24}}]}],
     "join_source_value": 7}                      # when the config names a join column

``analysis.json`` — ``{"version": "1.0", "explanations": {"kernel_shap": {"<label>": {
"global_shap_values": {...}, "expected_value": y, "global_top_shap_text": {...}}}}}``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, NamedTuple

from explain_workflow.errors import ClarifyOutputError

SHAP_DIR = "explanations_shap/"
OUT_FILE = SHAP_DIR + "out.jsonl"
ANALYSIS_FILE = "analysis.json"


class Unit(NamedTuple):
    """One explained unit (token, sentence or paragraph) of a text (a tuple: postprocess makes millions)."""

    text: str
    start_idx: int
    attribution: tuple[float, ...]  # one value per label, in label_headers order


@dataclass(frozen=True)
class LocalExplanation:
    units: tuple[Unit, ...]
    join_source_value: int | str | None = None
    feature_name: str = "text"
    # The attribution arrays exactly as out.jsonl wrote them, one per unit, when the line could be matched
    # one-to-one (else empty): postprocess copies them into its results instead of re-formatting every float.
    raw_attributions: tuple[str, ...] = field(default=(), compare=False, repr=False)


# ---- writing (the local explainer, test fixtures) ----


def local_line(explanation: LocalExplanation) -> str:
    record: dict = {
        "explanations": [
            {
                "feature_name": explanation.feature_name,
                "data_type": "free_text",
                "attributions": [
                    {
                        "attribution": list(u.attribution),
                        "description": {"partial_text": u.text, "start_idx": u.start_idx},
                    }
                    for u in explanation.units
                ],
            }
        ]
    }
    if explanation.join_source_value is not None:
        record["join_source_value"] = explanation.join_source_value
    return json.dumps(record, ensure_ascii=False) + "\n"


def write_local(target: BinaryIO, explanations: Iterable[LocalExplanation]) -> int:
    count = 0
    for explanation in explanations:
        target.write(local_line(explanation).encode("utf-8"))
        count += 1
    return count


def analysis_document(
    labels: list[str],
    expected_values: list[float],
    global_shap_values: list[float],
    global_top_tokens: list[dict[str, float]],
    feature_name: str = "text",
) -> dict:
    """``analysis.json`` for a text SHAP analysis, one entry per label."""
    return {
        "version": "1.0",
        "explanations": {
            "kernel_shap": {
                label: {
                    "global_shap_values": {feature_name: global_shap_values[i]},
                    "expected_value": expected_values[i],
                    "global_top_shap_text": {feature_name: global_top_tokens[i]},
                }
                for i, label in enumerate(labels)
            }
        },
    }


# ---- reading (postprocess) ----


def _attribution_arrays(line: str, count: int) -> tuple[str, ...]:
    """The text of each ``"attribution": [...]`` array in the line, or () unless exactly ``count`` are found.

    Called once every unit's attribution has parsed as numbers (so no array holds a bracket). The quoted key can
    also occur inside a string (after an escaped quote); any such extra occurrence changes the count, and then
    the caller re-encodes the parsed values instead.
    """
    pieces = line.split('"attribution"')
    if len(pieces) != count + 1:
        return ()
    arrays = []
    for piece in pieces[1:]:
        start, end = piece.find("["), piece.find("]")
        if start < 0 or end < start or piece[:start].strip() != ":":
            return ()
        arrays.append(piece[start : end + 1])
    return tuple(arrays)


def parse_local_line(line: str, number: int, n_labels: int) -> LocalExplanation:
    """One out.jsonl line; ``number`` is its 1-based line number for error messages."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ClarifyOutputError(f"malformed or truncated JSON: {exc.msg}", line=number) from None
    try:
        explanation = record["explanations"][0]
        raw_units = explanation["attributions"]
        units = []
        for item in raw_units:
            attribution = item["attribution"]
            if len(attribution) != n_labels:
                raise ClarifyOutputError(
                    f"an attribution has {len(attribution)} values but there are {n_labels} labels",
                    line=number,
                )
            try:
                sum(attribution)  # rejects a string, null or list among the values, far cheaper than a type scan
            except TypeError:
                raise ClarifyOutputError("an attribution holds a value that is not a number", line=number) from None
            description = item["description"]
            units.append(Unit(str(description["partial_text"]), int(description["start_idx"]), tuple(attribution)))
    except ClarifyOutputError:
        raise
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ClarifyOutputError(f"unexpected record shape ({type(exc).__name__}: {exc})", line=number) from None
    return LocalExplanation(
        tuple(units),
        record.get("join_source_value"),
        explanation.get("feature_name", "text"),
        _attribution_arrays(line, len(units)),
    )


def iter_local(streams: Iterable[BinaryIO], n_labels: int) -> Iterator[LocalExplanation]:
    """Every line of out.jsonl (and its part files, in order), parsed, streaming."""
    number = 0
    for stream in streams:
        for line in io.TextIOWrapper(stream, encoding="utf-8"):
            number += 1
            if not line.strip():
                raise ClarifyOutputError("empty line", line=number)
            yield parse_local_line(line, number, n_labels)


def out_keys(keys: list[str], clarify_prefix: str) -> list[str]:
    """The local-explanation files under a Clarify output prefix: out.jsonl, or its part files in order."""
    prefix = clarify_prefix + SHAP_DIR
    names = sorted(k for k in keys if k.startswith(prefix) and k[len(prefix) :].startswith("out") and "jsonl" in k)
    if not names:
        raise ClarifyOutputError(f"no {SHAP_DIR}out.jsonl under {clarify_prefix}")
    return names


def expected_values(analysis: dict, labels: list[str]) -> list[float]:
    """Per-label expected values from analysis.json, checked against the run's labels."""
    try:
        per_label = analysis["explanations"]["kernel_shap"]
    except (KeyError, TypeError):
        raise ClarifyOutputError("analysis.json has no explanations.kernel_shap") from None
    missing = [label for label in labels if label not in per_label]
    if missing:
        raise ClarifyOutputError(f"analysis.json lacks labels {missing}; it has {sorted(per_label)}")
    return [float(per_label[label]["expected_value"]) for label in labels]

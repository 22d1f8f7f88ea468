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

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain
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


# ---- writing (the local explainer) ----


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
#
# Strict: JSON's own grammar only (NaN and Infinity are not JSON; a number that overflows to infinity is refused),
# numbers are numbers (``true`` is not 1), text is UTF-8, and every file under explanations_shap/ is one we know.
# Every error names the file and the line.

_NUMBER_TYPES = frozenset((float, int))
KNOWN_SIDE_FILES = frozenset(("baseline.csv",))
_PART = re.compile(r"^out(?:\.jsonl)?(?:[._-]part[-_]?\d+)(?:\.jsonl)?$")
# A multi-instance Clarify job runs Spark, whose writers name parts part-00000-<uuid>[-c000].json[l] and leave a
# _SUCCESS marker and Hadoop .<name>.crc checksums beside them (the names are not documented: any of these is read)
_SPARK_PART = re.compile(r"^part-\d{5}(?:-[0-9A-Za-z-]+?)?(?:-c\d{3})?(?:\.jsonl?)?$")
_SPARK_MARKER = re.compile(r"^(?:_SUCCESS|\..+\.crc)$")


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def strict_json(text: str):
    """json.loads without NaN/Infinity; raises ValueError (json.JSONDecodeError is one) with a message."""
    return _DECODER.decode(text)


def finite_number(value) -> bool:
    return type(value) in _NUMBER_TYPES and math.isfinite(value)


def join_row_id(value) -> int:
    """A row id from join_source_value: 7, 7.0, "7" and "7.0" all name row 7; ValueError otherwise."""
    if type(value) is int:
        return value
    if type(value) is str:
        text = value.strip()
        if text.isdigit():
            return int(text)
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"join_source_value {value!r} is not a row number") from None
    if type(value) is float and math.isfinite(value) and value.is_integer():
        return int(value)
    raise ValueError(f"join_source_value {value!r} is not a row number")


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


def parse_local_line(line: str, number: int, n_labels: int, file: str | None = None) -> LocalExplanation:
    """One out.jsonl line; ``number`` is its 1-based line number in ``file`` for error messages."""

    def error(reason: str) -> ClarifyOutputError:
        return ClarifyOutputError(reason, file=file, line=number)

    try:
        record = strict_json(line)
    except json.JSONDecodeError as exc:
        raise error(f"malformed or truncated JSON: {exc.msg}") from None
    except ValueError as exc:
        raise error(f"not strict JSON: {exc}") from None
    try:
        explanation = record["explanations"][0]
        raw_units = explanation["attributions"]
        _refuse_categorical(explanation, raw_units, error)
        units, values = [], []
        for item in raw_units:
            attribution = item["attribution"]
            if type(attribution) is not list or len(attribution) != n_labels:
                size = len(attribution) if type(attribution) is list else type(attribution).__name__
                raise error(f"an attribution has {size} values but there are {n_labels} labels")
            description = item["description"]
            text, start = description["partial_text"], description["start_idx"]
            if type(text) is not str or type(start) is not int:
                raise error(f"a unit's partial_text {text!r} / start_idx {start!r} is not text / a whole number")
            units.append(Unit(text, start, tuple(attribution)))
            values.append(attribution)
        # every value of the line at once (C loops): numbers only, and finite (an inf or nan makes the sum one)
        flat = list(chain.from_iterable(values))
        if not set(map(type, flat)) <= _NUMBER_TYPES:
            raise error("an attribution holds a value that is not a number (a string, null, true/false, ...)")
        if not math.isfinite(sum(flat)):
            raise error("an attribution holds a value that is not finite")
        join = record.get("join_source_value")
        if join is not None:
            try:
                join = join_row_id(join)
            except ValueError as exc:
                raise error(str(exc)) from None
    except ClarifyOutputError:
        raise
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise error(f"unexpected record shape ({type(exc).__name__}: {exc})") from None
    return LocalExplanation(
        tuple(units),
        join,
        explanation.get("feature_name", "text"),
        _attribution_arrays(line, len(units)),
    )


def _refuse_categorical(explanation: dict, raw_units, error) -> None:
    """Clarify infers each column's type from its values; a text column it took for categorical (short or repeated
    texts) is explained as one value per column, without units or ``description``: say so, and what to do."""
    data_type = explanation.get("data_type", "free_text")
    undescribed = type(raw_units) is list and any(type(u) is dict and "description" not in u for u in raw_units)
    if data_type == "free_text" and not undescribed:
        return
    column = explanation.get("feature_name", "text")
    raise error(
        f"column {column!r} was explained as a {data_type if data_type != 'free_text' else 'non-text'} feature "
        "(attributions without description/partial_text): Clarify inferred its type from its values and took the "
        "texts for categories, which happens with short or repeated texts. Fix: explain longer, more varied texts "
        "(there is no setting that makes Clarify treat the column as free text), or run the stage with explainer "
        "engine 'builtin'"
    )


def iter_lines(stream: BinaryIO, file: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, text) of a UTF-8 JSON-lines stream; an invalid byte or empty line is an error."""
    for number, raw in enumerate(stream, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ClarifyOutputError(
                f"not valid UTF-8 (byte {exc.start} of the line)", file=file, line=number
            ) from None
        if not line.strip():
            raise ClarifyOutputError("empty line", file=file, line=number)
        yield number, line


def out_keys(keys: list[str], clarify_prefix: str) -> list[str]:
    """The local-explanation files under a Clarify output prefix: out.jsonl, or its part files in name order
    (``out.part-00000.jsonl`` and the like, or Spark's ``part-00000-<uuid>.json``).

    Spark's ``_SUCCESS`` marker and ``.<part>.crc`` checksums are skipped; any other file under explanations_shap/
    (a stray upload) is refused by name rather than read as explanations or silently skipped.
    """
    prefix = clarify_prefix + SHAP_DIR
    names, unknown = [], []
    for key in sorted(k for k in keys if k.startswith(prefix)):
        name = key[len(prefix) :]
        if name == "out.jsonl" or _PART.match(name) or _SPARK_PART.match(name):
            names.append(key)
        elif name not in KNOWN_SIDE_FILES and not _SPARK_MARKER.match(name):
            unknown.append(name)
    if unknown:
        raise ClarifyOutputError(
            f"unexpected file {SHAP_DIR}{unknown[0]} beside the explanations"
            + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""),
            file=prefix + unknown[0],
        )
    if not names:
        raise ClarifyOutputError(f"no {SHAP_DIR}out.jsonl under {clarify_prefix}")
    return names


def load_analysis(data: bytes, file: str = ANALYSIS_FILE) -> dict:
    """analysis.json as strict JSON; ClarifyOutputError naming the file otherwise."""
    try:
        return strict_json(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ClarifyOutputError(f"{ANALYSIS_FILE} is not valid UTF-8 (byte {exc.start})", file=file) from None
    except json.JSONDecodeError as exc:
        raise ClarifyOutputError(f"{ANALYSIS_FILE} is not JSON: {exc.msg}", file=file, line=exc.lineno) from None
    except ValueError as exc:
        raise ClarifyOutputError(f"{ANALYSIS_FILE} is not strict JSON: {exc}", file=file) from None


def expected_values(analysis: dict, labels: list[str], file: str = ANALYSIS_FILE) -> list[float]:
    """Per-label expected values from analysis.json, checked against the run's labels: each a finite number."""
    try:
        per_label = analysis["explanations"]["kernel_shap"]
    except (KeyError, TypeError):
        raise ClarifyOutputError("analysis.json has no explanations.kernel_shap", file=file) from None
    if not isinstance(per_label, dict):
        raise ClarifyOutputError("analysis.json's explanations.kernel_shap is not an object", file=file)
    missing = [label for label in labels if label not in per_label]
    if missing:
        raise ClarifyOutputError(f"analysis.json lacks labels {missing}; it has {sorted(per_label)}", file=file)
    values = []
    for label in labels:
        entry = per_label[label]
        if not isinstance(entry, dict) or "expected_value" not in entry:
            raise ClarifyOutputError(f"analysis.json has no expected_value for label {label!r}", file=file)
        value = entry["expected_value"]
        if not finite_number(value):
            raise ClarifyOutputError(
                f"analysis.json's expected_value for label {label!r} is {value!r}, not a finite number", file=file
            )
        values.append(float(value))
    return values


def global_top_tokens(analysis: dict, label: str, file: str = ANALYSIS_FILE) -> dict:
    """Clarify's own ``global_top_shap_text`` of a label ({feature: {token: value}}), checked to be finite numbers."""
    value = analysis["explanations"]["kernel_shap"][label].get("global_top_shap_text", {})
    ok = isinstance(value, dict) and all(
        isinstance(tokens, dict) and all(isinstance(t, str) and finite_number(v) for t, v in tokens.items())
        for tokens in value.values()
    )
    if not ok:
        raise ClarifyOutputError(
            f"analysis.json's global_top_shap_text for label {label!r} is not {{feature: {{token: number}}}}",
            file=file,
        )
    return value

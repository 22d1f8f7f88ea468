"""Turn Clarify's raw output into per-record and per-class results, a report, and the manifest (last).

Streams the frozen input and ``out.jsonl`` line by line in lockstep; memory grows only with the
vocabulary (per-token sums for the class summary) and the records kept for the report.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Iterator
from json.encoder import encode_basestring  # the C string encoder json.dumps(ensure_ascii=False) uses
from operator import add

from explain_workflow import report
from explain_workflow.clarify_format import (
    ANALYSIS_FILE,
    ClarifyOutputError,
    LocalExplanation,
    Unit,
    expected_values,
    iter_local,
    out_keys,
)
from explain_workflow.dataset import read_frozen
from explain_workflow.runs import FAILED, SUCCEEDED, RunLayout, Stopwatch, read_manifest, write_manifest
from explain_workflow.settings import WorkflowSettings
from explain_workflow.storage import Storage, StorageError, read_bytes

TOP_TOKENS = 20
REPORT_MAX_RECORDS = 1000
# Written by the local mode's faithfulness check; a Clarify job in AWS has no such file.
LOCAL_FAITHFULNESS = "local/faithfulness.json"


class TokenTotals:
    """Per token (stripped, lower-cased): how often it was explained and its summed attribution per class."""

    def __init__(self) -> None:
        self._sums: dict[str, list[float]] = {}
        self._counts: dict[str, int] = {}

    def add(self, units: tuple[Unit, ...]) -> None:
        sums, counts = self._sums, self._counts
        for unit in units:
            key = unit.text.strip().lower()
            known = sums.get(key)
            sums[key] = list(unit.attribution) if known is None else list(map(add, known, unit.attribution))
            counts[key] = counts.get(key, 0) + 1

    def top(self, label_index: int, n: int = TOP_TOKENS) -> tuple[list[dict], list[dict]]:
        """Tokens with the largest total positive and negative attribution to one class."""
        column = [(token, sums[label_index]) for token, sums in self._sums.items() if token]

        def row(token: str, total: float) -> dict:
            count = self._counts[token]
            return {"token": token, "total": total, "mean": total / count, "count": count}

        positive = heapq.nlargest(n, (c for c in column if c[1] > 0), key=lambda c: c[1])
        negative = heapq.nsmallest(n, (c for c in column if c[1] < 0), key=lambda c: c[1])
        return [row(*c) for c in positive], [row(*c) for c in negative]


def _prediction(explanation: LocalExplanation, labels: list[str], base: list[float]) -> tuple[str, dict]:
    """Predicted label and probabilities by SHAP additivity: expected value + sum of attributions."""
    attributions = (u.attribution for u in explanation.units)
    column_sums = [sum(column) for column in zip(*attributions, strict=True)] or [0.0] * len(labels)
    probs = [b + s for b, s in zip(base, column_sums, strict=True)]
    predicted = labels[max(range(len(probs)), key=probs.__getitem__)]
    return predicted, {label: round(p, 6) for label, p in zip(labels, probs, strict=True)}


def _aligned(text: str, unit: Unit) -> bool:
    """Whether the unit's text stands in the input text at its start_idx."""
    return unit.start_idx >= 0 and text.startswith(unit.text, unit.start_idx)


def record_of(row_id: int, text: str, explanation: LocalExplanation, labels: list[str], base: list[float]) -> dict:
    """One results/records.jsonl entry (the report's view of a record).

    ``attributions`` of a unit are in the order of ``labels`` (listed in classes.json and the manifest).
    """
    predicted, probabilities = _prediction(explanation, labels, base)
    units = [
        {
            "text": u.text,
            "start_idx": u.start_idx,
            "aligned": _aligned(text, u),
            "attributions": list(u.attribution),
        }
        for u in explanation.units
    ]
    return {
        "row_id": row_id,
        "text": text,
        "predicted_label": predicted,
        "probabilities": probabilities,
        "units": units,
    }


def record_line(
    row_id: int, text: str, explanation: LocalExplanation, labels: list[str], base: list[float]
) -> tuple[str, str, int]:
    """``record_of``'s entry as one JSON line (no newline), with its predicted label and misaligned-unit count.

    Formatting 14 floats per token is most of json.dumps' cost here and Clarify already wrote them as JSON, so the
    attribution arrays are copied from out.jsonl whenever the parser could match them to the units.
    """
    raw = explanation.raw_attributions
    if not raw:
        record = record_of(row_id, text, explanation, labels, base)
        misaligned = sum(not u["aligned"] for u in record["units"])
        return json.dumps(record, ensure_ascii=False), record["predicted_label"], misaligned
    predicted, probabilities = _prediction(explanation, labels, base)
    head = json.dumps(
        {"row_id": row_id, "text": text, "predicted_label": predicted, "probabilities": probabilities},
        ensure_ascii=False,
    )
    units, misaligned = [], 0
    for unit, array in zip(explanation.units, raw, strict=True):
        aligned = _aligned(text, unit)
        misaligned += not aligned
        units.append(
            f'{{"text":{encode_basestring(unit.text)},"start_idx":{unit.start_idx},'
            f'"aligned":{"true" if aligned else "false"},"attributions":{array}}}'
        )
    return f'{head[:-1]},"units":[{",".join(units)}]}}', predicted, misaligned


def _joined(layout: RunLayout, storage: Storage, n_labels: int) -> Iterator[tuple[int, str, LocalExplanation]]:
    keys = out_keys(storage.list(layout.bucket, layout.clarify_prefix), layout.clarify_prefix)
    streams = (storage.open(layout.bucket, key) for key in keys)
    explanations = iter_local(streams, n_labels)
    with storage.open(layout.bucket, layout.dataset_key) as frozen:
        line = 0
        for row_id, text in read_frozen(frozen):
            line += 1
            explanation = next(explanations, None)
            if explanation is None:
                raise ClarifyOutputError(f"out.jsonl ends after {line - 1} lines; the input has more rows", line=line)
            joined = explanation.join_source_value
            if joined is not None and str(joined) != str(row_id):
                raise ClarifyOutputError(f"join_source_value {joined!r} where row {row_id} was expected", line=line)
            yield row_id, text, explanation
        if next(explanations, None) is not None:
            raise ClarifyOutputError(f"out.jsonl has more lines than the {line} input rows", line=line + 1)


def postprocess_run(storage: Storage, run_id: str, settings: WorkflowSettings) -> dict:
    """Write results/ and then manifest.json; raises ``ClarifyOutputError`` (after a FAILED manifest)."""
    layout = RunLayout(settings.results_bucket, run_id)
    existing = read_manifest(storage, layout)
    if existing is not None and existing.get("status") == SUCCEEDED:
        return _answer(layout, existing)
    clock = Stopwatch()
    labels = settings.labels
    try:
        try:
            analysis = json.loads(read_bytes(storage, layout.bucket, layout.clarify_prefix + ANALYSIS_FILE))
        except StorageError:
            raise ClarifyOutputError(f"no {ANALYSIS_FILE} under {layout.clarify_prefix}") from None
        except json.JSONDecodeError as exc:
            raise ClarifyOutputError(f"{ANALYSIS_FILE} is not JSON: {exc.msg}") from None
        base = expected_values(analysis, labels)
        totals = TokenTotals()
        kept: list[dict] = []
        rows = misaligned = 0
        predicted = dict.fromkeys(labels, 0)
        digest = hashlib.sha256()
        with storage.writer(layout.bucket, layout.results_prefix + "records.jsonl", "application/jsonlines") as out:
            for row_id, text, explanation in _joined(layout, storage, len(labels)):
                text_line, label, unaligned = record_line(row_id, text, explanation, labels, base)
                line = (text_line + "\n").encode("utf-8")
                out.write(line)
                digest.update(line)
                rows += 1
                predicted[label] += 1
                misaligned += unaligned
                totals.add(explanation.units)
                if len(kept) < REPORT_MAX_RECORDS:
                    kept.append(record_of(row_id, text, explanation, labels, base))
    except ClarifyOutputError as exc:
        write_manifest(storage, layout, FAILED, stage="postprocess", reason=exc.reason, where=exc.where)
        raise
    clock.lap("records")
    classes = _classes(labels, base, totals, analysis)
    storage.put(
        layout.bucket,
        layout.results_prefix + "classes.json",
        json.dumps(classes, indent=2, ensure_ascii=False).encode(),
        "application/json",
    )
    faithfulness = _optional_json(storage, layout, LOCAL_FAITHFULNESS)
    summary = {
        "faithfulness": {k: v for k, v in faithfulness.items() if k != "per_record"} if faithfulness else None,
        "run_id": run_id,
        "rows": rows,
        "labels": labels,
        "predicted_counts": predicted,
        "misaligned_units": misaligned,
        "records_in_report": len(kept),
    }
    html = report.render(summary, classes, kept)
    storage.put(layout.bucket, layout.results_prefix + "report.html", html.encode(), "text/html; charset=utf-8")
    clock.lap("classes_and_report")
    manifest = write_manifest(
        storage,
        layout,
        SUCCEEDED,
        labels=labels,
        counts={"rows": rows, "misaligned_units": misaligned, "predicted": predicted},
        digests={
            "records_sha256": digest.hexdigest(),
            "analysis_sha256": hashlib.sha256(json.dumps(analysis, sort_keys=True).encode()).hexdigest(),
            **_request_digests(storage, layout),
        },
        results={
            "records": layout.uri(layout.results_prefix + "records.jsonl"),
            "classes": layout.uri(layout.results_prefix + "classes.json"),
            "report": layout.uri(layout.results_prefix + "report.html"),
        },
        timings=clock.timings,
        **({"faithfulness": summary["faithfulness"]} if faithfulness else {}),
    )
    return _answer(layout, manifest)


def _optional_json(storage: Storage, layout: RunLayout, name: str) -> dict:
    try:
        return json.loads(read_bytes(storage, layout.bucket, layout.prefix + name))
    except StorageError:
        return {}


def _request_digests(storage: Storage, layout: RunLayout) -> dict:
    prepared = _optional_json(storage, layout, "request.json")
    return {"input_sha256": prepared.get("input_sha256"), "config_sha256": prepared.get("config_sha256")}


def _classes(labels: list[str], base: list[float], totals: TokenTotals, analysis: dict) -> dict:
    per_label = analysis["explanations"]["kernel_shap"]
    classes = {}
    for i, label in enumerate(labels):
        positive, negative = totals.top(i)
        classes[label] = {
            "expected_value": float(base[i]),
            "top_positive_tokens": positive,
            "top_negative_tokens": negative,
            "clarify_global_top_shap_text": per_label[label].get("global_top_shap_text", {}),
        }
    return classes


def _answer(layout: RunLayout, manifest: dict) -> dict:
    return {
        "run_id": layout.run_id,
        "status": manifest["status"],
        "manifest_s3_uri": layout.uri(layout.manifest_key),
        "results_prefix": layout.uri(layout.results_prefix),
        "records": manifest.get("counts", {}).get("rows", 0),
    }


__all__ = ["ClarifyOutputError", "postprocess_run", "record_line", "record_of"]

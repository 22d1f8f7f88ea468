"""Turn Clarify's raw output and the model's predictions into per-record and per-class results, a report, and the
manifest (last).

Streams the frozen input in row order and joins Clarify's lines to it by ``join_source_value`` (in any order:
lines that arrive early wait in a spill file on disk, not in memory) and the model's predictions by ``row_id``
(flat arrays). Memory grows only with the vocabulary (per-token sums for the class summary), the predictions
(8 bytes per row and label) and the records kept for the report.

What is published is the model's own (``probabilities``, ``predicted_label``) or Clarify's own (attributions,
expected values, ``global_top_shap_text``). The one derived figure, how far expected value + Σφ lies from the
model's probability, goes into the manifest's ``quality`` and is named as derived.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import json
import math
import tempfile
from array import array
from collections.abc import Iterator
from json.encoder import encode_basestring  # the C string encoder json.dumps(ensure_ascii=False) uses
from operator import add

from explain_workflow import report
from explain_workflow.clarify_format import (
    ClarifyOutputError,
    LocalExplanation,
    Unit,
    expected_values,
    global_top_tokens,
    iter_lines,
    out_keys,
    parse_local_line,
)
from explain_workflow.contract import PostprocessResult, RunStatus, WorkflowSettings
from explain_workflow.evaluation import EVALUATION_FILE, Evaluation, labels_key, read_labels
from explain_workflow.parts import frozen_rows, read_analysis
from explain_workflow.predictions import Predictions, read_predictions
from explain_workflow.runs import RunLayout, StaleAttemptError, Stopwatch, finished, write_manifest
from explain_workflow.storage import Storage, StorageError, read_bytes

TOP_TOKENS = 20
MIN_SUPPORT = 5  # a token must occur this often in a view to be ranked there (fewer for small views, see below)
REPORT_MAX_RECORDS = report.REPORT_MAX_RECORDS  # the report's bound (records and bytes): see explain_workflow.report
GAP_DEFINITION = (
    "derived, not a prediction: per record, the largest |expected_value_k + sum of the units' attributions_k - "
    "the model's probability_k| over labels k; Clarify's expected value is the run's mean over fully masked "
    "texts while each record's own base is its own masked text, so this measures that difference plus any "
    "sampling error"
)


def min_support(records: int) -> int:
    """Occurrences a token needs in a view of ``records`` records: 1 per 10 records, from 1 up to MIN_SUPPORT."""
    return max(1, min(MIN_SUPPORT, math.ceil(records / 10)))


class TokenStats:
    """Per token (stripped, lower-cased): occurrences and summed attribution, in two views.

    - predicted: per class c, over the records the model predicted as c, the attribution towards c;
    - all records: per class, over every record.
    A token is ranked by its mean attribution per occurrence (with a minimum support), so a word that is merely
    frequent everywhere does not lead a class.
    """

    def __init__(self, n_labels: int) -> None:
        self.n_labels = n_labels
        self._sums: dict[str, list[float]] = {}
        self._counts: dict[str, int] = {}
        # per class: token -> [summed attribution towards the class over the records predicted as it, occurrences]
        self._predicted: list[dict[str, list]] = [{} for _ in range(n_labels)]
        self._keys: dict[str, str] = {}  # unit text -> token (most texts repeat)
        self.records = 0
        self.records_predicted = [0] * n_labels

    def add(self, units: tuple[Unit, ...], predicted: int | None) -> None:
        sums, counts, keys = self._sums, self._counts, self._keys
        self.records += 1
        if predicted is not None:
            self.records_predicted[predicted] += 1
            of_class = self._predicted[predicted]
        for text, _, attribution in units:
            key = keys.get(text)
            if key is None:
                key = keys[text] = text.strip().lower()
            if not key:
                continue
            known = sums.get(key)
            if known is None:
                sums[key], counts[key] = list(attribution), 1
            else:
                sums[key] = list(map(add, known, attribution))
                counts[key] += 1
            if predicted is not None:
                entry = of_class.get(key)
                if entry is None:
                    of_class[key] = [attribution[predicted], 1]
                else:
                    entry[0] += attribution[predicted]
                    entry[1] += 1

    @staticmethod
    def _ranked(rows: list[tuple[str, float, int]], n: int) -> tuple[list[dict], list[dict]]:
        def row(token: str, mean: float, count: int) -> dict:
            return {"token": token, "mean": mean, "count": count}

        positive = heapq.nlargest(n, (r for r in rows if r[1] > 0), key=lambda r: (r[1], r[2]))
        negative = heapq.nsmallest(n, (r for r in rows if r[1] < 0), key=lambda r: (r[1], -r[2]))
        return [row(*r) for r in positive], [row(*r) for r in negative]

    def predicted_view(self, c: int, n: int = TOP_TOKENS) -> dict:
        support = min_support(self.records_predicted[c])
        totals = self._predicted[c].items()
        rows = [(token, total / count, count) for token, (total, count) in totals if count >= support]
        positive, negative = self._ranked(rows, n)
        return {
            "records": self.records_predicted[c],
            "min_support": support,
            "top_positive_tokens": positive,
            "top_negative_tokens": negative,
        }

    def all_records_view(self, c: int, n: int = TOP_TOKENS) -> dict:
        support = min_support(self.records)
        rows = [
            (token, self._sums[token][c] / count, count) for token, count in self._counts.items() if count >= support
        ]
        positive, negative = self._ranked(rows, n)
        return {
            "records": self.records,
            "min_support": support,
            "top_positive_tokens": positive,
            "top_negative_tokens": negative,
        }


def _aligned(text: str, unit: Unit) -> bool:
    """Whether the unit's text stands in the input text at its start_idx."""
    return unit.start_idx >= 0 and text.startswith(unit.text, unit.start_idx)


def additivity_gap(explanation: LocalExplanation, base: list[float], probabilities: list[float]) -> float:
    """max_k |base_k + Σφ_k - p_k| (derived; see GAP_DEFINITION)."""
    sums = [sum(column) for column in zip(*(u.attribution for u in explanation.units), strict=True)]
    sums = sums or [0.0] * len(base)
    return max(abs(b + s - p) for b, s, p in zip(base, sums, probabilities, strict=True))


def _head(row_id: int, text: str, labels: list[str], prediction: tuple[str, list[float]] | None) -> dict:
    if prediction is None:
        return {"row_id": row_id, "text": text, "predicted_label": None, "probabilities": None,
                "prediction_missing": True}  # fmt: skip
    label, probs = prediction
    return {
        "row_id": row_id,
        "text": text,
        "predicted_label": label,
        "probabilities": dict(zip(labels, probs, strict=True)),
        "prediction_missing": False,
    }


def record_of(
    row_id: int, text: str, explanation: LocalExplanation, labels: list[str], prediction: tuple[str, list[float]] | None
) -> dict:
    """One results/records.jsonl entry (the report's view of a record).

    ``predicted_label`` and ``probabilities`` are the model's own answer for the text (None when the model gave
    none); ``attributions`` of a unit are Clarify's, in the order of ``labels`` (in classes.json and the manifest).
    """
    units = [
        {
            "text": u.text,
            "start_idx": u.start_idx,
            "aligned": _aligned(text, u),
            "attributions": list(u.attribution),
        }
        for u in explanation.units
    ]
    return {**_head(row_id, text, labels, prediction), "units": units}


def record_line(
    row_id: int, text: str, explanation: LocalExplanation, labels: list[str], prediction: tuple[str, list[float]] | None
) -> tuple[str, int]:
    """``record_of``'s entry as one JSON line (no newline), with its misaligned-unit count.

    Formatting 14 floats per token is most of json.dumps' cost here and Clarify already wrote them as JSON, so the
    attribution arrays are copied from out.jsonl whenever the parser could match them to the units.
    """
    raw = explanation.raw_attributions
    if not raw:
        record = record_of(row_id, text, explanation, labels, prediction)
        misaligned = sum(not u["aligned"] for u in record["units"])
        return json.dumps(record, ensure_ascii=False), misaligned
    head = json.dumps(_head(row_id, text, labels, prediction), ensure_ascii=False)
    units, misaligned = [], 0
    for unit, array_text in zip(explanation.units, raw, strict=True):
        aligned = _aligned(text, unit)
        misaligned += not aligned
        units.append(
            f'{{"text":{encode_basestring(unit.text)},"start_idx":{unit.start_idx},'
            f'"aligned":{"true" if aligned else "false"},"attributions":{array_text}}}'
        )
    return f'{head[:-1]},"units":[{",".join(units)}]}}', misaligned


class _Joiner:
    """Clarify's lines matched to the frozen rows by join_source_value (or, without one, by position).

    Rows are read in order; a line for a later row is parked in a spill file on disk and re-read when its row
    comes, so an out-of-order output costs disk, not memory, and an in-order one costs nothing extra.
    """

    def __init__(
        self, lines: Iterator[tuple[str, int, LocalExplanation, str]], n_labels: int, rows: int, first_file: str
    ):
        self.lines, self.n_labels, self.rows = lines, n_labels, rows
        self.position = 0  # lines read so far
        self.parked: dict[int, tuple[int, int, str, int]] = {}  # row -> (offset, length, file, line)
        self.spill = None
        self.last: tuple[str, int] = (first_file, 0)  # so an empty out.jsonl is named too
        self.done = 0  # the last row asked for

    def _park(self, row: int, raw: str, file: str, number: int) -> None:
        if self.spill is None:
            self.spill = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        data = raw.encode("utf-8")
        offset = self.spill.seek(0, 2)
        self.spill.write(data)
        self.parked[row] = (offset, len(data), file, number)

    def _unpark(self, row: int) -> LocalExplanation:
        offset, length, file, number = self.parked.pop(row)
        self.spill.seek(offset)
        return parse_local_line(self.spill.read(length).decode("utf-8"), number, self.n_labels, file)

    def _row_of(self, explanation: LocalExplanation) -> int:
        return explanation.join_source_value if explanation.join_source_value is not None else self.position

    def find(self, row_id: int) -> LocalExplanation:
        self.done = row_id
        if row_id in self.parked:
            return self._unpark(row_id)
        for file, number, explanation, raw in self.lines:
            self.position += 1
            self.last = (file, number)
            row = self._row_of(explanation)
            if row == row_id:
                return explanation
            if not 1 <= row <= self.rows:  # 0 or -3 is no row either, not "a second line"
                raise ClarifyOutputError(
                    f"join_source_value {row} names no input row (rows 1 to {self.rows})", file=file, line=number
                )
            if row < row_id or row in self.parked:
                raise ClarifyOutputError(f"a second line for row {row} (join_source_value)", file=file, line=number)
            self._park(row, raw, file, number)
        file, number = self.last
        raise ClarifyOutputError(
            f"out.jsonl ends after {self.position} lines with no line for row {row_id}; the input has more rows",
            file=file,
            line=number + 1,
        )

    def finish(self) -> None:
        """After the last row: any line left over is one too many."""
        if self.parked:
            row, (_, _, file, number) = min(self.parked.items())
            raise ClarifyOutputError(
                f"join_source_value {row} names no input row (the input has {self.done} rows)",
                file=file,
                line=number,
            )
        for file, number, explanation, _ in self.lines:
            self.position += 1
            row = self._row_of(explanation)
            what = f"a second line for row {row}" if 1 <= row <= self.done else f"line for row {row}"
            raise ClarifyOutputError(
                f"out.jsonl has more lines than the {self.done} input rows: {what}", file=file, line=number
            )

    def close(self) -> None:
        if self.spill is not None:
            self.spill.close()


def _with_raw(storage: Storage, layout: RunLayout, keys: list[str], n_labels: int):
    """(file, line, explanation, raw line) for every Clarify line; raw lines are kept only to park them."""
    for key in keys:
        with storage.open(layout.bucket, key) as stream:
            for number, line in iter_lines(stream, key):
                yield key, number, parse_local_line(line, number, n_labels, key), line


def _joined(
    layout: RunLayout, storage: Storage, n_labels: int, rows: int
) -> Iterator[tuple[int, str, LocalExplanation]]:
    keys = out_keys(storage.list(layout.bucket, layout.clarify_prefix), layout.clarify_prefix)
    joiner = _Joiner(_with_raw(storage, layout, keys, n_labels), n_labels, rows, keys[0])
    try:
        for row_id, text in frozen_rows(storage, layout.bucket, layout.input_prefix):  # dataset.csv or its parts
            explanation = joiner.find(row_id)
            if explanation.join_source_value is None:
                _matches_its_row(explanation, row_id, text, *joiner.last)
            yield row_id, text, explanation
        joiner.finish()
    finally:
        joiner.close()


def _matches_its_row(explanation: LocalExplanation, row_id: int, text: str, file: str, number: int) -> None:
    """A line without a join value is matched to its row by position alone: it is that row's only if every unit's
    text stands in the row's text at its start_idx, else a swapped or shifted output would be published as complete
    with each row carrying another row's units."""
    stray = next((u for u in explanation.units if not _aligned(text, u)), None)
    if stray is not None:
        raise ClarifyOutputError(
            f"a line without join_source_value does not match row {row_id} by its content: unit {stray.text!r} is "
            f"not at character {stray.start_idx} of the row's text",
            file=file,
            line=number,
        )


def _quantile(values: array, q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def _quality(gaps: array) -> dict:
    if not gaps:
        return {"additivity_gap": {"definition": GAP_DEFINITION, "records": 0}}
    return {
        "additivity_gap": {
            "definition": GAP_DEFINITION,
            "records": len(gaps),
            "max": max(gaps),
            "mean": sum(gaps) / len(gaps),
            "p95": _quantile(gaps, 0.95),
        }
    }


def postprocess_run(
    storage: Storage,
    run_id: str,
    settings: WorkflowSettings,
    faithfulness: dict | None = None,
    engine: str | None = None,
    attempt: int | None = None,
) -> PostprocessResult:
    """Write results/ and then manifest.json; raises ``ClarifyOutputError`` (after a FAILED manifest).

    ``faithfulness`` is a deletion check the caller ran itself (the local mode does; a Clarify job has none): its
    summary goes into the report and the manifest as given. ``engine`` is what the report calls the explainer
    (default: the stage's engine, settings.engine, else "clarify"; the local mode names itself). ``attempt`` is the
    attempt this call belongs to (the workflow passes prepare's): older than the attempt request.json was prepared
    for, it publishes nothing and raises ``StaleAttemptError``, since the files it would read are the newer one's.
    """
    layout = RunLayout(settings.results_bucket, run_id)
    done = finished(storage, layout)
    if done is not None:
        return _answer(layout, done)
    try:
        prepared = _optional_json(storage, layout, "request.json")
    except ClarifyOutputError as exc:
        write_manifest(storage, layout, RunStatus.FAILED, stage="postprocess", reason=exc.reason, where=exc.where)
        raise
    prepared_for = prepared.get("attempt", 1)
    if attempt is not None and type(prepared_for) is int and attempt < prepared_for:
        raise StaleAttemptError(
            f"run {run_id}: attempt {attempt} reached postprocess after attempt {prepared_for} was prepared; "
            "it publishes nothing"
        )
    attempt = prepared_for
    clock = Stopwatch()
    labels = settings.labels
    writing = None  # the result being written, named when writing it fails (a full disk, say)
    try:
        # Clarify's analysis.json, or the builtin job's parts merged into the same document
        analysis, analysis_key = read_analysis(storage, layout.bucket, layout.clarify_prefix, labels)
        base = expected_values(analysis, labels, analysis_key)
        clarify_top = {label: global_top_tokens(analysis, label, analysis_key) for label in labels}
        expected_rows = prepared.get("rows")
        if not isinstance(expected_rows, int) or isinstance(expected_rows, bool):
            expected_rows = _count_rows(storage, layout)  # request.json is prepare's; count if it is not there
        predictions = read_predictions(storage, layout.bucket, layout.predict_output_prefix, labels, expected_rows)
        clock.lap("analysis_and_predictions")
        stats = TokenStats(len(labels))
        kept: list[dict] = []
        evaluation = _evaluation(storage, layout, labels, prepared.get("label_column"))
        rows = misaligned = 0
        predicted = dict.fromkeys(labels, 0)
        gaps = array("d")
        missing: list[int] = []
        digest = hashlib.sha256()
        index = {label: i for i, label in enumerate(labels)}
        writing = "records.jsonl"
        with storage.writer(layout.bucket, layout.results_prefix + writing, "application/jsonlines") as out:
            for row_id, text, explanation in _joined(layout, storage, len(labels), expected_rows):
                prediction = predictions.get(row_id)
                text_line, unaligned = record_line(row_id, text, explanation, labels, prediction)
                if evaluation is not None:  # the row's label beside the model's prediction
                    evaluation.add(row_id, explanation.units, prediction)
                    label = evaluation.label_of(row_id)
                    text_line = f"{text_line[:-1]},{_label_field(label)}}}"
                line = (text_line + "\n").encode("utf-8")
                out.write(line)
                digest.update(line)
                rows += 1
                misaligned += unaligned
                if prediction is None:
                    missing.append(row_id)
                    stats.add(explanation.units, None)
                else:
                    predicted[prediction[0]] += 1
                    gaps.append(additivity_gap(explanation, base, prediction[1]))
                    stats.add(explanation.units, index[prediction[0]])
                if len(kept) < REPORT_MAX_RECORDS:
                    kept.append(record_of(row_id, text, explanation, labels, prediction))
                    if evaluation is not None:
                        kept[-1]["label"] = label
        writing = None
        clock.lap("records")
        classes = _classes(labels, base, stats, clarify_top)
        writing = "classes.json"
        storage.put(
            layout.bucket,
            layout.results_prefix + writing,
            json.dumps(classes, indent=2, ensure_ascii=False).encode(),
            "application/json",
        )
        gaps_missing = _missing(missing, predictions)
        quality = _quality(gaps)
        summary = {
            "run_id": run_id,
            "model": (prepared.get("identity") or {}).get("model") or settings.identity_of_model(),
            "engine": engine or getattr(settings, "engine", None) or "clarify",
            "rows": rows,
            "labels": labels,
            "predicted_counts": predicted,
            "misaligned_units": misaligned,
            "quality": quality,
            "missing": gaps_missing,
            "faithfulness": {k: v for k, v in faithfulness.items() if k != "per_record"} if faithfulness else None,
        }
        evaluated = evaluation.document() if evaluation is not None else None
        if evaluated is not None:
            writing = EVALUATION_FILE
            storage.put(layout.bucket, layout.results_prefix + writing, _json(evaluated), "application/json")
        # what the report is rendered from, so `textexplain report` renders exactly this (report.render_dir)
        writing = report.SUMMARY_FILE
        storage.put(layout.bucket, layout.results_prefix + writing, _json(summary), "application/json")
        html = report.render(summary, classes, kept, evaluated)
        writing = "report.html"
        storage.put(layout.bucket, layout.results_prefix + writing, html.encode(), "text/html; charset=utf-8")
    except StorageError as exc:  # a file of the run itself is missing: the run cannot complete
        error = ClarifyOutputError(f"a file of the run cannot be read: {exc}")
        write_manifest(storage, layout, RunStatus.FAILED, stage="postprocess", attempt=attempt, reason=error.reason)
        raise error from None
    except ClarifyOutputError as exc:
        write_manifest(
            storage, layout, RunStatus.FAILED, stage="postprocess", attempt=attempt, reason=exc.reason, where=exc.where
        )
        raise
    except OSError as exc:  # the local disk (a full /tmp or --out, a quota, an I/O error): never a run without a word
        _not_written(storage, layout, attempt, writing, exc)
    clock.lap("classes_and_report")
    manifest = write_manifest(
        storage,
        layout,
        RunStatus.SUCCEEDED,
        attempt=attempt,
        complete=not gaps_missing,
        **({"missing": gaps_missing} if gaps_missing else {}),
        identity=prepared.get("identity"),
        labels=labels,
        counts={
            "rows": rows,
            "misaligned_units": misaligned,
            "predicted": predicted,
            "predictions_missing": len(missing),
        },
        quality=quality,
        digests={
            "records_sha256": digest.hexdigest(),
            "analysis_sha256": hashlib.sha256(json.dumps(analysis, sort_keys=True).encode()).hexdigest(),
            "input_sha256": prepared.get("input_sha256"),
            "config_sha256": prepared.get("config_sha256"),
        },
        results={
            "records": layout.uri(layout.results_prefix + "records.jsonl"),
            "classes": layout.uri(layout.results_prefix + "classes.json"),
            "report": layout.uri(layout.results_prefix + "report.html"),
            "summary": layout.uri(layout.results_prefix + report.SUMMARY_FILE),
            **({"evaluation": layout.uri(layout.results_prefix + EVALUATION_FILE)} if evaluated else {}),
        },
        timings=clock.timings,
        **({"faithfulness": summary["faithfulness"]} if faithfulness else {}),
    )
    return _answer(layout, manifest)


def _not_written(storage: Storage, layout: RunLayout, attempt: int, writing: str | None, exc: OSError):
    """A FAILED manifest naming what could not be written and why, after removing the results this attempt wrote (a
    half set is never left, and on a full disk their space is what the manifest needs); raises OSError saying so,
    or saying that the manifest could not be written either."""
    what = f"{layout.results_prefix}{writing}" if writing else "a file of the run"
    reason = f"{what} could not be {'written' if writing else 'read or written'}: {exc.strerror or exc}"
    with contextlib.suppress(OSError, StorageError):  # the manifest below is what matters
        storage.delete(layout.bucket, storage.list(layout.bucket, layout.results_prefix))
    try:
        write_manifest(storage, layout, RunStatus.FAILED, stage="postprocess", attempt=attempt, reason=reason)
    except (OSError, StorageError) as second:
        raise OSError(exc.errno, f"{reason}; the FAILED manifest could not be written either: {second}") from exc
    raise OSError(exc.errno, reason) from exc


def _missing(missing: list[int], predictions: Predictions) -> dict:
    """What the results lack, said exactly (empty when nothing is missing)."""
    if not missing:
        return {}
    return {
        "predictions": {
            "rows": len(missing),
            "row_ids": missing[:100],
            "row_ids_truncated": len(missing) > 100,
            "reason": predictions.absent_reason or f"{predictions.source} has no line for these rows",
            "effect": "these records have predicted_label and probabilities null and count in no class's "
            "predicted view",
        }
    }


def _json(value: dict) -> bytes:
    return json.dumps(value, indent=2, ensure_ascii=False).encode()


def _label_field(label: str | None) -> str:
    return '"label":' + json.dumps(label, ensure_ascii=False)


def _evaluation(storage: Storage, layout: RunLayout, labels: list[str], label_column) -> Evaluation | None:
    """The labels prepare kept beside the dataset (when the request named a label column), ready to evaluate."""
    if label_column is None:
        return None
    key = labels_key(layout.prefix)
    try:
        with storage.open(layout.bucket, key) as stream:
            truth = read_labels(stream, key)
    except StorageError:
        raise ClarifyOutputError(f"the request names label column {label_column!r} but {key} is missing") from None
    return Evaluation(labels, label_column, truth)


def _count_rows(storage: Storage, layout: RunLayout) -> int:
    return sum(1 for _ in frozen_rows(storage, layout.bucket, layout.input_prefix))


def _optional_json(storage: Storage, layout: RunLayout, name: str) -> dict:
    """A JSON object file of the run ({} when absent); ClarifyOutputError naming it when it is not one."""
    key = layout.prefix + name
    try:
        value = json.loads(read_bytes(storage, layout.bucket, key))
    except StorageError:
        return {}
    except ValueError as exc:
        raise ClarifyOutputError(f"{name} of the run is not JSON: {exc}", file=key) from None
    if not isinstance(value, dict):
        raise ClarifyOutputError(f"{name} of the run is not a JSON object", file=key)
    return value


def _classes(labels: list[str], base: list[float], stats: TokenStats, clarify_top: dict) -> dict:
    classes = {}
    for i, label in enumerate(labels):
        classes[label] = {
            "expected_value": float(base[i]),
            "ranking": "mean attribution per occurrence, tokens with at least min_support occurrences",
            "predicted_as_this_class": stats.predicted_view(i),
            "all_records": stats.all_records_view(i),
            "clarify_global_top_shap_text": clarify_top[label],
        }
    return classes


def _answer(layout: RunLayout, manifest: dict) -> PostprocessResult:
    return PostprocessResult(
        run_id=layout.run_id,
        status=manifest["status"],
        attempt=manifest.get("attempt", 1),
        complete=manifest.get("complete", manifest["status"] == RunStatus.SUCCEEDED),
        manifest_s3_uri=layout.uri(layout.manifest_key),
        results_prefix=layout.uri(layout.results_prefix),
        records=manifest.get("counts", {}).get("rows", 0),
    )


__all__ = ["ClarifyOutputError", "postprocess_run", "record_line", "record_of"]

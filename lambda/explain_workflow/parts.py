"""The parts a sharded explanation job writes, and how a run reads them as one.

A builtin job on N instances writes, per instance i, ``clarify/analysis.part-{i:05d}.json`` (partial aggregates, this
module's format), ``clarify/explanations_shap/out.part-{i:05d}.jsonl`` and
``predict/output/rows.part-{i:05d}.jsonl.out`` (the formats of Clarify's out.jsonl and Batch Transform's
rows.jsonl.out). Prepare writes the frozen dataset as
``input/dataset.part-{i:05d}.csv``. Postprocess reads either the single files or the parts, so nothing after the job
depends on the engine or the instance count.

An analysis part holds what ``analysis.json`` is made of, as sums and counts, so parts merge exactly (up to float
rounding): per label the sum of f_none over the records, the sum of |phi| (mean_abs) or phi^2 (mean_sq) over every
unit, and the same per lower-cased token. A median cannot be merged from parts: a median part carries its finished
values, and more than one median part with records is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence

from explain_workflow.errors import ClarifyOutputError

PART_FORMAT = "textexplain-analysis-part/1"
ANALYSIS_PART = re.compile(r"^analysis\.part-(\d{5})\.json$")
DATASET_PART = re.compile(r"^dataset\.part-(\d{5})\.csv$")
PREDICTIONS_PART = re.compile(r"^rows\.part-(\d{5})\.jsonl\.out$")
AGG_METHODS = ("mean_abs", "mean_sq", "median")
MERGEABLE = ("mean_abs", "mean_sq")
DEFAULT_MAX_TOP_TOKENS = 50  # Clarify's default for text_config.max_top_tokens


def part_name(kind: str, index: int) -> str:
    """The file name of part ``index``: kind is analysis, out, predictions or dataset."""
    names = {
        "analysis": "analysis.part-{:05d}.json",
        "out": "out.part-{:05d}.jsonl",
        "predictions": "rows.part-{:05d}.jsonl.out",
        "dataset": "dataset.part-{:05d}.csv",
    }
    return names[kind].format(index)


class PartAggregate:
    """Accumulates one shard's analysis part, record by record in row order (so a part does not depend on how many
    worker processes explained its records).

    Units are taken in blocks (``BLOCK_RECORDS`` records) and added with numpy in the same order as one at a time
    (``np.add.at`` adds the rows in order; a running sum over ``np.cumsum``): the sums are those of a plain loop, bit
    for bit, at a fraction of its time. numpy is imported only when a record is added (the job's side)."""

    BLOCK_RECORDS = 256

    def __init__(self, labels: Sequence[str], agg_method: str, max_top_tokens: int = DEFAULT_MAX_TOP_TOKENS):
        if agg_method not in AGG_METHODS:
            raise ValueError(f"agg_method {agg_method!r} is not one of {', '.join(AGG_METHODS)}")
        self.labels, self.agg_method, self.max_top_tokens = list(labels), agg_method, max_top_tokens
        k = len(self.labels)
        self.records = 0
        self.f_none_sum = [0.0] * k
        self.units = 0
        self.value_sum = [0.0] * k
        self._index: dict[str, int] = {}  # token -> its row in the sums, in first-occurrence order
        self._counts = None  # (tokens,) int64, and (tokens, k) float64 sums: made at the first block
        self._sums = None
        self._pending: tuple[list[str], list] = ([], [])  # the block's unit texts and value rows

    def add(self, f_none: Sequence[float], units: Iterable[tuple[str, Sequence[float]]]) -> None:
        """One record: its all-masked output and (unit text, attribution per label) for every unit."""
        square = self.agg_method == "mean_sq"
        tokens, values = [], []
        for text, phi in units:
            tokens.append(text.lower())
            values.append([float(v) * float(v) if square else abs(float(v)) for v in phi])
        self.add_values(f_none, tokens, values)

    def add_values(self, f_none: Sequence[float], tokens: Sequence[str], values) -> None:
        """One record as ``add`` takes it, done by halves: its units' texts already lower-cased and their values
        (one row per unit, one column per label) already squared (mean_sq) or absolute (else), as a worker process
        can compute them; the sums, in row order, stay with the one writer of the part, so the part is the same
        whoever computed the values."""
        if len(tokens) != len(values):
            raise ValueError(f"{len(tokens)} unit texts for {len(values)} rows of values")
        self.records += 1
        self.f_none_sum = [s + float(v) for s, v in zip(self.f_none_sum, f_none, strict=True)]
        self._pending[0].extend(tokens)
        if len(tokens):
            self._pending[1].append(values)
        if self.records % self.BLOCK_RECORDS == 0:
            self._flush()

    def _flush(self) -> None:
        import numpy as np

        tokens, blocks = self._pending
        self._pending = ([], [])
        k = len(self.labels)
        if self._sums is None:
            self._counts, self._sums = np.zeros(0, dtype=np.int64), np.zeros((0, k))
        if not tokens:
            return
        values = np.concatenate([np.asarray(b, dtype=np.float64).reshape(-1, k) for b in blocks])
        index = self._index
        for token in dict.fromkeys(tokens):  # the block's tokens in first-occurrence order
            if token not in index:
                index[token] = len(index)
        rows = np.fromiter(map(index.__getitem__, tokens), np.intp, len(tokens))
        if len(index) > len(self._sums):  # the block's new tokens
            grow = len(index) - len(self._sums)
            self._counts = np.concatenate([self._counts, np.zeros(grow, dtype=np.int64)])
            self._sums = np.concatenate([self._sums, np.zeros((grow, k))])
        np.add.at(self._counts, rows, 1)
        np.add.at(self._sums, rows, values)
        running = np.cumsum(np.vstack([np.asarray(self.value_sum, dtype=np.float64), values]), axis=0)
        self.value_sum = running[-1].tolist()
        self.units += len(tokens)

    def document(self, median: tuple[list[float], list[float], list[dict[str, float]]] | None = None) -> dict:
        """The part as JSON; ``median`` is the finished (expected, global, top) when agg_method is median."""
        self._flush()
        part: dict = {
            "format": PART_FORMAT,
            "labels": self.labels,
            "agg_method": self.agg_method,
            "max_top_tokens": self.max_top_tokens,
            "records": self.records,
            "f_none_sum": self.f_none_sum,
        }
        if self.agg_method == "median":
            if median is None:
                raise ValueError("a median part needs its finished values")
            expected, global_values, top = median
            part["median"] = {"expected": expected, "global": global_values, "top": top}
        else:
            counts, sums = self._counts.tolist(), self._sums.tolist()
            part |= {
                "units": self.units,
                "value_sum": self.value_sum,
                "tokens": {tok: {"count": counts[i], "sum": sums[i]} for tok, i in self._index.items()},
            }
        return part


def _check_part(part, labels: list[str], file: str) -> None:
    def bad(reason: str) -> ClarifyOutputError:
        return ClarifyOutputError(f"analysis part: {reason}", file=file)

    if not isinstance(part, dict) or part.get("format") != PART_FORMAT:
        raise bad(f"not a {PART_FORMAT} document")
    if part.get("labels") != labels:
        raise bad(f"labels {part.get('labels')!r} are not the run's {labels!r}")
    if part.get("agg_method") not in AGG_METHODS:
        raise bad(f"agg_method {part.get('agg_method')!r} is not one of {', '.join(AGG_METHODS)}")
    count = part.get("records")
    if type(count) is not int or count < 0:
        raise bad(f"records {count!r} is not a count")
    k = len(labels)
    if not _vector(part.get("f_none_sum"), k):
        raise bad("f_none_sum is not one number per label")
    if part["agg_method"] == "median":
        median = part.get("median")
        if not (isinstance(median, dict) and _vector(median.get("expected"), k) and _vector(median.get("global"), k)):
            raise bad("a median part lacks its expected and global values")
        top = median.get("top")
        if not isinstance(top, list) or len(top) != k or not all(_token_map(t) for t in top):
            raise bad("a median part's top tokens are not one {token: number} per label")
        return
    if type(part.get("units")) is not int or part["units"] < 0 or not _vector(part.get("value_sum"), k):
        raise bad("units / value_sum are not a count and one number per label")
    tokens = part.get("tokens")
    if not isinstance(tokens, dict) or not all(
        isinstance(t, dict) and type(t.get("count")) is int and t["count"] > 0 and _vector(t.get("sum"), k)
        for t in tokens.values()
    ):
        raise bad("tokens are not {token: {count, sum per label}}")


def _vector(value, k: int) -> bool:
    from explain_workflow.clarify_format import finite_number

    return type(value) is list and len(value) == k and all(finite_number(v) for v in value)


def _token_map(value) -> bool:
    from explain_workflow.clarify_format import finite_number

    return isinstance(value, dict) and all(isinstance(t, str) and finite_number(v) for t, v in value.items())


def merge_parts(parts: Sequence[tuple[str, dict]], labels: list[str]) -> tuple[list, list, list[dict[str, float]]]:
    """(expected values, global SHAP values, top tokens per label) of the parts (file name, document) in part order:
    what one process over all the records would have written in analysis.json. ClarifyOutputError naming the part
    when a part is malformed, the parts disagree, or a median would have to be merged."""
    if not parts:
        raise ClarifyOutputError("no analysis parts to merge")
    for file, part in parts:
        _check_part(part, labels, file)
    methods = {part["agg_method"] for _, part in parts}
    tops = {part.get("max_top_tokens", DEFAULT_MAX_TOP_TOKENS) for _, part in parts}
    if len(methods) > 1 or len(tops) > 1:
        raise ClarifyOutputError(
            f"the analysis parts disagree: agg_method {sorted(methods)}, max_top_tokens {sorted(tops)}",
            file=parts[0][0],
        )
    k = len(labels)
    (method,), (max_top,) = methods, tops
    if method == "median":
        filled = [(file, part) for file, part in parts if part["records"] > 0] or [parts[0]]
        if len(filled) > 1:
            raise ClarifyOutputError(
                f"agg_method median cannot be merged from {len(filled)} parts (a median of medians is not the "
                "median); run a median analysis on one instance (processing.instance_count 1)",
                file=filled[1][0],
            )
        median = filled[0][1]["median"]
        return list(median["expected"]), list(median["global"]), [dict(t) for t in median["top"]]
    records = sum(part["records"] for _, part in parts)
    units = sum(part["units"] for _, part in parts)
    f_none = [sum(part["f_none_sum"][j] for _, part in parts) for j in range(k)]
    values = [sum(part["value_sum"][j] for _, part in parts) for j in range(k)]
    tokens: dict[str, list] = {}
    for _, part in parts:
        for token, entry in part["tokens"].items():
            have = tokens.get(token)
            if have is None:
                tokens[token] = [entry["count"], list(entry["sum"])]
            else:
                have[0] += entry["count"]
                have[1] = [a + b for a, b in zip(have[1], entry["sum"], strict=True)]
    expected = [v / records if records else 0.0 for v in f_none]
    global_values = [v / units if units else 0.0 for v in values]
    means = [(token, [s / count for s in sums]) for token, (count, sums) in tokens.items()]
    top = []
    for j in range(k):
        ranked = sorted(means, key=lambda item: -item[1][j])[:max_top]  # stable: ties keep first-occurrence order
        top.append({token: mean[j] for token, mean in ranked})
    return expected, global_values, top


def part_keys(keys: Iterable[str], prefix: str, pattern: re.Pattern) -> list[str]:
    """The keys directly under ``prefix`` whose name is a part of ``pattern``, in part order."""
    found = [k for k in keys if k.startswith(prefix) and pattern.match(k[len(prefix) :])]
    return sorted(found, key=lambda k: int(pattern.match(k[len(prefix) :]).group(1)))


def frozen_dataset_keys(keys: Iterable[str], input_prefix: str) -> list[str]:
    """The frozen dataset of a run: ``input/dataset.csv``, or its shards ``input/dataset.part-*.csv`` in part (and
    so row) order. ClarifyOutputError when both or neither are there."""
    keys = list(keys)
    single = input_prefix + "dataset.csv"
    shards = part_keys(keys, input_prefix, DATASET_PART)
    if single in keys and shards:
        raise ClarifyOutputError(f"the run has both dataset.csv and {len(shards)} dataset parts", file=single)
    if single in keys:
        return [single]
    if not shards:
        raise ClarifyOutputError(f"no frozen dataset (dataset.csv or dataset.part-*.csv) under {input_prefix}")
    return shards


def read_analysis(storage, bucket: str, clarify_prefix: str, labels: list[str]) -> tuple[dict, str]:
    """(analysis document, where it came from): ``analysis.json`` as Clarify writes it, or the merge of the builtin
    job's ``analysis.part-*.json`` written as the same document. ClarifyOutputError when neither (or both) is there."""
    from explain_workflow.clarify_format import ANALYSIS_FILE, analysis_document, load_analysis

    def read(key: str) -> dict:
        with storage.open(bucket, key) as stream:
            return load_analysis(stream.read(), key)

    keys = storage.list(bucket, clarify_prefix)
    single = clarify_prefix + ANALYSIS_FILE
    parts = part_keys(keys, clarify_prefix, ANALYSIS_PART)
    if single in keys and parts:
        raise ClarifyOutputError(f"both {ANALYSIS_FILE} and {len(parts)} analysis parts under {clarify_prefix}")
    if not parts:
        if single not in keys:
            raise ClarifyOutputError(f"no {ANALYSIS_FILE} under {clarify_prefix}")
        return read(single), single
    documents = [(key, read(key)) for key in parts]
    merged = analysis_document(labels, *merge_parts(documents, labels))
    return merged, clarify_prefix + "analysis.part-*.json"


def frozen_rows(storage, bucket: str, input_prefix: str) -> Iterator[tuple[int, str]]:
    """(row_id, text) of the run's frozen dataset, from dataset.csv or its parts in order."""
    from explain_workflow.dataset import read_frozen

    for key in frozen_dataset_keys(storage.list(bucket, input_prefix), input_prefix):
        with storage.open(bucket, key) as frozen:
            yield from read_frozen(frozen)

"""Explain a dataset as a Clarify SHAP job does, and write Clarify's output files."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from explain_workflow.clarify_format import LocalExplanation, Unit
from explain_workflow.contract import ClarifyOptions
from textexplain.explainer import kernel_shap
from textexplain.explainer.units import Span, mask, split_units

MAX_TOP_TOKENS = 50


@dataclass(frozen=True)
class ShapOptions:
    granularity: str = "token"
    language: str = "english"
    baseline: str = "<UNK>"
    num_samples: int = 1000
    agg_method: str = "mean_abs"
    seed: int = 0
    allocation: str = kernel_shap.DEFAULT_ALLOCATION  # not a Clarify option: how the sample is spread over sizes

    @classmethod
    def of(cls, clarify: ClarifyOptions, seed: int) -> ShapOptions:
        """The explainer's options for a run's Clarify options; ``seed`` when the run sets none."""
        return cls(
            clarify.granularity,
            clarify.language,
            clarify.baseline,
            clarify.num_samples,
            clarify.agg_method,
            seed if clarify.seed is None else clarify.seed,
        )


@dataclass
class RecordResult:
    row_id: int
    text: str
    units: list[Span]
    attributions: np.ndarray  # (M, K)
    f_all: np.ndarray  # (K,) model output on the text
    f_none: np.ndarray  # (K,) model output with every unit masked


def record_rng(seed: int, row_id: int) -> np.random.Generator:
    """The random stream of one record: from (seed, row id) only, so a record's coalitions do not
    depend on which records came before it (a resumed run equals an uninterrupted one)."""
    return np.random.default_rng([seed % 2**63, row_id % 2**63, 0x5EED])


class Template:
    """A text as gap, unit, gap, unit, ..., gap; a coalition fills each unit slot with the unit or the baseline."""

    def __init__(self, text: str, units: list[Span], baseline: str):
        self.units, self.baseline = units, baseline
        self.gaps = [
            text[a.end if a else 0 : b.start if b else len(text)]
            for a, b in zip([None, *units], [*units, None], strict=True)
        ]
        self._words = np.array([u.text for u in units], dtype=object)

    def texts(self, masks: np.ndarray) -> list[str]:
        """One text per row of ``masks`` (True = unit kept)."""
        if len(masks) == 0:
            return []
        if not self.units:
            return [self.gaps[0]] * len(masks)
        rows = np.empty((len(masks), 2 * len(self.units) + 1), dtype=object)
        rows[:, 0::2] = self.gaps
        rows[:, 1::2] = np.where(masks, self._words, self.baseline)
        return ["".join(row) for row in rows.tolist()]


def perturbations(
    text: str, units: list[Span], options: ShapOptions, rng: np.random.Generator
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Texts to score: [full, all masked, coalition_1, ...], with the coalition masks and weights."""
    masks, weights = kernel_shap.coalitions(len(units), options.num_samples, rng, options.allocation)
    texts = [text, mask(text, units, [False] * len(units), options.baseline)]
    texts += Template(text, units, options.baseline).texts(masks)
    return texts, masks, weights


def explain_records(
    rows: Iterable[tuple[int, str]],
    score: Callable[[list[str]], np.ndarray],
    options: ShapOptions,
    chunk: int = 8,
    overlap: bool = True,
    score_normalized: Callable[[list[str]], np.ndarray] | None = None,
) -> Iterator[RecordResult]:
    """Explain rows in input order, ``chunk`` records' perturbations per scoring call (so batches stay full).

    With ``overlap`` one chunk is scored in a thread while the next is built: right for a model server in
    another process. An in-process model holds the interpreter while it scores, so there it is off.
    With ``score_normalized`` (a model that takes texts already in its normal form) the perturbed texts
    are built normalised (``normalized.NormalizedTemplate``) and scored with it instead of ``score``.
    """
    from fasttext_server.model import normalize_batch
    from textexplain.explainer.normalized import NormalizedTemplate

    scoring = score if score_normalized is None else score_normalized

    def record_texts(text, units, rng):
        if score_normalized is None:
            return perturbations(text, units, options, rng)
        masks, weights = kernel_shap.coalitions(len(units), options.num_samples, rng, options.allocation)
        template = NormalizedTemplate(text, units, options.baseline)
        ends = np.array([np.ones(len(units)), np.zeros(len(units))], dtype=bool)
        if template.usable:
            return template.texts(ends) + template.texts(masks), masks, weights
        raw = [text, mask(text, units, [False] * len(units), options.baseline)]
        return normalize_batch(raw + Template(text, units, options.baseline).texts(masks)), masks, weights

    def build(chunk_rows):
        planned, texts = [], []
        for row_id, text in chunk_rows:
            units = split_units(text, options.granularity, options.language)
            batch, masks, weights = record_texts(text, units, record_rng(options.seed, row_id))
            planned.append((row_id, text, units, masks, weights, len(texts), len(texts) + len(batch)))
            texts.extend(batch)
        return planned, texts

    def finish(planned, values) -> Iterator[RecordResult]:
        for row_id, text, units, masks, weights, start, stop in planned:
            block = values[start:stop]
            f_all, f_none = block[0], block[1]
            yield RecordResult(
                row_id, text, units, kernel_shap.solve(masks, weights, block[2:], f_all, f_none), f_all, f_none
            )

    iterator = iter(rows)
    if not overlap:
        while True:
            planned, texts = build(itertools.islice(iterator, chunk))
            if not planned:
                return
            yield from finish(planned, scoring(texts))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="score-chunk") as pool:
        in_flight = None
        while True:
            planned, texts = build(itertools.islice(iterator, chunk))
            if in_flight is not None:
                yield from finish(in_flight[0], in_flight[1].result())
                in_flight = None
            if not planned:
                break
            in_flight = (planned, pool.submit(scoring, texts))


def restored(row_id: int, text: str, options: ShapOptions, f_all, f_none, attributions) -> RecordResult | None:
    """A record explained by an earlier, interrupted run, or None when its units no longer match."""
    units = split_units(text, options.granularity, options.language)
    if len(units) != len(attributions):
        return None
    return RecordResult(row_id, text, units, attributions, f_all, f_none)


def to_clarify(result: RecordResult) -> LocalExplanation:
    units = tuple(
        Unit(span.text, span.start, tuple(float(v) for v in phi))
        for span, phi in zip(result.units, result.attributions, strict=True)
    )
    return LocalExplanation(units, result.row_id)


class GlobalAggregate:
    """Accumulates what analysis.json needs: expected values, global SHAP values, top tokens per label."""

    def __init__(self, labels: list[str], agg_method: str):
        self.labels, self.agg_method = labels, agg_method
        self.f_none: list[np.ndarray] = []
        self.values: list[np.ndarray] = []  # per record, (M, K)
        self.tokens: dict[str, list[np.ndarray]] = {}

    def add(self, result: RecordResult) -> None:
        self.f_none.append(result.f_none)
        self.values.append(result.attributions)
        for span, phi in zip(result.units, result.attributions, strict=True):
            self.tokens.setdefault(span.text.lower(), []).append(phi)

    def _aggregate(self, matrix: np.ndarray) -> np.ndarray:
        if len(matrix) == 0:
            return np.zeros(len(self.labels))
        if self.agg_method == "mean_abs":
            return np.abs(matrix).mean(axis=0)
        if self.agg_method == "mean_sq":
            return (matrix**2).mean(axis=0)
        return np.median(matrix, axis=0)

    def document_parts(self) -> tuple[list[float], list[float], list[dict[str, float]]]:
        k = len(self.labels)
        expected = np.mean(self.f_none, axis=0) if self.f_none else np.zeros(k)
        every = np.vstack(self.values) if self.values else np.zeros((0, k))
        global_values = self._aggregate(every)
        per_token = {tok: self._aggregate(np.array(v)) for tok, v in self.tokens.items()}
        top = []
        for j in range(k):
            ranked = sorted(per_token.items(), key=lambda kv: -kv[1][j])[:MAX_TOP_TOKENS]
            top.append({tok: float(v[j]) for tok, v in ranked})
        return expected.tolist(), global_values.tolist(), top

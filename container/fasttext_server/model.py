"""Loading a fastText / BlazingText model and scoring batches into the fixed label order.

Scoring stays fastText's own (``multilinePredict`` with k=-1, the call behind ``predict(list)``);
what this module adds around it is only bookkeeping that must be cheap because Clarify sends
hundreds of thousands of rows: normalisation cached per whitespace chunk within a batch, and one
vectorised scatter of every row's (label, probability) pairs into columns of ``labels``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from fasttext_server.model_file import ModelFileError, read_layout
from fasttext_server.normalize import normalize

LABEL_PREFIX = "__label__"
MODEL_SUFFIXES = (".bin", ".ftz")
PROBE_WORDS = 5  # dictionary words the load-time probe prediction is made of
PROBE_TOLERANCE = 1e-3  # how far a probe's probabilities may sum from 1 (float32 sums, omitted hs labels)
BLOCK_ROWS = 1024  # rows scored together: large enough to amortise the calls, small enough to bound memory

log = logging.getLogger(__name__)


class ModelError(RuntimeError):
    """The model cannot be served as configured (missing, ambiguous, or labels that do not match)."""


def find_model_file(model_dir: str | Path) -> Path:
    """The one fastText model file in ``model_dir`` (BlazingText ``model.bin``, ``*.bin`` or ``*.ftz``)."""
    root = Path(model_dir)
    if not root.is_dir():
        raise ModelError(f"model directory {root} does not exist (set SM_MODEL_DIR or mount /opt/ml/model)")
    found = sorted(p.name for p in root.iterdir())
    candidates = [name for name in found if name.endswith(MODEL_SUFFIXES) and (root / name).is_file()]
    if len(candidates) == 1:
        return root / candidates[0]
    what = f"found: {found}" if found else "the directory is empty"
    if not candidates:
        raise ModelError(f"no fastText model (*.bin or *.ftz) in {root}; {what}")
    raise ModelError(f"more than one model candidate in {root}: {candidates}; keep exactly one ({what})")


def resolve_labels(configured: list[str] | None, model_labels: list[str]) -> list[str]:
    """The output order: ``configured`` when it is exactly the model's label set, else an error.

    Without a configured order, the model's labels sorted (fastText orders them by training
    frequency, which is not a stable contract).
    """
    if configured is None:
        return sorted(model_labels)
    duplicates = sorted({lab for lab in configured if configured.count(lab) > 1})
    missing = sorted(set(model_labels) - set(configured))
    extra = sorted(set(configured) - set(model_labels))
    if duplicates or missing or extra:
        raise ModelError(
            "LABELS does not match the model's labels: "
            f"missing from LABELS {missing}, not in the model {extra}, duplicated {duplicates}; "
            f"the model has {sorted(model_labels)}"
        )
    return list(configured)


class _NormalizedChunks(dict):
    """chunk -> normalised chunk, filled on first use.

    The tokenizer never joins across white space, so normalising each white-space chunk and
    joining with single spaces equals normalising the whole text; Clarify's 500 variants of one
    text share almost all chunks, so each is normalised once per batch.
    """

    def __missing__(self, chunk: str) -> str:
        value = self[chunk] = normalize(chunk)
        return value


def normalize_batch(texts: list[str], cache: dict | None = None) -> list[str]:
    """``[normalize(t) for t in texts]``, computed once per distinct white-space chunk (``cache`` may be
    shared by the blocks of one request)."""
    cache = _NormalizedChunks() if cache is None else cache
    lookup = cache.__getitem__
    # filter(None, ...) drops chunks that normalise to nothing (control characters only)
    return [" ".join(filter(None, map(lookup, text.split()))) for text in texts]


class Classifier:
    """A loaded fastText model answering probability vectors in a fixed label order."""

    def __init__(self, ft_model, labels: list[str] | None = None):
        model_labels = [lab.removeprefix(LABEL_PREFIX) for lab in ft_model.get_labels()]
        self.labels = resolve_labels(labels, model_labels)
        self._predict = ft_model.f.multilinePredict
        self._column = {LABEL_PREFIX + lab: i for i, lab in enumerate(self.labels)}

    @classmethod
    def load(cls, model_dir: str | Path, labels: list[str] | None = None) -> Classifier:
        import fasttext

        path = find_model_file(model_dir)
        try:
            layout = read_layout(path)  # fastText itself loads a truncated file and answers zeros
        except (ModelFileError, OSError) as exc:
            raise ModelError(f"cannot load {path} as a fastText model: {exc}") from exc
        try:
            ft_model = fasttext.load_model(str(path))
        except Exception as exc:  # fastText raises ValueError/RuntimeError with terse messages
            raise ModelError(f"cannot load {path} as a fastText model: {exc}") from exc
        if not ft_model.get_labels():
            raise ModelError(f"{path} is not a supervised fastText model (it has no labels)")
        if len(ft_model.get_labels()) != layout.output_rows:
            raise ModelError(f"{path} has {len(ft_model.get_labels())} labels but {layout.output_rows} output rows")
        classifier = cls(ft_model, labels)
        classifier.probe(ft_model.get_words()[:PROBE_WORDS], layout.loss, path)
        log.info("loaded %s with labels %s", path, classifier.labels)
        return classifier

    def probe(self, words: list[str], loss: str, path: Path) -> None:
        """One prediction at load: every label answered (hierarchical softmax may omit labels below ~1e-5), each in
        [0, 1], summing to 1 except for one-vs-all (independent sigmoids); else the model is refused."""
        texts = [" ".join(words), ""]
        try:
            row_labels, row_probs = self._predict([t + "\n" for t in texts], -1, 0.0, "strict")
        except (RuntimeError, ValueError) as exc:  # "Encountered NaN." for NaN weights
            raise ModelError(f"{path} loads but its probe prediction fails ({exc}): the file is damaged") from None
        for text, got, probs in zip(texts, row_labels, row_probs, strict=True):
            values = np.asarray(probs, dtype=np.float64)
            total = float(values.sum())
            problems = []
            if loss != "hs" and len(got) != len(self.labels):
                problems.append(f"{len(got)} of {len(self.labels)} labels answered")
            if not np.all(np.isfinite(values)) or np.any(values < 0) or np.any(values > 1 + PROBE_TOLERANCE):
                problems.append("probabilities outside [0, 1]")
            if loss != "ova" and abs(total - 1.0) > PROBE_TOLERANCE:
                problems.append(f"probabilities summing to {total:.6g}")
            if problems:
                raise ModelError(
                    f"{path} loads but its probe prediction for {text!r} is broken ({'; '.join(problems)}): "
                    "the file is damaged or not the model it claims to be"
                )

    def predict_normalized(self, texts: list[str]) -> np.ndarray:
        """Probabilities, shape (len(texts), K) float32, for already-normalised one-line texts."""
        n, k = len(texts), len(self.labels)
        if n == 0:
            return np.zeros((0, k), dtype=np.float32)
        row_labels, row_probs = self._predict([t + "\n" for t in texts], -1, 0.0, "strict")
        out = np.zeros((n, k), dtype=np.float32)
        # Rows are usually K long; hierarchical softmax may omit labels below ~1e-5 (they stay 0).
        lengths = np.fromiter(map(len, row_labels), dtype=np.intp, count=n)
        # an index array, not a list: numpy converts a list index element by element (as long as the lookups)
        columns = np.fromiter(
            map(self._column.__getitem__, itertools.chain.from_iterable(row_labels)),
            dtype=np.intp,
            count=int(lengths.sum()),
        )
        out[np.repeat(np.arange(n), lengths), columns] = np.concatenate(row_probs)
        return out

    def predict(self, texts: list[str]) -> np.ndarray:
        """Probabilities for raw texts, normalised exactly as in training."""
        return self.predict_normalized(normalize_batch(texts))

    def predict_blocks(self, texts: list[str], block: int = BLOCK_ROWS, check=None) -> Iterator[np.ndarray]:
        """``predict(texts)`` in consecutive blocks of ``block`` rows, so the per-row objects fastText returns
        (K label strings and an array per row) live for one block only; ``check()`` runs before each block
        (the request's deadline)."""
        cache = _NormalizedChunks()
        for start in range(0, len(texts), block):
            if check is not None:
                check()
            yield self.predict_normalized(normalize_batch(texts[start : start + block], cache))

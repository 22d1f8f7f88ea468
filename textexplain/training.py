"""Train a fastText classifier exactly as the container will serve it, and package it.

The training file is written through the container's own normalisation, so a served model sees
texts the way it was trained on them. The package is a BlazingText-style ``model.tar.gz`` holding
``model.bin`` at its root: what SageMaker extracts into ``/opt/ml/model``.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import logging
import random
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fasttext_server.normalize import normalize

LABEL_PREFIX = "__label__"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hyperparameters:
    """fastText supervised settings; the defaults suit the built-in corpus and train in seconds."""

    epoch: int = 25
    lr: float = 0.5
    dim: int = 16
    word_ngrams: int = 2
    min_count: int = 1
    loss: str = "softmax"
    bucket: int = 200_000
    thread: int = 1  # one thread makes training deterministic for a fixed seed
    seed: int = 0
    extra: dict = field(default_factory=dict)


def training_line(label: str, text: str) -> str:
    """One line of fastText's supervised format. Labels may not contain white space."""
    if not label or any(ch.isspace() for ch in label):
        raise ValueError(f"label {label!r} is empty or contains white space; fastText cannot store it")
    return f"{LABEL_PREFIX}{label} {normalize(text)}\n"


def write_training_file(pairs: Iterable[tuple[str, str]], path: str | Path) -> Path:
    """Write (label, text) pairs in fastText's supervised format; returns the path."""
    path = Path(path)
    with path.open("w", encoding="utf-8") as fh:
        for label, text in pairs:
            fh.write(training_line(label, text))
    return path


def train(pairs: Iterable[tuple[str, str]], hp: Hyperparameters | None = None):
    """Train and return a ``fasttext`` model on (label, text) pairs."""
    import fasttext  # imported here so modules that only package models do not need it

    hp = hp or Hyperparameters()
    with tempfile.TemporaryDirectory(prefix="fasttext-train-") as tmp:
        data = write_training_file(pairs, Path(tmp) / "train.txt")
        lr = hp.lr
        for attempt in range(4):
            try:
                return _train_file(fasttext, data, hp, lr)
            except RuntimeError as exc:
                # fastText stops with "Encountered NaN" when the learning rate diverges: back off, as a person would
                if "NaN" not in str(exc) or attempt == 3:
                    raise
                log.warning("fastText diverged at lr=%s; retrying at lr=%s", lr, lr / 2)
                lr /= 2
    raise AssertionError("unreachable")


def _train_file(fasttext, data: Path, hp: Hyperparameters, lr: float):
    return fasttext.train_supervised(
        input=str(data),
        epoch=hp.epoch,
        lr=lr,
        dim=hp.dim,
        wordNgrams=hp.word_ngrams,
        minCount=hp.min_count,
        loss=hp.loss,
        bucket=hp.bucket,
        thread=hp.thread,
        seed=hp.seed,
        verbose=0,
        **hp.extra,
    )


def model_labels(model) -> list[str]:
    """The model's labels without fastText's ``__label__`` prefix, in the model's own order."""
    return [lab.removeprefix(LABEL_PREFIX) for lab in model.get_labels()]


def package(model_file: str | Path, tar_path: str | Path, arcname: str = "model.bin") -> Path:
    """Package a saved fastText model as SageMaker expects: ``model.tar.gz`` with ``model.bin``.

    The archive depends on the model's bytes only (no timestamps, owners or modes of this machine): its sha256 is
    the local model's identity, part of the run id, so the same model must give the same archive.
    """
    tar_path = Path(tar_path)
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    info = tarfile.TarInfo(arcname)
    info.size, info.mode = Path(model_file).stat().st_size, 0o644
    with (
        open(tar_path, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
        open(model_file, "rb") as source,
    ):
        tar.addfile(info, source)
    return tar_path


@contextlib.contextmanager
def saved(model) -> Iterator[Path]:
    """The model saved to a temporary ``model.bin``, for packaging."""
    with tempfile.TemporaryDirectory(prefix="fasttext-model-") as tmp:
        path = Path(tmp) / "model.bin"
        model.save_model(str(path))
        yield path


def read_labelled_csv(path: str | Path, text_column: str, label_column: str) -> list[tuple[str, str]]:
    """(label, text) pairs from a CSV with a header row; ValueError naming the row on bad input."""
    with Path(path).open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in (text_column, label_column) if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: no column {missing}; the header has {reader.fieldnames}")
        pairs = []
        for row_number, row in enumerate(reader, start=1):
            label, text = (row[label_column] or "").strip(), row[text_column] or ""
            if not label:
                raise ValueError(f"{path}: row {row_number} has an empty label")
            pairs.append((label.replace(" ", "_"), text))
    if not pairs:
        raise ValueError(f"{path}: no data rows")
    return pairs


def train_with_held_out(pairs: list[tuple[str, str]], held_out: float, hp: Hyperparameters | None = None):
    """Train on all but a seeded random ``held_out`` share; returns (accuracy on that share or None, model)."""
    hp = hp or Hyperparameters()
    shuffled = list(pairs)
    random.Random(hp.seed).shuffle(shuffled)
    n_test = int(len(shuffled) * held_out)
    test, train_pairs = shuffled[:n_test], shuffled[n_test:]
    model = train(train_pairs, hp)
    if not test:
        return None, model
    labels, _ = model.predict([normalize(text) for _, text in test], k=1)
    correct = sum(pred[0] == LABEL_PREFIX + label for pred, (label, _) in zip(labels, test, strict=True))
    return correct / len(test), model

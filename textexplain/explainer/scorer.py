"""Score texts through a model server over HTTP, in the CSV batches Clarify sends, several at a time."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import orjson
import requests

from fasttext_server.codec import encode_csv_batch
from fasttext_server.model import normalize_batch


class ScoringError(RuntimeError):
    """The model server refused a batch or answered it wrongly."""


class HttpScorer:
    """``score(texts) -> (n, K)`` probabilities in the server's label order, via POST /invocations."""

    def __init__(self, url: str, batch_rows: int = 500, parallel: int = 4, timeout: float = 60.0):
        self.url = url.rstrip("/") + "/invocations"
        self.batch_rows, self.timeout = batch_rows, timeout
        self._pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="score")
        self._local = threading.local()
        self.requests = 0

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def _batch(self, texts: list[str]) -> np.ndarray:
        resp = self._session().post(
            self.url,
            data=encode_csv_batch(texts),
            headers={"Content-Type": "text/csv", "Accept": "application/jsonlines"},
            timeout=self.timeout,
        )
        if resp.status_code != 200:
            raise ScoringError(f"the model server answered {resp.status_code}: {resp.text[:300]}")
        lines = resp.content.splitlines()
        if len(lines) != len(texts):
            raise ScoringError(f"sent {len(texts)} records, got {len(lines)} answers: the server broke the contract")
        return np.array([orjson.loads(line)["prob"] for line in lines], dtype=np.float64)

    def score(self, texts: list[str]) -> np.ndarray:
        chunks = [texts[i : i + self.batch_rows] for i in range(0, len(texts), self.batch_rows)]
        self.requests += len(chunks)
        return np.vstack(list(self._pool.map(self._batch, chunks)))

    def close(self) -> None:
        self._pool.shutdown()


BLOCK_ROWS = 500  # rows per in-process fastText call, as many as Clarify's batches (and bench explain's model alone)


class InProcessScorer:
    """``score(texts) -> (n, K)`` through the container's own ``Classifier`` (same normalisation, same
    fastText call, same label order as the served model), in this process: no HTTP, CSV or JSON.

    Probabilities are the model's float32 values widened exactly to float64; over HTTP the same values
    arrive as their shortest decimal (they differ below 1e-7).
    """

    def __init__(self, classifier, block_rows: int = BLOCK_ROWS):
        self.classifier = classifier
        self.block_rows = block_rows
        self.requests = 0

    @classmethod
    def load(cls, model_dir, labels: list[str] | None = None) -> InProcessScorer:
        from fasttext_server.model import Classifier

        return cls(Classifier.load(model_dir, labels))

    @property
    def labels(self) -> list[str]:
        return self.classifier.labels

    def score(self, texts: list[str]) -> np.ndarray:
        self.requests += 1
        return self._blocks(self.classifier.predict_normalized, normalize_batch(texts))

    def score_normalized(self, texts: list[str]) -> np.ndarray:
        """For texts already in the model's normal form (``fasttext_server.normalize``)."""
        self.requests += 1
        return self._blocks(self.classifier.predict_normalized, texts)

    def _blocks(self, predict, texts: list[str]) -> np.ndarray:
        # fastText in blocks: the per-row label strings and arrays of thousands of rows at once no longer
        # stay in cache, and the same rows cost about a quarter more (bench explain)
        out = np.empty((len(texts), len(self.labels)), dtype=np.float64)
        for start in range(0, len(texts), self.block_rows):
            out[start : start + self.block_rows] = predict(texts[start : start + self.block_rows])
        return out

    def close(self) -> None:
        pass

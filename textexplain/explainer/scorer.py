"""Score texts through a model server over HTTP, in the CSV batches Clarify sends, several at a time."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import orjson
import requests

from fasttext_server.codec import encode_csv_batch


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


class InProcessScorer:
    """``score(texts) -> (n, K)`` through the container's own ``Classifier`` (same normalisation, same
    fastText call, same label order as the served model), in this process: no HTTP, CSV or JSON.

    Probabilities are the model's float32 values widened exactly to float64; over HTTP the same values
    arrive as their shortest decimal (they differ below 1e-7).
    """

    def __init__(self, classifier):
        self.classifier = classifier
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
        return self.classifier.predict(texts).astype(np.float64)

    def score_normalized(self, texts: list[str]) -> np.ndarray:
        """For texts already in the model's normal form (``fasttext_server.normalize``)."""
        self.requests += 1
        return self.classifier.predict_normalized(texts).astype(np.float64)

    def close(self) -> None:
        pass

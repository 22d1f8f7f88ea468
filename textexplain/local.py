"""A whole explanation run on this machine: the same prepare, Clarify-format output, postprocess.

Storage is a directory laid out like the two S3 buckets (``<out>/input/...``, ``<out>/results/runs/<run_id>/``),
so the files of a local run are exactly those of an AWS run. The model answers over HTTP: either the
container's ``serve`` started here on 127.0.0.1 from a ``model.tar.gz``, or any endpoint URL.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from explain_workflow import clarify_format
from explain_workflow.dataset import read_frozen
from explain_workflow.postprocess import LOCAL_FAITHFULNESS, postprocess_run
from explain_workflow.prepare import ALREADY_DONE, prepare_run
from explain_workflow.runs import RunLayout
from explain_workflow.settings import ClarifyDefaults, Limits, WorkflowSettings
from explain_workflow.storage import FileStorage
from textexplain.explainer.explain import GlobalAggregate, ShapOptions, explain_records, to_clarify
from textexplain.explainer.scorer import HttpScorer
from textexplain.explainer.units import mask
from textexplain.serving import ServeProcess

INPUT_BUCKET, RESULTS_BUCKET = "input", "results"


class LocalRunError(RuntimeError):
    """A local run cannot start (bad model package, unreadable file)."""


@dataclass
class LocalRun:
    data: Path
    out: Path
    labels: list[str]
    overrides: dict = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    seed: int = 0

    def settings(self) -> WorkflowSettings:
        return WorkflowSettings(
            results_bucket=RESULTS_BUCKET, labels=self.labels, model_name="local", limits=self.limits
        )


def extract_model(tarball: Path, into: Path) -> Path:
    """Extract ``model.tar.gz`` as SageMaker does into /opt/ml/model; refuses paths that escape."""
    try:
        with tarfile.open(tarball) as tar:
            tar.extractall(into, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise LocalRunError(f"{tarball} is not a readable model.tar.gz: {exc}") from None
    return into


def model_labels(model_dir: Path) -> list[str]:
    from fasttext_server.model import Classifier, ModelError

    try:
        return Classifier.load(model_dir).labels
    except ModelError as exc:
        raise LocalRunError(str(exc)) from None


@contextlib.contextmanager
def model_endpoint(tarball: Path | None, endpoint_url: str | None, labels: list[str] | None, workers: int = 2):
    """Yields (url, labels): a served ``model.tar.gz`` on loopback, or the given endpoint."""
    if endpoint_url:
        if not labels:
            raise LocalRunError("--labels is required with --endpoint-url (the endpoint's answer order)")
        yield endpoint_url, labels
        return
    with tempfile.TemporaryDirectory(prefix="opt-ml-model-") as tmp:
        model_dir = extract_model(Path(tarball), Path(tmp))
        order = labels or model_labels(model_dir)
        with ServeProcess(model_dir, order, workers=workers) as server:
            yield server.url, order


def faithfulness(results, score: Callable[[list[str]], np.ndarray], k: int = 3, seed: int = 0) -> dict:
    """Per record: drop of the predicted class's probability when its top-k units are deleted vs k random ones."""
    rng = np.random.default_rng(seed)
    texts, meta = [], []
    for r in results:
        m = len(r.units)
        if m < 2:
            continue
        cls = int(r.f_all.argmax())
        kk = min(k, m - 1)
        top = np.argsort(-r.attributions[:, cls])[:kk]
        randoms = [rng.choice(m, kk, replace=False) for _ in range(3)]
        for chosen in [top, *randoms]:
            keep = np.ones(m, dtype=bool)
            keep[chosen] = False
            texts.append(mask(r.text, r.units, keep, ""))
        meta.append((r.row_id, cls, float(r.f_all[cls])))
    if not texts:
        return {"records": 0}
    values = score(texts)
    per_record = []
    for i, (row_id, cls, p) in enumerate(meta):
        block = values[4 * i : 4 * i + 4, cls]
        per_record.append(
            {"row_id": row_id, "top_k_drop": p - block[0], "random_k_drop": float(np.mean(p - block[1:]))}
        )
    top_drop = float(np.mean([r["top_k_drop"] for r in per_record]))
    random_drop = float(np.mean([r["random_k_drop"] for r in per_record]))
    return {
        "k": k,
        "records": len(per_record),
        "mean_top_k_drop": top_drop,
        "mean_random_k_drop": random_drop,
        "top_beats_random": float(np.mean([r["top_k_drop"] > r["random_k_drop"] for r in per_record])),
        "per_record": [{**r, "top_k_drop": float(r["top_k_drop"])} for r in per_record],
    }


def run(config: LocalRun, url: str, progress: Callable[[Iterator, int], Iterator] | None = None) -> dict:
    """Prepare, explain through ``url``, write Clarify's files, postprocess. Idempotent by run id."""
    storage = FileStorage(config.out)
    key = f"incoming/{config.data.name}"
    target = config.out / INPUT_BUCKET / key
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(config.data, target)  # the user's own file is only read
    etag = storage.head(INPUT_BUCKET, key).etag
    settings = config.settings()
    prepared = prepare_run(
        storage, {"bucket": INPUT_BUCKET, "key": key, "etag": etag, "overrides": config.overrides}, settings
    )
    layout = RunLayout(RESULTS_BUCKET, prepared["run_id"])
    if prepared["status"] == ALREADY_DONE:
        return {"status": ALREADY_DONE, "run_dir": config.out / RESULTS_BUCKET / layout.prefix, **prepared}
    clarify = _effective(settings.defaults, config.overrides)
    options = ShapOptions(
        clarify.granularity, clarify.language, clarify.baseline, clarify.num_samples, clarify.agg_method, config.seed
    )
    scorer = HttpScorer(url)
    started = time.perf_counter()
    try:
        with storage.open(layout.bucket, layout.dataset_key) as frozen:
            rows = list(read_frozen(frozen))
        aggregate = GlobalAggregate(settings.labels, options.agg_method)
        results = []
        stream = explain_records(rows, scorer.score, options)
        if progress is not None:
            stream = progress(stream, len(rows))
        out_key = layout.clarify_prefix + clarify_format.OUT_FILE
        with storage.writer(layout.bucket, out_key, "application/jsonlines") as out:
            for result in stream:
                aggregate.add(result)
                results.append(result)
                out.write(clarify_format.local_line(to_clarify(result)).encode("utf-8"))
        explain_seconds = time.perf_counter() - started
        document = clarify_format.analysis_document(settings.labels, *aggregate.document_parts())
        storage.put(
            layout.bucket,
            layout.clarify_prefix + clarify_format.ANALYSIS_FILE,
            json.dumps(document, indent=2).encode(),
            "application/json",
        )
        check = faithfulness(results, scorer.score, seed=config.seed)
        storage.put(layout.bucket, layout.prefix + LOCAL_FAITHFULNESS, json.dumps(check, indent=2).encode(), "x")
    finally:
        scorer.close()
    answer = postprocess_run(storage, layout.run_id, settings)
    return {
        **answer,
        "run_dir": config.out / RESULTS_BUCKET / layout.prefix,
        "explain_seconds": explain_seconds,
        "model_requests": scorer.requests,
        "faithfulness": {k: v for k, v in check.items() if k != "per_record"},
    }


def _effective(defaults: ClarifyDefaults, overrides: dict) -> ClarifyDefaults:
    from explain_workflow.request import apply_overrides

    clarify, _ = apply_overrides(defaults, Limits(), {k: v for k, v in overrides.items() if k != "max_rows"})
    return clarify

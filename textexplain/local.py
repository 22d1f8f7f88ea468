"""A whole explanation run on this machine: the same prepare, Clarify-format output, postprocess.

Storage is a directory laid out like the two S3 buckets (``<out>/input/...``, ``<out>/results/runs/<run_id>/``),
so the files of a local run are exactly those of an AWS run. The model answers over HTTP: either the
container's ``serve`` started here on 127.0.0.1 from a ``model.tar.gz``, or any endpoint URL.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from explain_workflow import clarify_format
from explain_workflow.contract import ClarifyOptions, Limits, RunRequest, RunStatus, WorkflowSettings
from explain_workflow.dataset import read_frozen
from explain_workflow.postprocess import postprocess_run
from explain_workflow.predictions import prediction_lines
from explain_workflow.prepare import prepare_run
from explain_workflow.report import LOCAL_ENGINE
from explain_workflow.runs import RunLayout, write_manifest
from explain_workflow.storage import StorageError
from textexplain.explainer import kernel_shap
from textexplain.explainer.explain import (
    GlobalAggregate,
    RecordResult,
    ShapOptions,
    explain_records,
    restored,
    to_clarify,
)
from textexplain.explainer.journal import Entry, Journal
from textexplain.explainer.scorer import HttpScorer, InProcessScorer
from textexplain.explainer.units import mask
from textexplain.serving import ReapedFileStorage, ServeProcess

INPUT_BUCKET, RESULTS_BUCKET = "input", "results"
JOURNAL = "local/journal.jsonl"  # rows explained so far by an unfinished run (removed when it succeeds)
FAITHFULNESS = "local/faithfulness.json"  # the deletion check per record (local mode only)


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
    # What identifies the model (part of the run id); empty: what model_endpoint recorded for the URL
    model: dict = field(default_factory=dict)

    def settings(self, url: str | None = None) -> WorkflowSettings:
        return WorkflowSettings(
            results_bucket=RESULTS_BUCKET,
            labels=self.labels,
            model_name="local",
            defaults=ClarifyOptions(seed=self.seed),
            limits=self.limits,
            model_identity=self.model or model_identity_of(url, self.labels),
        )


# url -> identity of the model served there by model_endpoint (a loopback port says nothing about the model)
_SERVED: dict[str, dict] = {}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def model_identity_of(url: str | LocalModel | None, labels: list[str]) -> dict:
    """The model behind ``url``: the served model.tar.gz's sha256, else the endpoint URL itself, with the labels."""
    if isinstance(url, LocalModel):
        return url.identity
    if url in _SERVED:
        return _SERVED[url]
    return {"endpoint_url": url or "", "labels": list(labels)}


def extract_model(tarball: Path, into: Path) -> Path:
    """Extract ``model.tar.gz`` as SageMaker does into /opt/ml/model; refuses paths that escape."""
    try:
        with tarfile.open(tarball) as tar:
            tar.extractall(into, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise LocalRunError(f"{tarball} is not a readable model.tar.gz: {exc}") from None
    return into


def served_labels(model_dir: Path) -> list[str]:
    from fasttext_server.model import Classifier, ModelError

    try:
        return Classifier.load(model_dir).labels
    except ModelError as exc:
        raise LocalRunError(str(exc)) from None


@dataclass
class LocalModel:
    """A ``model.tar.gz`` loaded in this process through the container's own ``Classifier``."""

    scorer: InProcessScorer
    identity: dict


@contextlib.contextmanager
def model_endpoint(
    tarball: Path | None, endpoint_url: str | None, labels: list[str] | None, workers: int = 2, serve: bool = False
):
    """Yields (target, labels) for ``run``: the given endpoint URL, or a ``model.tar.gz`` scored in-process
    (``serve=True``: served on loopback by the container's ``serve`` and called over HTTP instead)."""
    if endpoint_url:
        if not labels:
            raise LocalRunError("--labels is required with --endpoint-url (the endpoint's answer order)")
        yield endpoint_url, labels
        return
    # The extracted model is removed as soon as it is loaded (both scorers hold it in memory), so even a SIGKILL
    # leaves no copy behind.
    with tempfile.TemporaryDirectory(prefix="opt-ml-model-", ignore_cleanup_errors=True) as tmp:
        model_dir = extract_model(Path(tarball), Path(tmp))
        order = labels or served_labels(model_dir)
        identity = {"artifact_sha256": file_sha256(Path(tarball)), "labels": list(order)}
        if not serve:
            from fasttext_server.model import ModelError

            try:
                scorer = InProcessScorer.load(model_dir, order)
            except ModelError as exc:
                raise LocalRunError(str(exc)) from None
            shutil.rmtree(tmp)
            yield LocalModel(scorer, identity), order
            return
        with ServeProcess(model_dir, order, workers=workers) as server:
            shutil.rmtree(tmp)  # serve loaded it before forking its workers; a replaced worker forks from there
            _SERVED[server.url] = identity
            try:
                yield server.url, order
            finally:
                _SERVED.pop(server.url, None)


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


def run(config: LocalRun, url: str | LocalModel, progress: Callable[[Iterator, int], Iterator] | None = None) -> dict:
    """Prepare, explain through ``url`` (or an in-process model), write Clarify's files, postprocess.

    Idempotent by run id; an interrupted run resumes from its journal: rows it explained are kept,
    the rest computed, and the files equal those of an uninterrupted run byte for byte (each record's
    random stream depends on the seed and its row id only).
    """
    key = f"incoming/{config.data.name}"
    # one run of a file name in --out at a time: a second run waits, then finds the first's results (its copy of
    # the input, its manifest) whole instead of replacing them mid-run
    with _locked(config.out, key):
        return _run(config, url, progress, key)


@contextlib.contextmanager
def _locked(out: Path, key: str) -> Iterator[None]:
    locks = Path(out) / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(key.encode()).hexdigest()[:32] + ".lock"
    fd = os.open(locks / name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)  # a planted symlink is refused
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _run(config: LocalRun, url, progress, key: str) -> dict:
    storage = ReapedFileStorage(config.out)  # no .partial-* outlives even a SIGKILL
    try:
        # through the storage's own path check and atomic rename: a symlink planted in --out is never written through
        with storage.writer(INPUT_BUCKET, key, "text/csv") as target, Path(config.data).open("rb") as source:
            shutil.copyfileobj(source, target)  # the user's own file is only read
    except StorageError as exc:
        raise LocalRunError(f"cannot copy {config.data} into {config.out}: {exc}") from None
    etag = storage.head(INPUT_BUCKET, key).etag
    settings = config.settings(url)
    request = RunRequest.from_event({"bucket": INPUT_BUCKET, "key": key, "etag": etag, "overrides": config.overrides})
    prepared = prepare_run(storage, request, settings)
    layout = RunLayout(RESULTS_BUCKET, prepared.run_id)
    if prepared.status == RunStatus.ALREADY_DONE:  # only a SUCCEEDED run; a FAILED one is prepared again
        return {**prepared.model_dump(mode="json"), "run_dir": config.out / RESULTS_BUCKET / layout.prefix}
    # the options prepare ran with (stage defaults and overrides): the same the Clarify job would get in AWS
    options = ShapOptions.of(prepared.options, config.seed)
    scorer = url.scorer if isinstance(url, LocalModel) else HttpScorer(url)
    journal = Journal(
        config.out / RESULTS_BUCKET / layout.prefix / JOURNAL,
        {"run_id": layout.run_id, "options": asdict(options), "labels": settings.labels, **ESTIMATOR},
        len(settings.labels),
    )
    started = time.perf_counter()
    try:
        with storage.open(layout.bucket, layout.dataset_key) as frozen:
            rows = list(read_frozen(frozen))
        aggregate = GlobalAggregate(settings.labels, options.agg_method)
        results = []
        journal.open()
        resumed = len(journal.done)
        if resumed:
            _remove_partials(config.out / RESULTS_BUCKET / layout.prefix)
        stream = _resumed(rows, journal, scorer, options)
        if progress is not None:
            stream = progress(stream, len(rows))
        out_key = layout.clarify_prefix + clarify_format.OUT_FILE
        with (
            storage.writer(layout.bucket, out_key, "application/jsonlines") as out,
            storage.writer(layout.bucket, layout.predictions_key, "application/jsonlines") as predicted,
        ):
            for result in stream:
                aggregate.add(result)
                results.append(result)
                out.write(clarify_format.local_line(to_clarify(result)).encode("utf-8"))
                # the model's own answer for the whole text, as a Batch Transform would have written it
                predicted.writelines(prediction_lines([(result.row_id, result.f_all.tolist())], settings.labels))
        explain_seconds = time.perf_counter() - started
        document = clarify_format.analysis_document(settings.labels, *aggregate.document_parts())
        storage.put(
            layout.bucket,
            layout.clarify_prefix + clarify_format.ANALYSIS_FILE,
            json.dumps(document, indent=2).encode(),
            "application/json",
        )
        check = faithfulness(results, scorer.score, seed=options.seed)
        body = json.dumps(check, indent=2).encode()
        storage.put(layout.bucket, layout.prefix + FAITHFULNESS, body, "application/json")
        journal.close()
    except Exception as exc:
        # never leave a run without a word: the next run of the same request sees FAILED and computes again
        write_manifest(storage, layout, RunStatus.FAILED, stage="explain", attempt=prepared.attempt, reason=str(exc))
        raise
    finally:
        journal.close()
        scorer.close()
    answer = postprocess_run(storage, layout.run_id, settings, faithfulness=check, engine=LOCAL_ENGINE)
    if answer.status == RunStatus.SUCCEEDED:
        journal.remove()
    return {
        **answer.model_dump(mode="json"),
        "resumed_records": resumed,
        "run_dir": config.out / RESULTS_BUCKET / layout.prefix,
        "explain_seconds": explain_seconds,
        "model_requests": scorer.requests,
        "faithfulness": {k: v for k, v in check.items() if k != "per_record"},
    }


# what the rows of a journal were computed with, beyond the run's own options
ESTIMATOR = {
    "estimator": "kernel_shap/stratified-paired-v3",
    "shrink": kernel_shap.SHRINK,
    "allocation": kernel_shap.DEFAULT_ALLOCATION,
}


def _resumed(rows: list[tuple[int, str]], journal: Journal, scorer, options: ShapOptions) -> Iterator[RecordResult]:
    """Every row's result in input order: from the journal where an earlier run explained it, else computed
    (and journaled as soon as it is)."""
    kept = {}
    for row_id, text in rows:
        entry = journal.done.get(row_id)
        if entry is not None:
            result = restored(row_id, text, options, entry.f_all, entry.f_none, entry.attributions)
            if result is not None:
                kept[row_id] = result
    todo = [(row_id, text) for row_id, text in rows if row_id not in kept]
    if isinstance(scorer, InProcessScorer):
        fresh = explain_records(todo, scorer.score, options, overlap=False, score_normalized=scorer.score_normalized)
    else:
        fresh = explain_records(todo, scorer.score, options)
    for row_id, _ in rows:
        if row_id in kept:
            yield kept[row_id]
            continue
        result = next(fresh)
        journal.add(Entry(result.row_id, result.f_all, result.f_none, result.attributions))
        yield result


def _remove_partials(run_dir: Path) -> None:
    """Half-written files a killed run of this run id left behind (its writers never finished)."""
    for stale in run_dir.rglob(".partial-*"):
        stale.unlink(missing_ok=True)

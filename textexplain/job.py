"""The builtin engine's SageMaker Processing job: ``python -m textexplain.job`` (the image's ``explain-job``).

It reads what a Clarify job reads (the frozen dataset under input/data, input/config/analysis_config.json) plus the
model artifact (input/model/model.tar.gz), scores the model in-process through the container's own ``Classifier``,
explains every row with the project's explainer in one worker process per vCPU, and writes this instance's parts:

    output/explanations_shap/out.part-{i:05d}.jsonl     Clarify's out.jsonl lines, join_source_value = row_id
    output/analysis.part-{i:05d}.json                    partial aggregates (explain_workflow.parts)
    predictions/rows.part-{i:05d}.jsonl.out              Batch Transform's line format, the model's own answers

``i`` is this host's index in the sorted hosts of /opt/ml/config/resourceconfig.json (0 without it). Every record's
random stream depends on the seed and its row id only, so the files do not depend on the number of workers. Any
error: one line on stderr (and in /opt/ml/output/message, which SageMaker returns as the job's ExitMessage), exit 1.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/opt/ml/processing")
RESOURCE_CONFIG = Path("/opt/ml/config/resourceconfig.json")
MESSAGE_FILE = Path("/opt/ml/output/message")
TASK_RECORDS = 8  # records per task handed to a worker (and per scoring call, as the local mode batches)


class JobError(RuntimeError):
    """The job cannot run as configured: said in one line, naming the file or setting."""


@dataclass(frozen=True)
class JobPaths:
    data: Path
    config: Path
    model: Path
    output: Path
    predictions: Path

    @classmethod
    def under(cls, root: Path) -> JobPaths:
        return cls(
            root / "input" / "data",
            root / "input" / "config" / "analysis_config.json",
            root / "input" / "model",
            root / "output",
            root / "predictions",
        )


@dataclass(frozen=True)
class JobConfig:
    """What the analysis config asks, checked: the explainer's options and the label order."""

    options: object  # ShapOptions
    labels: list[str]
    max_top_tokens: int


def job_config(config: dict, where: str = "analysis_config.json") -> JobConfig:
    """The options of an analysis config as prepare writes it (explain_workflow.analysis_config); JobError for any
    setting this engine would have to ignore or cannot honour as Clarify does."""
    from explain_workflow.dataset import FROZEN_HEADERS
    from explain_workflow.languages import language_code
    from textexplain.explainer.explain import ShapOptions

    def bad(reason: str) -> JobError:
        return JobError(f"{where}: {reason}")

    if not isinstance(config, dict):
        raise bad("is not a JSON object")
    if config.get("dataset_type", "text/csv") != "text/csv":
        raise bad(f"dataset_type {config.get('dataset_type')!r}: only text/csv (the frozen dataset) is read")
    if config.get("headers") != FROZEN_HEADERS or config.get("joinsource_name_or_index") != FROZEN_HEADERS[0]:
        raise bad(f"headers must be {FROZEN_HEADERS} joined on {FROZEN_HEADERS[0]!r} (the frozen dataset)")
    labels = (config.get("predictor") or {}).get("label_headers")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise bad("predictor.label_headers must name the model's labels in order")
    shap = (config.get("methods") or {}).get("shap")
    if not isinstance(shap, dict):
        raise bad("methods.shap is missing")
    if shap.get("use_logit", False) is not False:
        raise bad("use_logit true is not supported by the builtin engine (the explained score is the probability)")
    if shap.get("save_local_shap_values", True) is not True:
        raise bad("save_local_shap_values false: the run's records need the local values")
    baseline = shap.get("baseline", [["<UNK>"]])
    if not (isinstance(baseline, list) and len(baseline) == 1 and isinstance(baseline[0], list) and baseline[0]):
        raise bad(f"baseline {baseline!r} must be one row holding the baseline text")
    text = shap.get("text_config") or {}
    granularity, language = text.get("granularity"), text.get("language")
    if granularity not in ("token", "sentence", "paragraph"):
        raise bad(f"text_config.granularity {granularity!r} is not token, sentence or paragraph")
    try:
        language_code(language if isinstance(language, str) else "")
    except ValueError as exc:
        raise bad(f"text_config.{exc}") from None
    num_samples, seed = shap.get("num_samples"), shap.get("seed", 0)  # prepare writes a seed; none: 0, as locally
    if type(num_samples) is not int or num_samples < 1:
        raise bad(f"num_samples {num_samples!r} is not a positive whole number")
    if type(seed) is not int:
        raise bad(f"seed {seed!r} is not a whole number")
    agg_method = shap.get("agg_method", "mean_abs")
    if agg_method not in ("mean_abs", "mean_sq", "median"):
        raise bad(f"agg_method {agg_method!r} is not mean_abs, mean_sq or median")
    max_top = text.get("max_top_tokens", 50)
    if type(max_top) is not int or max_top < 1:
        raise bad(f"text_config.max_top_tokens {max_top!r} is not a positive whole number")
    options = ShapOptions(granularity, language, str(baseline[0][0]), num_samples, agg_method, seed)
    return JobConfig(options, list(labels), max_top)


def host_index(resource_config: Path) -> int:
    """This instance's part number: its place among the job's sorted hosts (0 when there is no resource config)."""
    if not resource_config.is_file():
        return 0
    try:
        info = json.loads(resource_config.read_text(encoding="utf-8"))
        return sorted(info["hosts"]).index(info["current_host"])
    except (ValueError, KeyError, TypeError) as exc:
        raise JobError(f"{resource_config}: cannot find current_host among hosts ({exc})") from None


def dataset_files(data: Path) -> list[Path]:
    """Every frozen-dataset file this instance was given (none is fine: ShardedByS3Key may give it no object)."""
    if not data.is_dir():
        return []
    files = sorted(p for p in data.rglob("*") if p.is_file())
    others = [p for p in files if p.suffix != ".csv"]
    if others:
        raise JobError(f"{others[0]}: not a .csv file; the data input must hold only the frozen dataset")
    return files


def read_rows(files: list[Path], max_text_chars: int | None) -> list[tuple[int, str]]:
    """(row_id, text) of every file, in row order; duplicate row ids and over-long texts are refused."""
    import csv

    from explain_workflow.dataset import read_frozen

    rows, seen = [], {}
    for path in files:
        try:
            with path.open("rb") as stream:
                for line, (row_id, text) in enumerate(read_frozen(stream), start=1):
                    if row_id in seen:
                        raise JobError(f"{path} line {line}: row_id {row_id} again (first in {seen[row_id]})")
                    if max_text_chars is not None and len(text) > max_text_chars:
                        raise JobError(
                            f"{path} row_id {row_id}: {len(text)} characters, over MAX_TEXT_CHARS {max_text_chars}"
                        )
                    seen[row_id] = path.name
                    rows.append((row_id, text))
        except (csv.Error, ValueError, IndexError, UnicodeDecodeError) as exc:
            raise JobError(f"{path}: not a frozen dataset (row_id,text): {exc}") from None
    rows.sort(key=lambda row: row[0])
    return rows


def extract_model(model_input: Path, into: Path) -> Path:
    """The model directory: the one ``*.tar.gz`` under the model input extracted (as SageMaker extracts it into
    /opt/ml/model), refusing members that escape it."""
    archives = sorted(model_input.rglob("*.tar.gz")) if model_input.is_dir() else []
    if len(archives) != 1:
        found = sorted(p.name for p in model_input.rglob("*")) if model_input.is_dir() else []
        raise JobError(f"{model_input}: expected exactly one model.tar.gz, found {found or 'nothing'}")
    try:
        with tarfile.open(archives[0]) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(into, filter="data")
            else:  # Python before 3.11.4 (Debian bookworm's 3.11.2, the image's): the same refusals, by hand
                tar.extractall(into, members=_plain_members(tar, into, archives[0]))  # noqa: S202 (checked)
    except (tarfile.TarError, OSError) as exc:
        raise JobError(f"{archives[0]}: not a readable model.tar.gz: {exc}") from None
    return into


def _plain_members(tar: tarfile.TarFile, into: Path, archive: Path) -> list[tarfile.TarInfo]:
    """Every member, when each is a file or directory that stays inside ``into``; JobError naming the first that is
    not (a link, a device, an absolute path or one with ``..``)."""
    root = into.resolve()
    members = tar.getmembers()
    for member in members:
        inside = (root / member.name).resolve().is_relative_to(root)
        if not inside or not (member.isfile() or member.isdir()):
            raise JobError(f"{archive}: member {member.name!r} is not a plain file or directory inside the archive")
    return members


def env_labels(environ) -> list[str] | None:
    raw = environ.get("LABELS", "").strip()
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        value = [x.strip() for x in raw.split(",")]
    return value if isinstance(value, list) else None


def env_max_text_chars(environ) -> int | None:
    raw = environ.get("MAX_TEXT_CHARS", "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise JobError(f"MAX_TEXT_CHARS {raw!r} is not a positive whole number")
    return int(raw)


def cpu_count() -> int:
    """vCPUs this process may run on (the job's instance: one worker each)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# ---- the worker pool: each worker explains whole tasks of records; results come back in row order ----

_STATE: dict = {}


@dataclass(frozen=True)
class Explained:
    """One record as its worker finished it: the bytes of its out.jsonl and predictions lines, and what the
    shard's analysis part adds up (``PartAggregate.add_values``); the whole result only where a median needs it."""

    out_line: bytes
    prediction_line: bytes
    f_none: list[float]
    tokens: list[str]
    values: object  # (units, labels) float64 array
    result: object | None  # RecordResult, for agg_method median


def _explain_task(rows: list[tuple[int, str]]) -> list[Explained]:
    import numpy as np

    from explain_workflow import clarify_format
    from explain_workflow.predictions import prediction_lines
    from textexplain.explainer.explain import explain_records, to_clarify

    scorer, options, labels = _STATE["scorer"], _STATE["options"], _STATE["labels"]
    finished = []
    for result in explain_records(
        rows, scorer.score, options, chunk=TASK_RECORDS, overlap=False, score_normalized=scorer.score_normalized
    ):
        phis = result.attributions
        values = np.square(phis) if options.agg_method == "mean_sq" else np.abs(phis)  # as PartAggregate.add
        finished.append(
            Explained(
                clarify_format.local_line(to_clarify(result)).encode("utf-8"),
                b"".join(prediction_lines([(result.row_id, result.f_all.tolist())], labels)),
                result.f_none.tolist(),
                [u.text.lower() for u in result.units],
                values,
                result if options.agg_method == "median" else None,
            )
        )
    return finished


def explained(rows: list[tuple[int, str]], scorer, options, workers: int, labels: list[str]) -> Iterator[Explained]:
    """Every row, explained and formatted, in row order, by ``workers`` processes forked from this one (so they
    share the loaded model); one worker explains in this process. The workers write nothing: this process alone
    writes the files, in row order, so they do not depend on the number of workers."""
    from textexplain.explainer.units import split_units

    _STATE.update(scorer=scorer, options=options, labels=list(labels))
    split_units("warm up", options.granularity, options.language)  # the tokenizer, loaded once before the fork
    tasks = [rows[i : i + TASK_RECORDS] for i in range(0, len(rows), TASK_RECORDS)]
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield from _explain_task(task)
        return
    with multiprocessing.get_context("fork").Pool(min(workers, len(tasks))) as pool:
        for results in pool.imap(_explain_task, tasks):
            yield from results


def run(paths: JobPaths, resource_config: Path, workers: int, environ=os.environ) -> dict:
    """The whole job; returns what it wrote (counts, files, seconds)."""
    import orjson

    from explain_workflow import clarify_format
    from explain_workflow.parts import PartAggregate, part_name
    from fasttext_server.model import ModelError
    from textexplain.explainer.explain import GlobalAggregate
    from textexplain.explainer.scorer import InProcessScorer

    started = time.perf_counter()
    try:
        config = json.loads(paths.config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise JobError(f"{paths.config}: cannot read the analysis config: {exc}") from None
    job = job_config(config, str(paths.config))
    labels = env_labels(environ)
    if labels is not None and labels != job.labels:
        raise JobError(f"LABELS {labels} is not the analysis config's label_headers {job.labels}")
    index = host_index(resource_config)
    rows = read_rows(dataset_files(paths.data), env_max_text_chars(environ))
    with tempfile.TemporaryDirectory(prefix="opt-ml-model-") as tmp:
        try:
            scorer = InProcessScorer.load(extract_model(paths.model, Path(tmp)), job.labels)
        except ModelError as exc:
            raise JobError(f"the model does not fit the analysis config: {exc}") from None
    options = job.options
    part = PartAggregate(job.labels, options.agg_method, job.max_top_tokens)
    median = GlobalAggregate(job.labels, "median") if options.agg_method == "median" else None
    out_dir = paths.output / clarify_format.SHAP_DIR
    out_file, predictions_file = out_dir / part_name("out", index), paths.predictions / part_name("predictions", index)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths.predictions.mkdir(parents=True, exist_ok=True)
    if rows:
        with out_file.open("wb") as out, predictions_file.open("wb") as predicted:
            for record in explained(rows, scorer, options, workers, job.labels):
                out.write(record.out_line)
                predicted.write(record.prediction_line)
                part.add_values(record.f_none, record.tokens, record.values)
                if median is not None:
                    median.add(record.result)
    document = part.document(median.document_parts() if median is not None else None)
    analysis_file = paths.output / part_name("analysis", index)
    analysis_file.write_bytes(orjson.dumps(document))  # json's module takes ~0.15 s per 1,000 records here
    return {
        "part": index,
        "records": len(rows),
        "workers": workers,
        "files": [str(p) for p in (out_file, predictions_file) if rows] + [str(analysis_file)],
        "seconds": round(time.perf_counter() - started, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="explain-job", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(os.environ.get("EXPLAIN_JOB_ROOT", ROOT)),
        help="the processing layout (default /opt/ml/processing, or $EXPLAIN_JOB_ROOT)",
    )
    parser.add_argument(
        "--resource-config", type=Path, default=Path(os.environ.get("EXPLAIN_JOB_RESOURCE_CONFIG", RESOURCE_CONFIG))
    )
    parser.add_argument(
        "--message-file", type=Path, default=Path(os.environ.get("EXPLAIN_JOB_MESSAGE_FILE", MESSAGE_FILE))
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("EXPLAIN_JOB_WORKERS") or 0),
        help="worker processes (default: one per vCPU)",
    )
    args = parser.parse_args(argv)
    workers = args.workers if args.workers > 0 else cpu_count()
    try:
        summary = run(JobPaths.under(args.root), args.resource_config, workers)
    except JobError as exc:
        return _fail(str(exc), args.message_file)
    except Exception as exc:  # anything unforeseen still ends as one line SageMaker can show
        return _fail(f"{type(exc).__name__}: {exc}", args.message_file)
    print(json.dumps(summary), flush=True)
    return 0


def _fail(reason: str, message_file: Path) -> int:
    line = "explain-job failed: " + " ".join(reason.split())
    print(line, file=sys.stderr, flush=True)
    try:  # SageMaker returns the first 1 KB of this file as ExitMessage
        message_file.parent.mkdir(parents=True, exist_ok=True)
        message_file.write_text(line[:1024] + "\n", encoding="utf-8")
    except OSError:
        pass
    return 1


if __name__ == "__main__":
    raise SystemExit(main())

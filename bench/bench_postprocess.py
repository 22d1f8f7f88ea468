"""postprocess throughput and peak memory against a local S3 API (moto server on 127.0.0.1).

For each size, a fresh subprocess writes a frozen dataset and a Clarify-format out.jsonl
(40 tokens per record, 14 classes) into the local S3 API, then runs ``postprocess_run`` and reports
records/s and its own peak RSS, so sizes do not share a heap.

Usage: python -m bench postprocess [--sizes 1000,10000,100000] [--storage s3|files]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from explain_workflow.clarify_format import ANALYSIS_FILE, SHAP_DIR, LocalExplanation, Unit, local_line
from explain_workflow.postprocess import postprocess_run
from explain_workflow.runs import RunLayout
from explain_workflow.settings import WorkflowSettings
from explain_workflow.storage import FileStorage, S3Storage
from textexplain import synthetic

TOKENS, LABELS = 40, list(synthetic.CLASSES)


def _write_inputs(storage, layout: RunLayout, n: int) -> None:
    rng = np.random.default_rng(0)
    words = [w for cues in synthetic.CUES.values() for w in cues]
    with (
        storage.writer(layout.bucket, layout.dataset_key, "text/csv") as frozen,
        storage.writer(layout.bucket, layout.clarify_prefix + SHAP_DIR + "out.jsonl", "x") as out,
    ):
        text_out = io.TextIOWrapper(frozen, encoding="utf-8", newline="", write_through=True)
        writer = csv.writer(text_out, quoting=csv.QUOTE_ALL, lineterminator="\n")
        for row_id in range(1, n + 1):
            tokens = [words[i] for i in rng.integers(0, len(words), TOKENS)]
            text = " ".join(tokens)
            writer.writerow((row_id, text))
            starts = np.cumsum([0] + [len(t) + 1 for t in tokens[:-1]])
            values = rng.normal(0, 0.01, (TOKENS, len(LABELS))).round(6)
            units = tuple(Unit(t, int(s), tuple(v)) for t, s, v in zip(tokens, starts, values.tolist(), strict=True))
            out.write(local_line(LocalExplanation(units, row_id)).encode())
        text_out.detach()
    analysis = {
        "version": "1.0",
        "explanations": {
            "kernel_shap": {
                label: {"expected_value": 1 / len(LABELS), "global_shap_values": {}, "global_top_shap_text": {}}
                for label in LABELS
            }
        },
    }
    storage.put(layout.bucket, layout.clarify_prefix + ANALYSIS_FILE, json.dumps(analysis).encode(), "x")


def _peak_rss_mib() -> float:
    """This process's own high-water RSS (VmHWM; ru_maxrss would include the parent's, inherited at fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _storage(kind: str, root: str, bucket: str):
    if kind == "s3":
        import boto3

        client = boto3.client("s3", endpoint_url=root, region_name="us-east-1")
        return S3Storage(client)
    return FileStorage(root)


def child(mode: str, n: int, storage_kind: str, root: str) -> None:
    """Runs in its own process so that its peak RSS is postprocess's alone."""
    settings = WorkflowSettings(results_bucket=f"bench-{n}", labels=LABELS, model_name="m")
    layout = RunLayout(settings.results_bucket, f"bench-{n}")
    storage = _storage(storage_kind, root, settings.results_bucket)
    if mode == "write":
        if storage_kind == "s3":
            storage.client.create_bucket(Bucket=settings.results_bucket)
        _write_inputs(storage, layout, n)
        return
    rss_before = _peak_rss_mib()
    start = time.perf_counter()
    postprocess_run(storage, layout.run_id, settings)
    elapsed = time.perf_counter() - start
    peak = _peak_rss_mib()
    print(json.dumps({"n": n, "seconds": elapsed, "peak_rss_mib": peak, "rss_before_mib": rss_before}))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench postprocess")
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--storage", choices=("s3", "files"), default="s3")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2], args.child[3])
        return
    from tests.support.s3 import CREDENTIALS, moto_server

    env = {**os.environ, **CREDENTIALS}
    print(f"load average before: {os.getloadavg()[0]:.2f}; 40 tokens x 14 classes per record; storage {args.storage}")
    print(f"{'records':>8} {'seconds':>8} {'records/s':>10} {'peak RSS MiB':>13} {'RSS before MiB':>15}")
    with moto_server() as url, tempfile.TemporaryDirectory() as tmp:
        root = url if args.storage == "s3" else tmp
        for n in (int(s) for s in args.sizes.split(",")):
            cmd = [sys.executable, "-m", "bench", "postprocess", "--child"]
            subprocess.run([*cmd, "write", str(n), args.storage, root], env=env, capture_output=True, check=True)
            out = subprocess.run(
                [*cmd, "run", str(n), args.storage, root], env=env, capture_output=True, text=True, check=True
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(
                f"{n:>8} {r['seconds']:>8.2f} {n / r['seconds']:>10,.0f} {r['peak_rss_mib']:>13.1f} "
                f"{r['rss_before_mib']:>15.1f}",
                flush=True,
            )

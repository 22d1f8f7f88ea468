"""postprocess throughput and peak memory against a local S3 API (moto server on 127.0.0.1).

For each size, a fresh subprocess writes a frozen dataset and a Clarify-format out.jsonl
(40 tokens per record, 14 classes) into the local S3 API, then runs ``postprocess_run`` and reports
records/s and its own peak RSS, so sizes do not share a heap.

Also writes the predictions file a Batch Transform job would (one probability vector per row), which postprocess
joins by row_id.

Usage: python -m bench postprocess [--sizes 1000,10000,100000] [--storage s3|files]
       python -m bench postprocess --agnews ../shared/data/agnews [--records 240] [--num-samples 200]
         (trains fastText on AG News, explains a sample locally, and reports per class the share of stop words and
         punctuation among the top 10 tokens: ranked by summed attribution over all records ("before", the simpler
         summary kept for comparison), and by the mean per occurrence over the records predicted as the class
         ("after", what classes.json holds))
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
from explain_workflow.contract import WorkflowSettings
from explain_workflow.postprocess import postprocess_run
from explain_workflow.predictions import prediction_lines
from explain_workflow.runs import RunLayout
from explain_workflow.storage import FileStorage, S3Storage
from textexplain import synthetic

TOKENS, LABELS = 40, list(synthetic.CLASSES)


def _write_inputs(storage, layout: RunLayout, n: int) -> None:
    rng = np.random.default_rng(0)
    words = [w for cues in synthetic.CUES.values() for w in cues]
    with (
        storage.writer(layout.bucket, layout.dataset_key, "text/csv") as frozen,
        storage.writer(layout.bucket, layout.clarify_prefix + SHAP_DIR + "out.jsonl", "x") as out,
        storage.writer(layout.bucket, layout.predictions_key, "x") as predictions,
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
            predictions.writelines(prediction_lines([(row_id, rng.dirichlet(np.ones(len(LABELS))).tolist())], LABELS))
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
    parser.add_argument("--agnews", type=Path, help="AG News folder (train.csv, explain.csv, meta.txt)")
    parser.add_argument("--records", type=int, default=240, help="with --agnews: texts explained")
    parser.add_argument("--num-samples", type=int, default=200, help="with --agnews: SHAP samples per text")
    args = parser.parse_args(argv)
    if args.agnews:
        agnews(args.agnews, args.records, args.num_samples)
        return
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2], args.child[3])
        return
    from bench.local_s3 import CREDENTIALS, moto_server

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


# ---- class summaries on real data (AG News) ----


def _agnews_rows(path: Path, names: dict[str, str]) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return [(names[row[0]], row[1]) for row in csv.reader(fh)]


def _uninformative(token: str, stop_words: frozenset[str]) -> bool:
    """A stop word (spaCy's English list) or punctuation (no letter or digit), as a reader would judge it."""
    return token in stop_words or not any(ch.isalnum() for ch in token)


def summed_ranking(records: list[dict], labels: list[str], n: int = 10) -> dict[str, list[str]]:
    """The simpler class summary kept for comparison: per class, tokens by attribution summed over all records."""
    totals: dict[str, np.ndarray] = {}
    for record in records:
        for unit in record["units"]:
            key = unit["text"].strip().lower()
            if key:
                totals[key] = totals.get(key, 0) + np.array(unit["attributions"])
    return {
        label: [t for t, v in sorted(totals.items(), key=lambda kv: -kv[1][i]) if v[i] > 0][:n]
        for i, label in enumerate(labels)
    }


def agnews(folder: Path, records: int, num_samples: int) -> None:
    from spacy.lang.en.stop_words import STOP_WORDS

    from textexplain import local, training

    names = dict(line.split(": ", 1) for line in (folder / "meta.txt").read_text().splitlines() if ": " in line)
    names = {k.strip(): v.strip().replace("/", "-") for k, v in names.items() if k.strip().isdigit()}
    train_rows = _agnews_rows(folder / "train.csv", names)
    explain_rows = _agnews_rows(folder / "explain.csv", names)[:records]
    stop = frozenset(STOP_WORDS)
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        model = training.train(train_rows)
        model.save_model(str(root / "model.bin"))
        tarball = training.package(root / "model.bin", root / "model.tar.gz")
        print(f"trained on {len(train_rows)} AG News texts in {time.perf_counter() - start:.0f}s")
        data = root / "explain.csv"
        with data.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["label", "text"])
            writer.writerows(explain_rows)
        with local.model_endpoint(tarball, None, None) as (target, labels):
            config = local.LocalRun(data, root / "out", labels, {"num_samples": num_samples})
            start = time.perf_counter()
            result = local.run(config, target)
            print(f"explained {result['records']} texts ({num_samples} samples each) in "
                  f"{time.perf_counter() - start:.0f}s")  # fmt: skip
        run_dir = Path(result["run_dir"])
        rows = [json.loads(line) for line in (run_dir / "results" / "records.jsonl").read_text().splitlines()]
        classes = json.loads((run_dir / "results" / "classes.json").read_text())
        truth = {text: label for label, text in explain_rows}
        correct = sum(truth.get(r["text"]) == r["predicted_label"] for r in rows)
        print(f"model accuracy on the explained sample: {correct / len(rows):.3f}")
        before = summed_ranking(rows, labels)
        print(
            f"{'class':<10} {'records':>7}  {'before: summed, all records':<44} {'after: mean, predicted as class':<44}"
        )
        shares = {"before": [], "after": [], "all_records": []}
        for label in labels:
            view = classes[label]["predicted_as_this_class"]
            after = [t["token"] for t in view["top_positive_tokens"][:10]]
            every = [t["token"] for t in classes[label]["all_records"]["top_positive_tokens"][:10]]
            for name, tokens in (("before", before[label]), ("after", after), ("all_records", every)):
                shares[name].append(sum(_uninformative(t, stop) for t in tokens) / max(1, len(tokens)))
            print(
                f"{label:<10} {view['records']:>7}  {shares['before'][-1]:>4.0%} {' '.join(before[label])[:38]:<39} "
                f"{shares['after'][-1]:>4.0%} {' '.join(after)[:38]:<39} (min support {view['min_support']})"
            )
        for name, values in shares.items():
            print(f"mean share of stop words + punctuation in the top 10, {name}: {np.mean(values):.0%}")

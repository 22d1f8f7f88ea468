"""How fast a report of REPORT_MAX_RECORDS records becomes interactive in headless Chromium, and its size.

A run of ``--records`` generated texts (the demo's corpus, one or two paragraphs each, white-space units with
attributions for 14 classes, a label column with about one record in five labelled another class) goes through the
real postprocess; the report it writes is opened in headless Chromium (bench/chromium.py) once to warm up and then
``--loads`` times. "Interactive" is the moment the report's script has rendered the first page of records and
attached every control (it stamps ``performance.now()``, milliseconds since navigation start, on the document);
the figure printed is the median of the loads, with the slowest. Any console error fails the benchmark.

Usage: python -m bench report [--records 1000] [--loads 5]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import statistics
import tempfile
from pathlib import Path

import numpy as np

from bench.chromium import Chromium
from explain_workflow.clarify_format import ANALYSIS_FILE, SHAP_DIR, LocalExplanation, Unit, local_line
from explain_workflow.contract import WorkflowSettings
from explain_workflow.evaluation import label_line, labels_key
from explain_workflow.postprocess import postprocess_run
from explain_workflow.predictions import prediction_lines
from explain_workflow.runs import RunLayout
from explain_workflow.storage import FileStorage
from textexplain import synthetic

LABELS = list(synthetic.CLASSES)


def build_run(root: Path, n: int, seed: int = 0) -> Path:
    """A finished run of ``n`` generated records under ``root``; returns its results/ directory."""
    rng, draw = np.random.default_rng(seed), random.Random(seed)
    settings = WorkflowSettings(results_bucket="results", labels=LABELS, model_name="bench")
    layout = RunLayout(settings.results_bucket, f"bench-report-{n}")
    storage = FileStorage(root)
    examples = synthetic.generate(n, seed=seed + 2, paragraphs=(1, 2))
    k = len(LABELS)
    with (
        storage.writer(layout.bucket, layout.dataset_key, "text/csv") as frozen,
        storage.writer(layout.bucket, layout.clarify_prefix + SHAP_DIR + "out.jsonl", "x") as out,
        storage.writer(layout.bucket, layout.predictions_key, "x") as predictions,
        storage.writer(layout.bucket, labels_key(layout.prefix), "x") as labels,
    ):
        text_out = io.TextIOWrapper(frozen, encoding="utf-8", newline="", write_through=True)
        writer = csv.writer(text_out, quoting=csv.QUOTE_ALL, lineterminator="\n")
        for row_id, example in enumerate(examples, start=1):
            writer.writerow((row_id, example.text))
            true = LABELS.index(example.label)
            predicted = true if draw.random() > 0.2 else draw.randrange(k)
            units = []
            for start, token in _tokens(example.text):
                values = rng.normal(0, 0.01, k)
                if token.lower().strip(".,") in synthetic.CUES[LABELS[predicted]]:
                    values[predicted] += 0.12
                units.append(Unit(token, start, tuple(float(v) for v in values.round(6))))
            out.write(local_line(LocalExplanation(tuple(units), row_id)).encode())
            prob = rng.dirichlet(np.ones(k) * 0.3)
            prob[[predicted, int(prob.argmax())]] = prob[[int(prob.argmax()), predicted]]
            predictions.writelines(prediction_lines([(row_id, prob.tolist())], LABELS))
            labels.write(label_line(row_id, example.label))
        text_out.detach()
    analysis = {
        "version": "1.0",
        "explanations": {
            "kernel_shap": {
                label: {"expected_value": 1 / k, "global_shap_values": {}, "global_top_shap_text": {}}
                for label in LABELS
            }
        },
    }
    storage.put(layout.bucket, layout.clarify_prefix + ANALYSIS_FILE, json.dumps(analysis).encode(), "x")
    request = {"run_id": layout.run_id, "rows": n, "label_column": "label"}
    storage.put(layout.bucket, layout.request_key, json.dumps(request).encode(), "application/json")
    postprocess_run(storage, layout.run_id, settings)
    return Path(root) / layout.bucket / layout.results_prefix


def _tokens(text: str):
    at = 0
    for token in text.split():
        start = text.index(token, at)
        at = start + len(token)
        yield start, token


def measure(report: Path, loads: int) -> list[float]:
    """Milliseconds from navigation start to interactive, per load (after one warm-up load)."""
    times = []
    with Chromium() as browser:
        page = browser.page()
        for i in range(loads + 1):
            page.open(report.as_uri() + f"?load={i}")  # a new navigation each time, not a same-document one
            ready = float(page.wait_for("document.documentElement.dataset.ready", timeout=30))
            if i:
                times.append(ready)
        errors = page.errors()
    if errors:
        raise SystemExit(f"the report logged errors: {errors}")
    return times


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench report")
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--loads", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        results = build_run(Path(tmp), args.records)
        report = results / "report.html"
        size = report.stat().st_size
        shown = json.loads((results / "summary.json").read_text())["rows"]
        times = measure(report, args.loads)
    print(f"{'records':>8} {'classes':>8} {'bytes':>10} {'interactive ms (median)':>24} {'slowest ms':>11}")
    print(f"{shown:>8} {len(LABELS):>8} {size:>10,} {statistics.median(times):>24.0f} {max(times):>11.0f}")

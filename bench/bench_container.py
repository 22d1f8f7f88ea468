"""Container throughput on Clarify-shaped requests, beside the single-thread limit and a naive server.

Each request is 500 perturbed variants of one ~40-token text (units replaced by ``<UNK>``), as
Clarify sends them. Printed per corpus (the 14-class generated corpus, and AG News when
the AG News sample is there, bench/shared_sample.py):

  (a) in-process ``predict(list, k=-1)`` in one thread on the normalised variants: the limit;
  ours: ``container/serve`` with 2 workers, full probability vectors in LABELS order;
  (b) the naive reference (bench/naive_reference.py) with 2 workers, top-1 only.

Usage: python -m bench container [--requests N] [--clients C] [--rows R]
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import shared_sample
from fasttext_server.codec import encode_csv_batch
from fasttext_server.model import normalize_batch
from textexplain import synthetic, training
from textexplain.serving import ServeProcess, free_port


def perturbed_bodies(texts: list[str], rows: int, seed: int = 0) -> list[list[str]]:
    """Per text, ``rows`` variants with each token kept or replaced by <UNK> at random."""
    rng = random.Random(seed)
    batches = []
    for text in texts:
        tokens = text.split()
        batches.append([" ".join("<UNK>" if rng.random() < 0.5 else t for t in tokens) for _ in range(rows)])
    return batches


def pick_texts(texts: list[str], n: int, target_tokens: int = 40) -> list[str]:
    """Texts near ``target_tokens`` white-space tokens, cut to that length."""
    near = [t for t in texts if len(t.split()) >= target_tokens * 3 // 4]
    return [" ".join(t.split()[:target_tokens]) for t in (near or texts)[:n]]


def in_process_rate(model, batches: list[list[str]]) -> float:
    normalised = [normalize_batch(b) for b in batches]
    start = time.perf_counter()
    for batch in normalised:
        model.predict(batch, k=-1)
    return sum(map(len, batches)) / (time.perf_counter() - start)


def load(url: str, bodies: list[bytes], rows: int, requests_total: int, clients: int) -> dict:
    """``clients`` threads with keep-alive connections post bodies round-robin; rows/s and latency."""
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    errors: list[str] = []
    counter = iter(range(requests_total))
    lock = threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            body = bodies[i % len(bodies)]
            start = time.perf_counter()
            conn.request("POST", "/invocations", body, {"Content-Type": "text/csv"})
            resp = conn.getresponse()
            data = resp.read()
            latencies.append(time.perf_counter() - start)
            if resp.status != 200 or data.count(b"\n") + (not data.endswith(b"\n")) != rows:
                errors.append(f"{resp.status} {data[:100]!r}")
            if resp.getheader("Connection", "").lower() == "close":
                conn.close()
        conn.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "rows_per_s": requests_total * rows / elapsed,
        "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3,
        "errors": len(errors),
    }


def worker_memory(master_pid: int) -> tuple[float, float]:
    """Mean RSS and PSS (MiB) of the master's child processes, from /proc/<pid>/smaps_rollup."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    rss, pss = [], []
    for pid in children:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:])
        rss.append(int(fields["Rss"].split()[0]) / 1024)
        pss.append(int(fields["Pss"].split()[0]) / 1024)
    return statistics.mean(rss), statistics.mean(pss)


def naive_server(model_dir: Path, workers: int):
    port = free_port()
    env = {**os.environ, "SM_MODEL_DIR": str(model_dir)}
    cmd = [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}", "--preload"]
    cmd += ["--no-control-socket", "bench.naive_reference:app"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/ping")
            if conn.getresponse().status == 200:
                return proc, url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("naive reference server did not start")


def run_corpus(name: str, pairs: list[tuple[str, str]], args, workdir: Path) -> list[str]:
    model = training.train(pairs)
    model_dir = workdir / name
    model_dir.mkdir()
    model.save_model(str(model_dir / "model.bin"))
    texts = pick_texts([t for _, t in pairs], 20)
    batches = perturbed_bodies(texts, args.rows)
    bodies = [encode_csv_batch(b) for b in batches]
    limit = in_process_rate(model, batches * 3)
    lines = []
    with ServeProcess(model_dir, workers=2) as server:
        load(server.url, bodies, args.rows, 20, args.clients)  # warm-up
        ours = load(server.url, bodies, args.rows, args.requests, args.clients)
        ours_rss, ours_pss = worker_memory(server.process.pid)
    proc, url = naive_server(model_dir, 2)
    try:
        load(url, bodies, args.rows, 4, args.clients)
        naive = load(url, bodies, args.rows, max(10, args.requests // 10), args.clients)
        naive_rss, naive_pss = worker_memory(proc.pid)
    finally:
        proc.terminate()
        proc.wait()
    labels = len(model.get_labels())
    row = "{:<10} {:<34} {:>10,.0f} {:>8.1f} {:>8.1f} {:>7.1f} {:>7.1f} {:>6}"
    lines.append(row.format(name, "(a) in-process predict, 1 thread", limit, 0, 0, 0, 0, 0))
    lines.append(
        row.format(
            name,
            f"ours, 2 workers ({labels} probs/row)",
            ours["rows_per_s"],
            ours["p50_ms"],
            ours["p99_ms"],
            ours_rss,
            ours_pss,
            ours["errors"],
        )
    )
    lines.append(
        row.format(
            name,
            "(b) naive Flask/pandas, k=1, 2 workers",
            naive["rows_per_s"],
            naive["p50_ms"],
            naive["p99_ms"],
            naive_rss,
            naive_pss,
            naive["errors"],
        )
    )
    lines.append(
        f"{name}: ours / naive = {ours['rows_per_s'] / naive['rows_per_s']:.2f}x (target >= 1.2), "
        f"ours / in-process = {ours['rows_per_s'] / limit:.2f}x (target >= 0.8)"
    )
    return lines


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench container", description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per measurement (ours)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client connections")
    parser.add_argument("--rows", type=int, default=500, help="rows per request")
    args = parser.parse_args(argv)
    corpora = {"generated": [(e.label, e.text) for e in synthetic.generate(2800, seed=1)]}
    if shared_sample.FOLDER.is_dir():
        corpora["agnews"] = shared_sample.rows("train.csv")
    else:
        print(f"(AG News sample not found at {shared_sample.FOLDER}: skipped)")
    print(f"load average before: {os.getloadavg()[0]:.2f}, cpus: {os.cpu_count()}")
    header = "{:<10} {:<34} {:>10} {:>8} {:>8} {:>7} {:>7} {:>6}".format(
        "corpus", "server", "rows/s", "p50 ms", "p99 ms", "RSS MiB", "PSS MiB", "errors"
    )
    print(header)
    with tempfile.TemporaryDirectory(prefix="bench-container-") as tmp:
        for name, pairs in corpora.items():
            for line in run_corpus(name, pairs, args, Path(tmp)):
                print(line, flush=True)

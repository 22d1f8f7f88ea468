"""The container under hostile load: slow clients, tiny-record floods, memory per record, SIGTERM with queued work.

Every figure comes from the real ``serve`` program (2 workers) on 127.0.0.1, driven by real sockets:

  slow clients   C clients send a body one byte every 2 s while /ping is probed every 0.25 s (2 s timeout) and
                 another client posts 500-record requests back to back: probes answered, the slowest probe, that
                 client's answers and slowest request, what the slow clients got back;
  tiny records   one body just under the payload limit made of 2-byte records: status, seconds to the answer;
  memory         peak RSS growth of one worker from a request of N/2 to one of N short records, per record;
  SIGTERM        Q requests in flight or queued, then SIGTERM: how many were answered with a 200.
  idle flood     I connections opened and left idle (re-opened as the server sheds them) while /ping is probed
                 every 0.25 s: probes answered within SageMaker's 2 s (the whole call, connect to last byte),
                 latency percentiles of every answered probe.

Usage: python -m bench hostile [--slow-clients C] [--seconds S] [--records N] [--queued Q] [--timeout T]
                               [--idle-connections I]
"""

from __future__ import annotations

import argparse
import http.client
import os
import resource
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path

from fasttext_server.codec import encode_csv_batch
from textexplain import synthetic, training
from textexplain.serving import ServeProcess

PAYLOAD_LIMIT = 6 * 1024 * 1024


def _post(url: str, body: bytes, timeout: float = 120) -> tuple[int, bytes, float]:
    host, port = url.removeprefix("http://").split(":")
    started = time.perf_counter()
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("POST", "/invocations", body, {"Content-Type": "text/csv"})
        resp = conn.getresponse()
        return resp.status, resp.read(), time.perf_counter() - started
    except OSError as exc:
        return -1, repr(exc).encode(), time.perf_counter() - started
    finally:
        conn.close()


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def slow_clients(url: str, clients: int, seconds: float) -> dict:
    """``clients`` connections trickle a body while /ping is probed; what each side saw."""
    host, port = url.removeprefix("http://").split(":")
    stop = time.monotonic() + seconds
    answers: list[str] = []

    def trickle() -> None:
        sock = socket.create_connection((host, int(port)), timeout=seconds + 70)
        body = b'"a slow text"\n' * 8
        head = f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: {len(body)}\r\n\r\n"
        try:
            sock.sendall(head.encode())
            for byte in body:
                if time.monotonic() > stop:
                    break
                sock.sendall(bytes([byte]))
                time.sleep(2)
            sock.settimeout(70)
            reply = sock.recv(300).decode("latin-1")
            answers.append(reply.split("\r\n", 1)[0] + (" (json)" if "application/json" in reply else ""))
        except OSError as exc:
            answers.append(f"socket error {exc.__class__.__name__}")
        finally:
            sock.close()

    others: list[tuple[int, float]] = []
    body = encode_csv_batch([f"a river {i} flows past the old mill" for i in range(500)])

    def other_client() -> None:
        while time.monotonic() < stop:
            status, _, seconds = _post(url, body, timeout=10)
            others.append((status, seconds))
            time.sleep(0.1)

    threads = [threading.Thread(target=trickle) for _ in range(clients)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    other = threading.Thread(target=other_client)
    other.start()
    probes, ok, worst = 0, 0, 0.0
    while time.monotonic() < stop:
        probes += 1
        started = time.perf_counter()
        try:
            conn = http.client.HTTPConnection(host, int(port), timeout=2)
            conn.request("GET", "/ping")
            ok += conn.getresponse().status == 200
            conn.close()
        except OSError:
            pass
        worst = max(worst, time.perf_counter() - started)
        time.sleep(0.25)
    other.join(timeout=30)
    for t in threads:
        t.join(timeout=90)
    return {
        "probes": probes,
        "ok": ok,
        "worst_s": worst,
        "slow_answers": sorted(set(answers)),
        "other_ok": sum(status == 200 for status, _ in others),
        "other_sent": len(others),
        "other_worst_s": max((seconds for _, seconds in others), default=0.0),
    }


def _idle(host: str, port: int, count: int) -> list[socket.socket]:
    held = []
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        try:
            sock.connect((host, port))
        except BlockingIOError:
            pass
        except OSError:  # out of ports or descriptors: hold what is open
            sock.close()
            break
        held.append(sock)
    return held


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))] if ordered else float("nan")


def idle_flood(url: str, connections: int, seconds: float) -> dict:
    """``connections`` idle connections held (those the server shed re-opened each round) while /ping is probed."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    host, port = url.removeprefix("http://").split(":")
    held = _idle(host, int(port), connections)
    latencies, failed = [], 0
    stop = time.monotonic() + seconds
    try:
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:  # http.client's timeout is per socket call: the 2 s bound is checked on the whole call below
                conn = http.client.HTTPConnection(host, int(port), timeout=2)
                conn.request("GET", "/ping")
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
                conn.close()
            except OSError:
                ok = False
            elapsed = time.perf_counter() - started
            if ok:
                latencies.append(elapsed)
            else:
                failed += 1
            alive = []
            for sock in held:  # a shed connection reads as closed (end-of-file or reset)
                try:
                    gone = sock.recv(1) == b""
                except BlockingIOError:
                    gone = False
                except OSError:
                    gone = True
                if gone:
                    sock.close()
                else:
                    alive.append(sock)
            held = alive + _idle(host, int(port), connections - len(alive))
            time.sleep(0.25)
    finally:
        for sock in held:
            sock.close()
    return {
        "probes": len(latencies) + failed,
        "ok": sum(latency <= 2.0 for latency in latencies),
        "p50": _percentile(latencies, 0.5),
        "p95": _percentile(latencies, 0.95),
        "p99": _percentile(latencies, 0.99),
        "max": max(latencies, default=float("nan")),
    }


def tiny_records(url: str) -> dict:
    body = b"a\n" * (PAYLOAD_LIMIT // 2 - 16)
    status, data, seconds = _post(url, body, timeout=120)
    return {"bytes": len(body), "status": status, "seconds": seconds, "answer": data[:120]}


def memory_per_record(url: str, master: int, records: int) -> dict:
    """One worker: a warm-up request, then ``records // 2`` and ``records`` short records; the growth of the
    worker's peak RSS between the two, per added record (one-time costs cancel out)."""
    (worker,) = _children(master)
    _post(url, encode_csv_batch(["warm up"] * 1000))
    half = records // 2
    _post(url, encode_csv_batch([f"w{i % 97}" for i in range(half)]))
    low = _kib(worker, "VmHWM")
    status, _, seconds = _post(url, encode_csv_batch([f"w{i % 97}" for i in range(records)]))
    high = _kib(worker, "VmHWM")
    return {
        "status": status,
        "seconds": seconds,
        "kib_per_record": (high - low) / (records - half),
        "rss_after_mib": _kib(worker, "VmRSS") / 1024,
    }


def sigterm_with_queue(model_dir: Path, queued: int, records: int) -> dict:
    server = ServeProcess(model_dir, workers=2).start()
    body = encode_csv_batch([f"text number {i} about a river" for i in range(records)])
    results: list[int] = []

    def one() -> None:
        results.append(_post(server.url, body, timeout=60)[0])

    threads = [threading.Thread(target=one) for _ in range(queued)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    started = time.perf_counter()
    server.process.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(timeout=90)
    code = server.process.wait(60)
    return {"answered_200": results.count(200), "sent": queued, "exit": code, "stop_s": time.perf_counter() - started}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench hostile", description=__doc__.split("\n")[0])
    parser.add_argument("--slow-clients", type=int, default=4, help="connections trickling a body")
    parser.add_argument("--seconds", type=float, default=20, help="how long the slow clients trickle")
    parser.add_argument("--records", type=int, default=10_000, help="records in the memory-per-record request")
    parser.add_argument("--queued", type=int, default=18, help="requests in flight when SIGTERM arrives")
    parser.add_argument("--idle-connections", type=int, default=2000, help="connections held idle in the flood")
    parser.add_argument(
        "--timeout", type=int, default=60, help="SAGEMAKER_MODEL_SERVER_TIMEOUT of the slow-client server (default 60)"
    )
    args = parser.parse_args(argv)
    print(f"load average before: {os.getloadavg()[0]:.2f}, cpus: {os.cpu_count()} (shared machine)")
    model = training.train([(e.label, e.text) for e in synthetic.generate(1400, seed=1)])
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp:
        model_dir = Path(tmp)
        model.save_model(str(model_dir / "model.bin"))
        env = {"SAGEMAKER_MODEL_SERVER_TIMEOUT": str(args.timeout)}
        with ServeProcess(model_dir, workers=2, extra_env=env) as server:
            slow = slow_clients(server.url, args.slow_clients, args.seconds)
            print(
                f"slow clients: {args.slow_clients} for {args.seconds:.0f} s -> /ping {slow['ok']}/{slow['probes']} "
                f"answered, slowest probe {slow['worst_s']:.2f} s; another client: {slow['other_ok']}/"
                f"{slow['other_sent']} 500-record requests answered 200, slowest {slow['other_worst_s']:.2f} s; "
                f"slow clients got {slow['slow_answers']}"
            )
        with ServeProcess(model_dir, workers=1) as server:
            mem = memory_per_record(server.url, server.process.pid, args.records)
            print(
                f"memory: {args.records} records of 2-3 characters -> {mem['status']} in {mem['seconds']:.2f} s, "
                f"peak RSS growth {mem['kib_per_record'] * 1024:.0f} bytes/record (slope from {args.records // 2}), "
                f"worker RSS after {mem['rss_after_mib']:.0f} MiB"
            )
            tiny = tiny_records(server.url)
            print(
                f"tiny records: {tiny['bytes']} bytes of 2-byte records -> {tiny['status']} in "
                f"{tiny['seconds']:.2f} s: {tiny['answer']!r}"
            )
        with ServeProcess(model_dir, workers=2) as server:
            flood = idle_flood(server.url, args.idle_connections, args.seconds)
            print(
                f"idle flood: {args.idle_connections} idle connections for {args.seconds:.0f} s -> /ping "
                f"{flood['ok']}/{flood['probes']} answered within 2 s, latency p50 {flood['p50'] * 1000:.1f} ms, "
                f"p95 {flood['p95'] * 1000:.1f} ms, p99 {flood['p99'] * 1000:.1f} ms, max {flood['max'] * 1000:.1f} ms"
            )
        stop = sigterm_with_queue(model_dir, args.queued, 8000)
        print(
            f"SIGTERM: {stop['answered_200']}/{stop['sent']} requests answered 200, exit code {stop['exit']}, "
            f"stopped in {stop['stop_s']:.2f} s"
        )

"""The server under hostile clients, over real sockets: slow senders, broken framing, floods, CR, SIGTERM.

Each test talks to a real ``serve`` process (the session's, or one started with the settings the test
needs) on 127.0.0.1. Tests on ``server_url`` also run against the image.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from fasttext_server.codec import encode_csv_batch
from fasttext_server.model import Classifier
from tests.support.wire import decode_jsonlines_response
from textexplain.serving import ServeProcess

CSV = {"Content-Type": "text/csv"}


def raw_exchange(url: str, data: bytes, half_close: bool = False, timeout: float = 30) -> tuple[int, dict, bytes]:
    """Send raw bytes, read the whole answer: (status, headers, body)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
            head, _, rest = b"".join(chunks).partition(b"\r\n\r\n")
            if _ and b"content-length:" in head.lower():
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                if len(rest) >= length:
                    break
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers, body


def read_to_close(sock: socket.socket) -> tuple[bytes, bytes, bytes]:
    """Everything the server sends until it closes the connection: (whole reply, head, body)."""
    reply = b""
    while chunk := sock.recv(4096):
        reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return reply, head, body


def post(url: str, body: bytes, headers: dict | None = None, timeout: float = 60) -> requests.Response:
    return requests.post(url + "/invocations", data=body, headers=headers or CSV, timeout=timeout)


def assert_json_error(status: int, headers: dict, body: bytes, expected_status: int, error: str) -> dict:
    assert status == expected_status, body
    assert headers["content-type"] == "application/json"
    answer = json.loads(body)
    assert answer["error"] == error, answer
    assert answer["detail"]
    return answer


@pytest.fixture(scope="module")
def strict_server(trained_model, served_labels):
    """A server whose worker timeout is short, so budgets and slow-client limits show within a test."""
    env = {"SAGEMAKER_MODEL_SERVER_TIMEOUT": "6"}
    with ServeProcess(trained_model.model_dir, served_labels, workers=2, extra_env=env) as server:
        yield server


# --- slow clients ---------------------------------------------------------------------------------------


def test_slow_clients_do_not_starve_ping_or_other_clients(strict_server):
    host, port = strict_server.url.removeprefix("http://").split(":")
    body = b'"a slow text"\n' * 4
    head = f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: {len(body)}\r\n\r\n"
    slow = [socket.create_connection((host, int(port)), timeout=30) for _ in range(6)]  # more than the workers
    try:
        for sock in slow:
            sock.sendall(head.encode() + body[:3])
        pings = []
        for _ in range(12):
            started = time.monotonic()
            assert requests.get(strict_server.url + "/ping", timeout=2).status_code == 200
            pings.append(time.monotonic() - started)
            resp = post(strict_server.url, b'"a river and a lake"\n', timeout=5)
            assert resp.status_code == 200
            for sock in slow:
                sock.sendall(b"x")  # still trickling: one byte at a time, never the whole body
            time.sleep(0.2)
        # every slow client is answered with our JSON once the request's budget has passed
        for sock in slow:
            reply, head_bytes, answer = read_to_close(sock)
            assert head_bytes.startswith(b"HTTP/1.1 408"), reply[:200]
            assert json.loads(answer)["error"] == "body_timeout"
    finally:
        for sock in slow:
            sock.close()
    assert max(pings) < 2


# --- framing ----------------------------------------------------------------------------------------------


def test_malformed_chunked_encoding_is_a_400_json_error(server_url):
    request = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nabc\r\n0\r\n\r\n"
    )
    assert_json_error(*raw_exchange(server_url, request), 400, "malformed_body")
    assert post(server_url, b'"still serving"\n').status_code == 200


def test_good_chunked_encoding_is_answered(server_url):
    body = b'"a river"\n"a film"\n'
    request = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\n\r\n"
        + f"{len(body):x}\r\n".encode()
        + body
        + b"\r\n0\r\n\r\n"
    )
    status, _, answer = raw_exchange(server_url, request)
    assert status == 200
    assert len(decode_jsonlines_response(answer)) == 2


def test_a_body_shorter_than_its_content_length_is_a_400(server_url):
    request = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 100\r\n\r\n" + (
        b'"only part"\n'
    )
    answer = assert_json_error(*raw_exchange(server_url, request, half_close=True), 400, "incomplete_body")
    assert "12 of the 100 bytes" in answer["detail"]


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GARBAGE\r\n\r\n",
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    ],
)
def test_malformed_requests_get_json_not_html(server_url, request_bytes):
    status, headers, body = raw_exchange(server_url, request_bytes)
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["detail"]


# every kind of broken framing, as a client (or a fuzzer) sends it, with the error our JSON names
BROKEN = [
    (b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", "malformed_body"),  # a chunk size not in hex
    (b"Transfer-Encoding: chunked\r\n\r\n5\r\nabc", "malformed_body"),  # the connection ends inside a chunk
    (b"Transfer-Encoding: chunked\r\n\r\n" + b"f" * 40 + b"\r\nabc\r\n0\r\n\r\n", "malformed_body"),
    (b'Content-Length: 100\r\n\r\n"only part"\n', "incomplete_body"),  # then a half-close
    (b"Content-Length: abc\r\n\r\n", "malformed_request"),
    (b"Content-Length: -5\r\n\r\n", "malformed_request"),
    (b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef", "malformed_request"),
    (b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "malformed_request"),
    (b"Transfer-Encoding: gzip\r\n\r\nabc", "malformed_request"),
    (b"Bad Header\r\n\r\n", "malformed_request"),
]


def test_broken_framing_is_a_400_json_error_with_no_traceback_in_the_log(trained_model, served_labels):
    with ServeProcess(trained_model.model_dir, served_labels, workers=1) as server:
        for tail, error in BROKEN:
            request = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n" + tail
            assert_json_error(*raw_exchange(server.url, request, half_close=True), 400, error)
        for line in (b"GARBAGE\r\n\r\n", b"\x00\x01\x02\r\n\r\n", b"POST /invocations HTTP/9.9\r\nHost: x\r\n\r\n"):
            assert_json_error(*raw_exchange(server.url, line, half_close=True), 400, "malformed_request")
        assert post(server.url, b'"still serving"\n').status_code == 200
        log = server.output()
    assert "Traceback" not in log
    assert "ERROR" not in log
    # each refusal is one warning line that says what was wrong
    assert log.count("-> 400 malformed_body") == 3
    assert log.count("-> 400 incomplete_body") == 1
    assert log.count("Invalid request from ip=127.0.0.1") == 9


# --- bounded work -----------------------------------------------------------------------------------------


def test_a_body_over_the_payload_limit_is_a_413_naming_the_bound(trained_model, served_labels):
    env = {"MAX_PAYLOAD_BYTES": "1000"}
    with ServeProcess(trained_model.model_dir, served_labels, workers=1, extra_env=env) as server:
        body = b'"a river"\n' * 150  # 1,500 bytes
        declared = post(server.url, body)
        assert (declared.status_code, declared.json()["error"]) == (413, "payload_too_large")
        assert declared.json()["detail"] == "body of 1500 bytes exceeds the 1000-byte limit (MAX_PAYLOAD_BYTES)"
        # chunked: no length is declared, so the limit is found while reading
        chunked = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\n"
        chunked += b"\r\n" + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
        answer = assert_json_error(*raw_exchange(server.url, chunked), 413, "payload_too_large")
        assert answer["detail"] == "body exceeds the 1000-byte limit (MAX_PAYLOAD_BYTES)"
        assert post(server.url, b'"a river"\n' * 100).status_code == 200


def test_too_many_records_is_a_413_naming_the_bound(server_url):
    resp = post(server_url, b"a\n" * 10_001)
    assert resp.status_code == 413
    assert resp.json()["error"] == "too_many_records"
    assert "10000" in resp.json()["detail"]
    assert "MAX_RECORDS" in resp.json()["detail"]
    ok = post(server_url, b"a\n" * 10_000)
    assert ok.status_code == 200
    assert len(decode_jsonlines_response(ok.content)) == 10_000


def test_a_payload_of_tiny_records_is_refused_at_once_not_after_the_timeout(server_url):
    body = b"a\n" * (3 * 1024 * 1024 - 8)  # just under 6 MiB: about 3 million records
    resp = post(server_url, body, timeout=30)
    assert resp.status_code == 413
    assert resp.json()["error"] == "too_many_records"
    for kind in ("application/jsonlines", "application/json"):
        lines = b'"a"\n' * 20_000 if kind.endswith("lines") else json.dumps({"instances": ["a"] * 20_000}).encode()
        resp = post(server_url, lines, {"Content-Type": kind}, timeout=30)
        assert (resp.status_code, resp.json()["error"]) == (413, "too_many_records")


def test_answers_stay_under_the_response_limit(trained_model, served_labels):
    env = {"MAX_RESPONSE_BYTES": "20000"}
    with ServeProcess(trained_model.model_dir, served_labels, workers=1, extra_env=env) as server:
        refused = post(server.url, b"a\n" * 200)
        assert refused.status_code == 413
        detail = refused.json()["detail"]
        assert "MAX_RESPONSE_BYTES=20000" in detail
        fit = int(detail.split("(limit ")[1].split(":")[0])
        for accept in ("application/jsonlines", "application/json"):
            ok = post(server.url, b"a\n" * fit, {**CSV, "Accept": accept})
            assert ok.status_code == 200
            assert len(ok.content) <= 20000
        assert post(server.url, b"a\n" * (fit + 1)).status_code == 413


def test_a_request_past_its_budget_is_answered_with_our_json(trained_model, served_labels):
    # worker timeout 1 s (a 0.5 s budget): 10,000 texts of 400 words take seconds to score on any machine (a
    # quiet one scored the earlier 90-word texts inside the budget), so the answer is a JSON 503
    env = {"SAGEMAKER_MODEL_SERVER_TIMEOUT": "1", "MAX_TEXT_CHARS": "100000", "MAX_PAYLOAD_BYTES": str(32 << 20)}
    with ServeProcess(trained_model.model_dir, served_labels, workers=1, extra_env=env) as server:
        body = encode_csv_batch([f"river {i} " * 200 for i in range(10_000)])  # ~20 MB
        resp = post(server.url, body, timeout=60)
        assert resp.status_code == 503
        assert resp.headers["Content-Type"] == "application/json"
        assert resp.json()["error"] in ("deadline_exceeded", "worker_timeout")
        for _ in range(50):  # the server keeps serving (a replaced worker takes a moment)
            if server.healthy():
                break
            time.sleep(0.1)
        assert post(server.url, b'"a river"\n', timeout=10).status_code == 200


def worker_pids(server: ServeProcess) -> list[int]:
    pid = server.process.pid
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_when_the_worker_timeout_fires_every_unanswered_client_gets_our_json(trained_model, served_labels):
    # On a worker's timeout gunicorn's master sends it SIGABRT (and SIGKILL at its next check if the worker still
    # has not reported). The test sends that SIGABRT itself, to a worker holding three unanswered requests, with a
    # master timeout far away: waiting for the master's own would race its SIGKILL on a loaded machine (seen in CI).
    env = {"SAGEMAKER_MODEL_SERVER_TIMEOUT": "120"}
    with ServeProcess(trained_model.model_dir, served_labels, workers=1, extra_env=env) as server:
        [worker] = worker_pids(server)
        host, port = server.url.removeprefix("http://").split(":")
        head = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 50\r\n\r\n"
        clients = [socket.create_connection((host, int(port)), timeout=30) for _ in range(3)]
        try:
            for sock in clients:
                sock.sendall(head + b'"a')  # the bodies are still on their way
            # one worker accepts in arrival order: once /ping is answered, it holds the three requests, waiting
            assert requests.get(server.url + "/ping", timeout=5).status_code == 200
            os.kill(worker, signal.SIGABRT)
            for sock in clients:
                reply, head_bytes, body = read_to_close(sock)
                assert head_bytes.startswith(b"HTTP/1.1 503"), reply[:300]
                assert b"application/json" in head_bytes
                assert json.loads(body)["error"] == "worker_timeout"
        finally:
            for sock in clients:
                sock.close()
        for _ in range(100):  # a new worker takes over
            if server.healthy():
                break
            time.sleep(0.1)
        assert post(server.url, b'"a river"\n', timeout=10).status_code == 200
        # the aborted worker exits once its greenlets are done (gevent carries its SystemExit to the main greenlet)
        for _ in range(300):
            if worker not in worker_pids(server):
                break
            time.sleep(0.1)
        assert worker not in worker_pids(server)
        assert "Traceback" not in server.output()


# --- one text-size limit ----------------------------------------------------------------------------------


def test_text_limit_is_ours_not_the_csv_modules(trained_model, served_labels, server_url):
    too_long = post(server_url, encode_csv_batch(["river " * 834]))  # 5,004 characters
    assert too_long.status_code == 413
    assert too_long.json()["error"] == "text_too_long"
    assert "MAX_TEXT_CHARS" in too_long.json()["detail"]
    # a 5,000-character text whose units were all masked is longer, but still the same text: admitted
    masked = " ".join(["<UNK>"] * 2500)
    assert post(server_url, encode_csv_batch(["ab " * 1666, masked])).status_code == 200
    env = {"MAX_TEXT_CHARS": "300000"}
    with ServeProcess(trained_model.model_dir, served_labels, workers=1, extra_env=env) as server:
        big = "a river flows " * 15_000  # 210,000 characters: over csv's default field limit of 131,072
        resp = post(server.url, encode_csv_batch([big, "a film"]))
        assert resp.status_code == 200, resp.text
        assert len(decode_jsonlines_response(resp.content)) == 2


# --- bare CR ----------------------------------------------------------------------------------------------

CR_TEXTS = ["a\rb", "c", "river\r\rlake", "end\r", "\rstart", 'quote "and"\rcomma, here']


def _csv_writer(texts, quoting, terminator):
    out = io.StringIO()
    csv.writer(out, quoting=quoting, lineterminator=terminator).writerows([t] for t in texts)
    return out.getvalue().encode()


def _pandas(texts, quoting, terminator):
    return pd.DataFrame({"text": texts}).to_csv(index=False, header=False, quoting=quoting, lineterminator=terminator)


@pytest.mark.parametrize("writer", [_csv_writer, _pandas], ids=["csv.writer", "pandas"])
@pytest.mark.parametrize("quoting", [csv.QUOTE_MINIMAL, csv.QUOTE_ALL], ids=["minimal", "all"])
@pytest.mark.parametrize("terminator", ["\n", "\r\n"], ids=["LF", "CRLF"])
def test_a_bare_cr_is_answered_as_the_writers_mean_it(
    server_url, trained_model, served_labels, writer, quoting, terminator
):
    body = writer(CR_TEXTS, quoting, terminator)
    body = body.encode() if isinstance(body, str) else body
    resp = post(server_url, body)
    assert resp.status_code == 200, resp.text
    probs = np.array([r["prob"] for r in decode_jsonlines_response(resp.content)], dtype=np.float32)
    assert len(probs) == len(CR_TEXTS)
    expected = Classifier(trained_model.model, served_labels).predict(CR_TEXTS)
    np.testing.assert_array_equal(probs, expected)


def test_private_use_characters_and_a_bare_cr_in_one_body(server_url, trained_model, served_labels):
    """Failed before the fix with a 500: a bare CR was swapped for a private-use character absent from the body, and
    a body holding all 6,400 of them (U+E000-U+F8FF, in two texts under MAX_TEXT_CHARS) left none to choose."""
    private = [chr(c) for c in range(0xE000, 0xF900)]
    texts = ["".join(private[:3200]), "".join(private[3200:]), "a\rb", "\ue0000\ue0001\r\ue000", "c"]
    body = "".join(f'"{t}"\n' if i < 2 else f"{t}\n" for i, t in enumerate(texts)).encode()  # the last three unquoted
    resp = post(server_url, body)
    assert resp.status_code == 200, resp.text
    probs = np.array([r["prob"] for r in decode_jsonlines_response(resp.content)], dtype=np.float32)
    assert len(probs) == len(texts)
    np.testing.assert_array_equal(probs, Classifier(trained_model.model, served_labels).predict(texts))


# --- batch transform --------------------------------------------------------------------------------------


@pytest.mark.parametrize("line", [b'"a river and a lake"\n', b'"a river and a lake"'])
def test_batch_transform_single_record_jsonlines(server_url, line):
    # Batch Transform with InputFilter $.text, SplitType Line, BatchStrategy SingleRecord: one bare JSON string
    resp = post(server_url, line, {"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"})
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/jsonlines"
    assert resp.content.count(b"\n") == 1
    assert json.loads(resp.content)["label"] == "NaturalPlace"


# --- graceful stop ----------------------------------------------------------------------------------------


def test_sigterm_answers_every_accepted_request(trained_model, served_labels):
    server = ServeProcess(trained_model.model_dir, served_labels, workers=2).start()
    body = encode_csv_batch([f"text number {i} about a river near a lake" for i in range(8000)])
    results: list[int] = []

    def client() -> None:
        try:
            results.append(post(server.url, body, timeout=60).status_code)
        except requests.RequestException as exc:
            results.append(repr(exc))

    clients = [threading.Thread(target=client) for _ in range(16)]
    for t in clients:
        t.start()
    time.sleep(0.3)  # all connected; most are still queued behind the two workers
    server.process.send_signal(signal.SIGTERM)
    for t in clients:
        t.join(timeout=60)
    assert server.process.wait(30) == 0
    server.stop()
    assert results == [200] * 16


def test_sigterm_answers_a_client_still_sending_within_the_stop_window(trained_model, served_labels):
    # default timeout: the body budget (54 s) outlasts SageMaker's 30 s stop window, so the stop answers it
    server = ServeProcess(trained_model.model_dir, served_labels, workers=1).start()
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=40) as sock:
        sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 50\r\n\r\nab")
        time.sleep(0.3)
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        reply, head, body = read_to_close(sock)
        answered = time.monotonic() - started
    assert server.process.wait(30) == 0
    server.stop()
    assert head.startswith(b"HTTP/1.1 503"), reply[:300]
    assert json.loads(body)["error"] == "server_stopping"
    assert answered < 30

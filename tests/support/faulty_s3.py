"""A loopback proxy in front of the local S3 API that fails chosen requests the ways S3 and networks do.

Faults (each used once, in order, for requests that match): ``slow_down`` answers 503 SlowDown (S3's throttling
answer); ``cut`` sends the headers and half the body, then closes the connection (a reset mid-download);
``bad_request`` answers 400 InvalidRequest; ``before`` runs ``action`` (say, another client's overwrite of the
object), then forwards the request as it came.
"""

from __future__ import annotations

import contextlib
import http.client
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)

INVALID_REQUEST = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidRequest</Code>'
    b"<Message>The request is not valid.</Message></Error>"
)


@dataclass
class Fault:
    kind: str  # "slow_down" | "cut" | "bad_request" | "before"
    method: str
    matches: Callable[[str], bool]  # on the request path (with query)
    action: Callable[[], None] | None = None  # what "before" does first


@dataclass
class FaultPlan:
    faults: list[Fault] = field(default_factory=list)
    injected: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, method, path)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.method == method and fault.matches(path):
                    self.faults.remove(fault)
                    self.injected.append((fault.kind, method, path))
                    return fault
        return None


@contextlib.contextmanager
def faulty_proxy(upstream: str) -> Iterator[tuple[str, FaultPlan]]:
    target = urlsplit(upstream)
    plan = FaultPlan()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def _forward(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            fault = plan.take(self.command, self.path)
            if fault is not None and fault.kind == "before":
                fault.action()
            if fault is not None and fault.kind == "bad_request":  # a 400 no retry cures (S3's InvalidRequest)
                self.send_response(400)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(INVALID_REQUEST)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(INVALID_REQUEST)
                return
            if fault is not None and fault.kind == "slow_down":
                self.send_response(503)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(SLOW_DOWN)))
                self.end_headers()
                self.wfile.write(SLOW_DOWN)
                return
            connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            headers["Host"] = target.netloc
            connection.request(self.command, self.path, body=body, headers=headers)
            answer = connection.getresponse()
            data = answer.read()
            connection.close()
            self.send_response(answer.status)
            # a HEAD's answer has no body: its Content-Length is the object's size, kept as the upstream said it
            dropped = ("transfer-encoding", "connection") + (() if self.command == "HEAD" else ("content-length",))
            for key, value in answer.getheaders():
                if key.lower() not in dropped:
                    self.send_header(key, value)
            if self.command != "HEAD":
                self.send_header("Content-Length", str(len(data)))
            if fault is not None and fault.kind == "cut" and len(data) > 1:
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(2)
                return
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", plan
    finally:
        server.shutdown()
        server.server_close()

"""The gunicorn worker: gevent, so a client that trickles its request holds a greenlet, not a worker.

Scoring is CPU-bound and runs to completion between socket waits, so a worker still answers one request
at a time; what gevent adds is that waiting for a slow client's bytes no longer blocks /ping or anyone
else. On top of gunicorn's gevent worker, four things our contract needs:

- every error gunicorn answers itself (a malformed request line or header) is our JSON, not HTML;
- on SIGTERM, connections already queued on the listening socket are accepted and answered before the
  socket closes (gunicorn closes it at once, and the kernel resets whatever was queued);
- if the master aborts a worker on its timeout, or the graceful stop runs out, requests still unanswered get our
  JSON 503 first;
- a stop signal that arrives while the worker boots is kept (``post_fork``), not lost.
"""

from __future__ import annotations

import functools
import signal
import socket
import time

import gevent
import gevent.pool
import orjson
from gevent.server import StreamServer
from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker

_ERROR_NAMES = {400: "malformed_request", 403: "forbidden", 414: "uri_too_long", 417: "expectation_failed",
                431: "headers_too_large", 500: "internal_error", 501: "not_implemented"}  # fmt: skip


def json_error_response(status: int, reason: str, error: str, detail: str) -> bytes:
    body = orjson.dumps({"error": error, "detail": detail})
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def _write_json_error(sock, status_int, reason, mesg):
    detail = mesg or reason
    util.write_nonblock(sock, json_error_response(status_int, reason, _ERROR_NAMES.get(status_int, "error"), detail))


# gunicorn writes its own error answers through util.write_error: ours is JSON like every other answer.
util.write_error = _write_json_error


_STOP_BEFORE_READY: list[int] = []


def post_fork(server, worker) -> None:
    """gunicorn hook, first code in a new worker: a stop signal that arrives before the worker has installed its
    own handlers (a stop right after start) is remembered instead of lost in the master's inherited handler."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, lambda signum, frame: _STOP_BEFORE_READY.append(signum))


class _Named:
    def __init__(self, name):
        self.name = name

    def getsockname(self):
        return self.name


class Worker(GeventWorker):
    def run(self):
        if _STOP_BEFORE_READY:
            self.alive = False
        servers = []
        for listener in self.sockets:
            listener.setblocking(1)
            pool = gevent.pool.Pool(self.worker_connections)
            named = _Named(listener.getsockname())  # the listener closes before drained requests finish
            server = StreamServer(listener, handle=functools.partial(self.handle, named), spawn=pool)
            server.max_accept = 1  # take one connection per turn: the other workers get theirs
            server.start()
            servers.append(server)
        while self.alive:
            self.notify()
            gevent.sleep(0.5)
        for server in servers:
            self._drain(server)
            server.close()
        # SageMaker's SIGKILL follows 30 s after SIGTERM: what is still unanswered 2 s before the end of the
        # graceful period (a client still sending its body) gets our JSON 503 instead of a cut connection.
        deadline = time.monotonic() + max(0.5, self.cfg.graceful_timeout - 2)
        while time.monotonic() < deadline and any(s.pool.free_count() != s.pool.size for s in servers):
            self.notify()
            gevent.sleep(0.1)
        self._answer_unanswered("server_stopping", "the server is stopping (SIGTERM) and this request was not done")
        for server in servers:
            server.stop(timeout=1)

    @staticmethod
    def _drain(server: StreamServer) -> None:
        """Accept what is already queued on the listener, so it is answered instead of reset."""
        server.stop_accepting()
        server.socket.setblocking(False)
        while True:
            try:
                accepted = server.do_read()  # None once nothing is queued
            except OSError:
                return
            if not accepted:
                return
            server.do_handle(*accepted)

    def handle_request(self, listener_name, req, sock, addr):
        # One request per connection, as a sync worker serves: a kept-alive connection stays with the worker that
        # accepted it, and two busy connections on one worker wait while the other worker idles (the p99 of the
        # container benchmark doubled). ``keepalive`` still bounds the time a request's headers may take.
        req.must_close = True
        return super().handle_request(listener_name, req, sock, addr)

    def _answer_unanswered(self, error: str, detail: str) -> None:
        answer = json_error_response(503, "Service Unavailable", error, detail)
        for sock in list(getattr(self.wsgi, "unanswered", {}).values()):
            try:
                util.write_nonblock(sock, answer)
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_abort(self, sig, frame):
        # The master sends SIGABRT on the timeout and SIGKILL at its next check (about a second later) if the worker
        # has still not reported: report first, so the answers below are written before the worker exits.
        self.notify()
        detail = f"the worker passed its {self.cfg.timeout}-second timeout and was stopped; send fewer records"
        self._answer_unanswered("worker_timeout", detail)
        super().handle_abort(sig, frame)

"""The gunicorn worker: gevent, so a client that trickles its request holds a greenlet, not a worker.

Scoring is CPU-bound and runs to completion between socket waits, so a worker still answers one request
at a time; what gevent adds is that waiting for a slow client's bytes no longer blocks /ping or anyone
else. On top of gunicorn's gevent worker, five things our contract needs:

- every error gunicorn answers itself (a malformed request line or header) is our JSON, not HTML;
- on SIGTERM, connections already queued on the listening socket are accepted and answered before the
  socket closes (gunicorn closes it at once, and the kernel resets whatever was queued);
- if the master aborts a worker on its timeout, or the graceful stop runs out, requests still unanswered get our
  JSON 503 first;
- a stop signal that arrives while the worker boots is kept (``post_fork``), not lost;
- at most ``worker_connections`` open connections (``MAX_CONNECTIONS_PER_WORKER``), and a full worker sheds the
  connection that has waited longest for its request's head, once it has waited ``SHED_AFTER_SECONDS`` with nothing
  unread: a flood of idle connections then costs its own connections and never holds /ping in the listen queue.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import signal
import socket
import struct
import termios
import time

import gevent
import gevent.event
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


# A connection accepted this long ago that has still not sent its request's head (and has nothing unread) may be shed
# when its worker is full. A real client sends its request right after connecting; under a flood the wait in the
# listen queue does not count, since its bytes arrive while it waits there. A full worker accepts at most
# worker_connections new connections per SHED_AFTER_SECONDS, so this bounds how long a flood delays /ping.
SHED_AFTER_SECONDS = 0.1


def _unread(sock) -> int:
    """Bytes the kernel holds for ``sock`` that its greenlet has not read yet (never waits; 0 when unknown)."""
    try:
        return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]
    except (OSError, ValueError):
        return 0


def _end(sock) -> None:
    """Shut the connection down so that its greenlet reads end-of-file and ends quietly. Not through gevent's own
    ``shutdown``: that cancels the greenlet's wait with EBADF, which gunicorn logs as a socket error with a traceback
    (one per shed connection, thousands under a flood); a duplicate descriptor shuts down the same connection."""
    with contextlib.suppress(OSError), socket.socket(fileno=os.dup(sock.fileno())) as twin:
        twin.shutdown(socket.SHUT_RDWR)


class _Named:
    def __init__(self, name):
        self.name = name

    def getsockname(self):
        return self.name


class Worker(GeventWorker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # connections accepted and still waiting for their request's head: socket -> time accepted, oldest first
        self._waiting: dict = {}
        self._shed: set = set()  # shut down, their greenlets not yet gone
        self._admitted = gevent.event.Event()

    def run(self):
        if _STOP_BEFORE_READY:
            self.alive = False
        # one pool for every listener: the bound is per worker; a full pool stops accepting until a connection ends
        pool = gevent.pool.Pool(self.worker_connections)
        shedder = gevent.spawn(self._shed_idle, pool)
        servers = []
        for listener in self.sockets:
            listener.setblocking(1)
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
        shedder.kill(block=False)

    def handle(self, listener, client, addr):
        self._waiting[client] = time.monotonic()
        self._admitted.set()
        try:
            super().handle(listener, client, addr)
        finally:
            self._waiting.pop(client, None)
            self._shed.discard(client)

    def handle_request(self, listener_name, req, sock, addr):
        self._waiting.pop(sock, None)  # its head is in: inside a request, never shed
        # One request per connection, as a sync worker serves: a kept-alive connection stays with the worker that
        # accepted it, and two busy connections on one worker wait while the other worker idles (the p99 of the
        # container benchmark doubled). ``keepalive`` still bounds the time a request's headers may take.
        req.must_close = True
        return super().handle_request(listener_name, req, sock, addr)

    def _shed_idle(self, pool) -> None:
        """While the pool is full, shut down the connection that has waited longest for its request's head, once it
        has waited ``SHED_AFTER_SECONDS`` and has nothing unread; its greenlet reads end-of-file and ends, and the
        freed slot accepts the next queued connection. When every open connection is inside a request, nothing is
        shed: the next connection waits in the listen queue until a request ends."""
        while True:
            self._admitted.wait(1.0)  # woken by every admission; the timeout only covers a missed wake-up
            self._admitted.clear()
            while len(pool) - len(self._shed) >= pool.size:
                victim, wait = self._idlest()
                if victim is None:
                    break
                if wait > 0:
                    gevent.sleep(wait)
                    continue
                self._waiting.pop(victim, None)
                self._shed.add(victim)
                _end(victim)

    def _idlest(self):
        """The connection to shed now, or the oldest one and how long until it may be; (None, 0) when none can be."""
        now = time.monotonic()
        for sock, since in self._waiting.items():
            waited = now - since
            if waited < SHED_AFTER_SECONDS:
                return sock, SHED_AFTER_SECONDS - waited  # every later one is younger still
            if not _unread(sock):
                return sock, 0.0
        return None, 0.0

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

"""Run the container's own server, ``python -m fasttext_server`` (what the image's ``serve`` runs), as a subprocess.

The local mode and the tests use this so that every local explanation goes through the same HTTP
server, the same code and the same wire format as in AWS; only the process isn't in a container.

The server never outlives its parent: it gets the read end of a pipe whose write end only this process
holds (``SERVE_PARENT_FD``). When this process ends — normally, on SIGTERM or on SIGKILL — the kernel
closes the write end, ``serve`` reads end-of-file and stops itself, and its workers follow their master.

The temporary files of a run get the same lifeline (``temporary_files``): a small watchdog process is told every
temporary path as it is made, and removes whatever of them is still there once this process is gone. A SIGKILL
leaves no extracted model, training file or half-written ``.partial-*`` output behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from explain_workflow.storage import FileStorage

# the installed server package, run by this interpreter: the same program the image's ``serve`` starts
SERVE_COMMAND = (sys.executable, "-m", "fasttext_server")


class ServeError(RuntimeError):
    """The server did not come up; carries what it printed."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class ServeProcess:
    """``with ServeProcess(model_dir, labels) as server: server.url`` — a running ``serve`` on loopback."""

    def __init__(
        self,
        model_dir: str | Path,
        labels: Sequence[str] | None = None,
        workers: int = 2,
        port: int | None = None,
        extra_env: Mapping[str, str] | None = None,
        startup_timeout: float = 60.0,
    ):
        self.host = "127.0.0.1"
        self.port = port or free_port(self.host)
        self.url = f"http://{self.host}:{self.port}"
        self.startup_timeout = startup_timeout
        self.env = {
            **os.environ,
            "SM_MODEL_DIR": str(model_dir),
            "SERVE_HOST": self.host,
            "SAGEMAKER_BIND_TO_PORT": str(self.port),
            "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers),
            **({"LABELS": json.dumps(list(labels))} if labels is not None else {}),
            **(extra_env or {}),
        }
        self.process: subprocess.Popen | None = None
        self._parent_end: int | None = None  # write end of the lifeline pipe; closing it stops the server
        self._log = tempfile.TemporaryFile(mode="w+", prefix="serve-log-")  # noqa: SIM115 - lives as long as the process

    def start(self) -> ServeProcess:
        child_end, self._parent_end = os.pipe()  # both close-on-exec; only child_end is passed on
        try:
            self.process = subprocess.Popen(
                list(SERVE_COMMAND),
                env={**self.env, "SERVE_PARENT_FD": str(child_end)},
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C reaches this process, which stops the server in order
                pass_fds=(child_end,),
            )
        finally:
            os.close(child_end)
        try:
            deadline = time.monotonic() + self.startup_timeout
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise ServeError(f"serve exited with code {self.process.returncode}:\n{self.output()}")
                if self.healthy():
                    return self
                time.sleep(0.05)
            raise ServeError(f"serve did not answer /ping within {self.startup_timeout}s:\n{self.output()}")
        except BaseException:
            self.stop()
            raise

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/ping", timeout=1) as resp:  # noqa: S310 - our own http://127.0.0.1 URL
                return resp.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, as SageMaker stops a container; returns the exit code."""
        try:
            if self.process is None or self.process.poll() is not None:
                return None if self.process is None else self.process.returncode
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
                raise
        finally:
            if self._parent_end is not None:
                os.close(self._parent_end)
                self._parent_end = None

    def output(self) -> str:
        self._log.flush()
        self._log.seek(0)
        return self._log.read()

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        self._log.close()


# The watchdog: reads NUL-separated paths until end-of-file (its parent closed the pipe, or died), then removes
# those still there. Only the standard library, no site packages (-I -S): it starts in a few milliseconds.
_REAPER = """
import os, shutil, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
for raw in sys.stdin.buffer.read().split(b"\\0"):
    if raw:
        path = os.fsdecode(raw)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass
"""


class _Reaper:
    def __init__(self):
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _REAPER],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C or a hang-up of the terminal reaches the parent only
        )

    def add(self, path: str | os.PathLike) -> None:
        with contextlib.suppress(OSError):  # a watchdog that is gone must not stop the run it watches
            self.process.stdin.write(os.fsencode(os.path.abspath(path)) + b"\0")
            self.process.stdin.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)


_reaper: _Reaper | None = None


def remove_on_exit(path: str | os.PathLike) -> None:
    """Remove ``path`` when this process ends, however it ends (inside ``temporary_files`` only; else a no-op)."""
    if _reaper is not None:
        _reaper.add(path)


def _registered_directory(parent: Path, prefix: str) -> Path:
    """A new private directory, named to the watchdog before it is made (as ``mkdtemp`` would, had it a hook)."""
    while True:
        path = parent / f"{prefix}{secrets.token_hex(6)}"
        remove_on_exit(path)
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            continue
        return path


@contextlib.contextmanager
def temporary_files() -> Iterator[Path]:
    """A private directory that ``tempfile`` uses meanwhile (the extracted model, training files, servers' TMPDIR),
    and a watchdog that removes it, and every path given to ``remove_on_exit``, once this process is gone."""
    global _reaper
    previous = (_reaper, tempfile.tempdir, os.environ.get("TMPDIR"))
    _reaper = _Reaper()
    try:
        private = _registered_directory(Path(tempfile.gettempdir()), "textexplain-")
        tempfile.tempdir = str(private)
        os.environ["TMPDIR"] = str(private)
        try:
            yield private
        finally:
            tempfile.tempdir = previous[1]
            if previous[2] is None:
                os.environ.pop("TMPDIR", None)
            else:
                os.environ["TMPDIR"] = previous[2]
            shutil.rmtree(private, ignore_errors=True)
    finally:
        _reaper.close()
        _reaper = previous[0]


class ReapedFileStorage(FileStorage):
    """``FileStorage`` whose half-written ``.partial-*`` files are removed even if this process is killed."""

    @contextlib.contextmanager
    def writer(self, bucket, key, content_type):
        path = self._path(bucket, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.parent / f".partial-{secrets.token_hex(8)}"
        remove_on_exit(partial)  # told before the file exists: there is no moment a kill could leave it unknown
        try:
            with partial.open("xb") as tmp:
                yield tmp
            os.replace(partial, path)  # atomic within one directory
        except BaseException:
            partial.unlink(missing_ok=True)
            raise

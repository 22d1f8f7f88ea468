"""Run the container's own server, ``python -m fasttext_server`` (what the image's ``serve`` runs), as a subprocess.

The local mode and the tests use this so that every local explanation goes through the same HTTP
server, the same code and the same wire format as in AWS; only the process isn't in a container.

The server never outlives its parent: it gets the read end of a pipe whose write end only this process
holds (``SERVE_PARENT_FD``). When this process ends — normally, on SIGTERM or on SIGKILL — the kernel
closes the write end, ``serve`` reads end-of-file and stops itself, and its workers follow their master.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

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

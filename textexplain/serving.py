"""Run the container's own ``serve`` program as a local subprocess, as SageMaker runs the image.

The local mode and the tests use this so that every local explanation goes through the same HTTP
server, the same code and the same wire format as in AWS; only the process isn't in a container.
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

import fasttext_server

SERVE_PROGRAM = Path(fasttext_server.__file__).resolve().parent.parent / "serve"


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
        self._log = tempfile.TemporaryFile(mode="w+", prefix="serve-log-")  # noqa: SIM115 - lives as long as the process

    def start(self) -> ServeProcess:
        self.process = subprocess.Popen(
            [sys.executable, str(SERVE_PROGRAM)],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServeError(f"serve exited with code {self.process.returncode}:\n{self.output()}")
            if self.healthy():
                return self
            time.sleep(0.05)
        self.stop()
        raise ServeError(f"serve did not answer /ping within {self.startup_timeout}s:\n{self.output()}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/ping", timeout=1) as resp:  # noqa: S310 - our own http://127.0.0.1 URL
                return resp.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, as SageMaker stops a container; returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            raise

    def output(self) -> str:
        self._log.flush()
        self._log.seek(0)
        return self._log.read()

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        self._log.close()

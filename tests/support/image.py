"""The real container image, built by scripts/image.sh and run on 127.0.0.1 as SageMaker runs it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

from textexplain.serving import free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "image.sh"
CANNOT_RUN_HERE = 3
LOCAL_BASE = "localhost/textexplain-base:bookworm"  # the base scripts/image.sh makes when BASE is not set


def expected_base() -> str:
    """The base scripts/image.sh builds on in this environment: BASE when set; else the locally made base, or, when
    pip names a certificate bundle (PIP_CERT), that base with the bundle's layer, named by the bundle's hash."""
    if os.environ.get("BASE"):
        return os.environ["BASE"]
    cert = Path(os.environ.get("PIP_CERT") or "/nonexistent")
    if not cert.is_file():
        return LOCAL_BASE
    return f"{LOCAL_BASE}-pip-cert-{hashlib.sha256(cert.read_bytes()).hexdigest()[:12]}"


def build() -> str | None:
    """Build the image; None when this machine cannot build images (the script says why on stderr)."""
    result = subprocess.run(["bash", str(SCRIPT), "build"], capture_output=True, text=True, timeout=1500)
    if result.returncode == CANNOT_RUN_HERE:
        return None
    if result.returncode != 0:
        raise RuntimeError(f"image build failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout.strip().splitlines()[-1]


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), "podman", *args], capture_output=True, text=True, check=check)


def readable_copy(model_dir: Path, target: Path) -> Path:
    """The model where the image's non-root user can read it, as SageMaker's extracted artifact is."""
    target.mkdir(parents=True, exist_ok=True)
    for item in model_dir.iterdir():
        shutil.copy(item, target / item.name)
        (target / item.name).chmod(0o644)
    for directory in (target, *target.parents):
        if directory == Path("/"):
            break
        directory.chmod(directory.stat().st_mode | 0o755)
    return target


class ImageServer:
    """``with ImageServer(model_dir, labels) as server: server.url`` — the image serving on loopback."""

    def __init__(
        self,
        model_dir: Path,
        labels: list[str] | None = None,
        workers: int = 2,
        env: dict | None = None,
        container_port: int = 8080,
    ):
        self.model_dir, self.port, self.container_port = model_dir, free_port(), container_port
        self.name = f"textexplain-test-{uuid.uuid4().hex[:8]}"
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {"SAGEMAKER_MODEL_SERVER_WORKERS": str(workers), **(env or {})}
        if labels is not None:
            self.env["LABELS"] = json.dumps(labels)
        self.startup_seconds: float | None = None

    def start(self, timeout: float = 60) -> ImageServer:
        started = time.monotonic()
        envs = [f"{k}={v}" for k, v in self.env.items()]
        subprocess.run(
            ["bash", str(SCRIPT), "run", str(self.model_dir), str(self.port), self.name, *envs],
            check=True, capture_output=True, text=True, env={**os.environ, "CONTAINER_PORT": str(self.container_port)},
        )  # fmt: skip
        checks = 0
        while time.monotonic() - started < timeout:
            if self.healthy():
                self.startup_seconds = time.monotonic() - started
                return self
            checks += 1
            if checks % 10 == 0 and not self.running():
                break  # it exited: no point in waiting
            time.sleep(0.1)
        logs = podman("logs", self.name, check=False)
        self.remove()
        raise RuntimeError(f"image did not answer /ping in {timeout}s:\n{logs.stdout}{logs.stderr}")

    def running(self) -> bool:
        state = podman("inspect", "-f", "{{.State.Running}}", self.name, check=False)
        return state.stdout.strip() == "true"

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/ping", timeout=1) as resp:
                return resp.status == 200
        except OSError:
            return False

    def remove(self) -> None:
        podman("rm", "-f", "-t", "5", self.name, check=False)

    def __enter__(self) -> ImageServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.remove()


def context_files(root: Path = ROOT) -> list[Path]:
    """The files of the image's build context: what root's .dockerignore admits (its ``!`` lines, files or whole
    directories, less caches), relative to ``root``."""
    admitted = [line[1:] for line in (root / ".dockerignore").read_text().splitlines() if line.startswith("!")]
    files = []
    for name in admitted:
        path = root / name
        found = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        files += [p.relative_to(root) for p in found if "__pycache__" not in p.parts and p.suffix != ".pyc"]
    return files


def copy_image_context(target: Path, root: Path = ROOT) -> Path:
    """A copy of the image's build context (with its .dockerignore) at ``target``."""
    for relative in [Path(".dockerignore"), *context_files(root)]:
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / relative, target / relative)
    return target

"""The ``textexplain`` command line run as a user runs it: a separate process, its output and exit code kept."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "textexplain.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )

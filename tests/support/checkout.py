"""For the tests that run the checkout's own make targets as a user would (``make demo``, ``make lint``,
``make test-<tier>``): the suite must leave the checkout as it found it and be able to run twice in a row.

- ``make()`` runs a target only when the virtualenv is up to date for this checkout (``make -q`` on the stamp, a
  question that runs nothing). Every target depends on the stamp, whose recipe runs ``pip install -e .``: a test
  that ran a target with the stamp out of date (requirements edited since, or a virtualenv shared with another
  checkout) would reinstall the virtualenv, pointing its editable install at whichever checkout ran it. It fails
  instead, saying so.
- ``set_aside(name)`` runs a block with ``<checkout>/<name>`` absent (``demo-output/`` of an earlier ``make demo``
  makes the next one print "already explained"), removes what the block made there and puts back what was there;
  one such block per name at a time across the suite's worker processes (a file lock).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STAMP = ".venv/.deps-stamp"  # the Makefile's $(STAMP)


def stale_virtualenv(pretend_newer: str | None = None) -> str | None:
    """Why running a make target would reinstall the virtualenv, or None when it would not."""
    what_if = ["-W", pretend_newer] if pretend_newer else []
    query = subprocess.run(["make", "-q", *what_if, STAMP], cwd=ROOT, capture_output=True, text=True, timeout=60)
    if query.returncode == 0:
        return None
    return (
        f"{STAMP} is out of date for {ROOT} (`make -q {STAMP}` exits {query.returncode}): any make target would "
        "reinstall the virtualenv (pip install -e .) first; run `make test` (or the target) yourself, not from a test"
    )


def make(args: Sequence[str], pretend_newer: str | None = None, **kwargs) -> subprocess.CompletedProcess:
    """``make <args>`` in the checkout, as written, never reinstalling the virtualenv (see the module doc)."""
    if reason := stale_virtualenv(pretend_newer):
        pytest.fail(reason)
    return subprocess.run(["make", *args], cwd=ROOT, **kwargs)


@contextlib.contextmanager
def locked(name: str) -> Iterator[Path]:
    """``<checkout>/<name>``, while no ``set_aside(name)`` block runs in any process (the same file lock)."""
    path = ROOT / name
    key = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"checkout-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield path


@contextlib.contextmanager
def set_aside(name: str) -> Iterator[Path]:
    with locked(name) as path:
        holder = Path(tempfile.mkdtemp(prefix="set-aside-"))
        kept = path.exists() or path.is_symlink()
        if kept:
            shutil.move(path, holder / path.name)
        try:
            yield path
        finally:
            if path.is_symlink() or path.is_file():
                path.unlink()
            elif path.exists():
                shutil.rmtree(path)
            if kept:
                shutil.move(holder / path.name, path)
            holder.rmdir()

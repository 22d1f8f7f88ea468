"""The image installs only container/requirements.txt: whatever the configured gunicorn worker needs must be pinned
there (gunicorn's gevent worker imports ``packaging``, declared only in gunicorn's ``gevent`` extra)."""

from __future__ import annotations

import re
from importlib.metadata import requires
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


def pinned() -> dict[str, str]:
    lines = (ROOT / "container" / "requirements.txt").read_text().splitlines()
    pins = [re.split(r"\s+#", line)[0].strip() for line in lines if line.strip() and not line.startswith("#")]
    return {re.split(r"[\[=]", p)[0].lower(): p.split("==")[1] for p in pins}


def test_the_gevent_worker_and_its_dependencies_are_pinned_for_the_image():
    pins = pinned()
    assert "fasttext_server.worker.Worker" in (ROOT / "container" / "fasttext_server" / "server.py").read_text()
    needed = {"gunicorn", "gevent"}
    for name in ("gunicorn", "gevent"):
        for raw in requires(name) or []:
            req = Requirement(raw)
            env = {"extra": "gevent" if name == "gunicorn" else "", "python_version": "3.11",
                   "platform_python_implementation": "CPython", "sys_platform": "linux"}  # fmt: skip
            if req.marker is None or req.marker.evaluate(env):
                needed.add(req.name.lower())
    assert sorted(needed - pins.keys()) == []
    assert pins["gevent"] == "26.9.0"

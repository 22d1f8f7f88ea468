"""Each Lambda imports with nothing but what AWS gives it: the standard library, the asset (lambda/) and the
distributions its requirements.txt pins (the runtime's boto3, the Powertools layer), with their dependencies.

The development environment has far more installed (numpy, pandas, ...); an import of one of those would pass every
other test and fail in AWS at the first invocation. Here the handler is imported in an isolated interpreter whose
path holds only links to the pinned distributions' own top-level packages.
"""

from __future__ import annotations

import importlib.metadata as metadata
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LAMBDA = Path(__file__).resolve().parents[2] / "lambda"
FUNCTIONS = sorted(p.parent.name for p in LAMBDA.glob("*/handler.py"))


def pinned(function: str) -> list[Requirement]:
    lines = (LAMBDA / function / "requirements.txt").read_text().splitlines()
    return [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]


def closure(requirements: list[Requirement]) -> dict[str, metadata.Distribution]:
    """Installed distributions for the requirements and, recursively, their dependencies (extras honoured)."""
    found: dict[str, metadata.Distribution] = {}
    todo = [(r, "") for r in requirements]
    while todo:
        requirement, parent_extra = todo.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": parent_extra}):
            continue
        name = canonicalize_name(requirement.name)
        dist = metadata.distribution(name)
        assert requirement.specifier.contains(dist.version, prereleases=True), (requirement, dist.version)
        extras = sorted(requirement.extras)
        if name in found and not extras:
            continue
        found[name] = dist
        for extra in extras or [""]:
            todo.extend((Requirement(r), extra) for r in dist.requires or [])
    return found


def top_level_paths(dist: metadata.Distribution) -> set[Path]:
    """The installed top-level packages and modules a distribution owns."""
    paths = set()
    for file in dist.files or []:
        first = file.parts[0]
        if first.endswith((".dist-info", ".egg-info", ".pth")) or first in ("..", "__pycache__", "bin"):
            continue
        paths.add(Path(dist.locate_file(first)).resolve())
    return paths


@pytest.mark.parametrize("function", FUNCTIONS)
def test_handler_imports_with_only_its_pinned_distributions(function, tmp_path):
    for dist in closure(pinned(function)).values():
        for path in top_level_paths(dist):
            (tmp_path / path.name).symlink_to(path)
    code = f"import sys; sys.path[:0] = [{str(tmp_path)!r}, {str(LAMBDA)!r}]; import {function}.handler"
    # -I: no user site, no PYTHON* variables; -S: no site-packages; only the standard library is left.
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={"AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_TRACE_DISABLED": "true"},
    )
    assert result.returncode == 0, f"{function} needs more than its requirements.txt pins:\n{result.stderr[-2000:]}"


def test_every_function_is_covered():
    assert FUNCTIONS == ["postprocess", "prepare", "record_failure", "start_run"]

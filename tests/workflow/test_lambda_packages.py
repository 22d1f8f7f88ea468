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

from infra.constructs.layer import layer_distributions

LAMBDA = Path(__file__).resolve().parents[2] / "lambda"
FUNCTIONS = sorted(p.parent.name for p in LAMBDA.glob("*/handler.py"))


def pinned(function: str) -> list[Requirement]:
    lines = (LAMBDA / function / "requirements.txt").read_text().splitlines()
    return [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]


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
    # the layer's own resolution (versions checked against the pins), with the runtime's boto3 set included
    for dist in layer_distributions(pinned(function), runtime_provided=frozenset()).values():
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

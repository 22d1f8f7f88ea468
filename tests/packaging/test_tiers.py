"""The tiers: registered strictly in pyproject, one make target each, and `make test` still runs all of them."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.support.tiers import TIERS

ROOT = Path(__file__).resolve().parents[2]


def dry_run(target: str) -> str:
    result = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    return result.stdout


def test_the_tiers_are_the_registered_markers_and_markers_are_strict():
    options = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["pytest"]["ini_options"]
    assert [marker.split(":")[0] for marker in options["markers"]] == list(TIERS)
    assert "--strict-markers" in options["addopts"]


@pytest.mark.parametrize("tier", TIERS)
def test_each_tier_has_its_make_target(tier):
    assert ".venv/bin/python -m pytest -m " + tier in dry_run(f"test-{tier}").splitlines()


def test_make_test_runs_every_tier_and_nothing_tolerates_no_tests():
    lines = dry_run("test").splitlines()
    assert ".venv/bin/python -m pytest" in lines  # no -m: every tier
    assert not [line for line in lines if "|| true" in line or "$?" in line]
    assert (ROOT / ".ci" / "run").read_text(encoding="utf-8").rstrip().endswith("make test")

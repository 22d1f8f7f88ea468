"""The tiers: registered strictly in pyproject, one make target each, and `make test` still runs all of them."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.support import tiers
from tests.support.checkout import make
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


@pytest.mark.parametrize("tier", TIERS)
def test_each_tier_make_target_runs_as_written(tier):
    """`make test-<tier>` as README shows it, stopped after collection (the suite runs the tests themselves): it
    exits 0 and selects only that tier's tests, and at least one."""
    env = {**os.environ, "PYTEST_ADDOPTS": "--collect-only -q"}
    result = make([f"test-{tier}"], env=env, capture_output=True, text=True, timeout=600)  # never reinstalling
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    selected = re.search(r"(\d+)(?:/\d+)? tests? (?:collected|selected)", result.stdout)
    assert selected, result.stdout[-3000:]
    assert int(selected.group(1)) > 0


def test_make_test_runs_every_tier_and_nothing_tolerates_no_tests():
    lines = dry_run("test").splitlines()
    (pytest_line,) = [line for line in lines if line.startswith(".venv/bin/python -m pytest")]
    assert " -m " not in pytest_line.removeprefix(".venv/bin/python -m pytest"), pytest_line  # every tier
    assert not [line for line in lines if "|| true" in line or "$?" in line]
    assert (ROOT / ".ci" / "run").read_text(encoding="utf-8").rstrip().endswith("make test")


class Item:
    """What tier_of reads of a collected test."""

    def __init__(self, relative: str, fixtures: tuple[str, ...] = (), markers: tuple[str, ...] = ()):
        self.path, self.nodeid = tiers.TESTS / relative, relative + "::test"
        self.fixturenames, self.markers = list(fixtures), [getattr(pytest.mark, m).mark for m in markers]

    def iter_markers(self):
        return iter(self.markers)


def test_a_test_gets_its_modules_tier_else_its_directorys_and_a_directory_without_one_is_an_error():
    assert tiers.tier_of(Item("workflow/test_dataset.py")) == "unit"
    assert tiers.tier_of(Item("workflow/test_postprocess.py")) == "integration"
    assert tiers.tier_of(Item("container/test_http.py", ("server", "built_image"))) == "image"
    with pytest.raises(pytest.UsageError, match=r"no tier for elsewhere/test_x\.py"):
        tiers.tier_of(Item("elsewhere/test_x.py"))
    with pytest.raises(pytest.UsageError, match="more than one tier marker"):
        tiers.tier_of(Item("unit/test_x.py", markers=("unit", "infra")))


@pytest.mark.parametrize("fixture", sorted(tiers.NOT_UNIT - {"built_image"}))
def test_a_unit_test_cannot_start_a_server_or_synthesize(fixture):
    for item in (Item("unit/test_x.py", (fixture,)), Item("infra/test_x.py", (fixture,), markers=("unit",))):
        with pytest.raises(pytest.UsageError, match="a unit test cannot use"):
            tiers.tier_of(item)

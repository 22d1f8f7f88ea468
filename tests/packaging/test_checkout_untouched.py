"""The suite leaves the checkout as it found it and runs twice in a row: the tests that run the checkout's own make
targets (tests/support/checkout.py), run here as the suite runs them, in a pytest of their own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.checkout import ROOT, STAMP, locked, make, stale_virtualenv

DEMO_TEST = "tests/packaging/test_readme_commands.py::test_make_demo_prints_what_the_readme_shows"


def _state(name: str) -> list[tuple[str, int]]:
    """What is at ``<checkout>/<name>``, every file's name and size (or nothing), read while no test sets it aside
    (the suite's other workers may be running the demo test meanwhile)."""
    with locked(name) as path:
        return sorted((p.relative_to(path).as_posix(), p.stat().st_size) for p in path.rglob("*") if p.is_file())


def _venv_marks() -> list[tuple[str, int]]:
    """The stamp and the editable install's files, by modification time: a reinstall changes them."""
    site = next((ROOT / ".venv" / "lib").glob("python*/site-packages"))
    files = [ROOT / STAMP, *sorted(site.glob("__editable__*"))]
    return [(p.name, p.stat().st_mtime_ns) for p in files]


def test_the_readme_demo_test_runs_twice_and_leaves_demo_output_as_it_was():
    """Failed before: the first run left demo-output/ in the checkout, and the second `make demo` then printed
    "already explained: ..." instead of the README's lines, so the test failed."""
    before, marks = _state("demo-output"), _venv_marks()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    for run in (1, 2):
        done = subprocess.run(
            [sys.executable, "-m", "pytest", DEMO_TEST, "-q", "-p", "no:cacheprovider", "-p", "no:xdist"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert done.returncode == 0, f"run {run}:\n{done.stdout[-3000:]}{done.stderr[-2000:]}"
        assert _state("demo-output") == before, f"run {run} left demo-output/ changed"
    assert _venv_marks() == marks  # nothing was installed


@pytest.mark.skipif(stale_virtualenv() is not None, reason="the virtualenv is out of date for this checkout")
def test_a_target_that_would_reinstall_the_virtualenv_is_refused_not_run():
    """The make targets the suite runs all depend on the stamp, whose recipe runs `pip install -e .`: with the stamp
    out of date (here: pyproject.toml taken as newer, `make -W`), the test fails saying so and nothing is installed."""
    marks = _venv_marks()
    assert (
        "pip install"
        in subprocess.run(
            ["make", "-n", "-W", "pyproject.toml", "demo"], cwd=ROOT, capture_output=True, text=True, timeout=60
        ).stdout
    )  # what `make demo` would have run
    with pytest.raises(pytest.fail.Exception, match="would reinstall the virtualenv"):
        make(["demo"], pretend_newer="pyproject.toml", capture_output=True, text=True, timeout=60)
    assert _venv_marks() == marks

"""What the package imports is what it declares: pyproject's dependencies, requirements.txt and the image's pins."""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
FIRST_PARTY = {"textexplain", "fasttext_server", "explain_workflow", "infra"}
SOURCES = {
    "textexplain": ROOT / "textexplain",
    "fasttext_server": ROOT / "container" / "fasttext_server",
    "explain_workflow": ROOT / "lambda" / "explain_workflow",
    "infra": ROOT / "infra",
}


def imported_modules(package: str) -> set[str]:
    """Top-level names of every import in the package's modules, function-level (lazy) imports included."""
    return imports_in(SOURCES[package].rglob("*.py"))


def imports_in(paths) -> set[str]:
    names: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


PROVIDERS = metadata.packages_distributions()  # import name -> distributions providing it


def third_party(packages: list[str], extras: frozenset[str] = frozenset()) -> set[str]:
    """Distributions the packages import (the first party's own imports followed, except ``extras``)."""
    seen, todo, dists = set(extras), list(packages), set()
    while todo:
        package = todo.pop()
        seen.add(package)
        for name in imported_modules(package):
            if name in FIRST_PARTY:
                todo.extend({name} - seen)
            elif name not in sys.stdlib_module_names and name != "__future__":
                found = PROVIDERS.get(name)
                assert found, f"{package} imports {name}, which no installed distribution provides"
                dists.add(canonicalize_name(found[0]))
    return dists


def distributions_of(names: set[str]) -> set[str]:
    """The distributions providing these third-party top-level import names (first party and stdlib skipped)."""
    outside = {n for n in names if n not in FIRST_PARTY and n not in sys.stdlib_module_names and n != "__future__"}
    return {canonicalize_name(PROVIDERS[n][0]) for n in outside}


def pins(lines: list[str]) -> dict[str, str]:
    """name -> exact version; every requirement must be pinned with ==."""
    out = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if not line or line.startswith("-"):
            continue
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==", f"{line}: not an exact pin"
        out[canonicalize_name(req.name)] = spec.version
    return out


def file_pins(name: str) -> dict[str, str]:
    return pins((ROOT / name).read_text(encoding="utf-8").splitlines())


DECLARED = pins(PYPROJECT["project"]["dependencies"])
CDK_EXTRA = pins(PYPROJECT["project"]["optional-dependencies"]["cdk"])


def test_the_installed_package_declares_every_distribution_it_imports():
    # infra is the `cdk` extra: only `textexplain estimate` and `status` import it, lazily
    missing = third_party(["textexplain", "fasttext_server", "explain_workflow"], frozenset({"infra"})) - set(DECLARED)
    assert not missing, f"imported but not in pyproject's dependencies: {sorted(missing)}"


def test_the_cdk_extra_with_the_dependencies_covers_what_infra_imports():
    missing = third_party(["infra"]) - set(DECLARED) - set(CDK_EXTRA)
    assert not missing, f"infra imports these, pyproject declares them nowhere: {sorted(missing)}"


def test_requirements_txt_covers_what_synth_imports():
    # infra's own imports (lazy ones included), and those of the explain_workflow modules the app really loads
    # (the contract and what it imports; the functions' runtime modules such as observability stay out of synth)
    probe = (
        "import sys, json, pkgutil, importlib; sys.path[:0] = ['lambda', '.']; import app, infra; "
        "[importlib.import_module(m.name) for m in pkgutil.walk_packages(infra.__path__, 'infra.')]; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('explain_workflow.'))))"
    )
    run = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = [SOURCES["explain_workflow"] / f"{name.split('.', 1)[1]}.py" for name in json.loads(run.stdout)]
    needed = third_party(["infra"], frozenset({"explain_workflow"})) | distributions_of(imports_in(loaded))
    missing = needed - set(file_pins("requirements.txt"))
    assert not missing, f"cdk synth imports these, requirements.txt lacks them: {sorted(missing)}"


def test_the_image_pins_what_its_modules_import():
    """Every module the image carries (the build context .dockerignore admits: the server, the job and the parts of
    textexplain and explain_workflow they use), not whole packages: the image has none of infra's or boto3's code."""
    from tests.support.image import context_files

    modules = [ROOT / p for p in context_files() if str(p).endswith(".py")]
    assert any("fasttext_server" in str(p) for p in modules)
    assert any(p.name == "job.py" for p in modules)
    missing = distributions_of(imports_in(modules)) - set(file_pins("container/requirements.txt"))
    assert not missing, f"the image's modules import these, container/requirements.txt lacks them: {sorted(missing)}"


@pytest.mark.parametrize("declared", [DECLARED, CDK_EXTRA], ids=["dependencies", "cdk"])
def test_pyproject_pins_the_versions_the_suite_runs_with(declared):
    dev = {**file_pins("requirements.txt"), **file_pins("requirements-dev.txt")}
    differ = {name: (version, dev.get(name)) for name, version in declared.items() if dev.get(name) != version}
    assert not differ, f"pyproject vs requirements*.txt: {differ}"


def test_every_subpackage_is_found():
    from setuptools import find_namespace_packages

    expected = {
        ".".join(path.relative_to(SOURCES[top].parent).parts[:-1])
        for top in SOURCES
        for path in SOURCES[top].rglob("__init__.py")
    }
    found = set()
    config = PYPROJECT["tool"]["setuptools"]["packages"]["find"]
    for where in config["where"]:
        found |= set(find_namespace_packages(str(ROOT / where), include=config["include"]))
    assert expected <= found, f"not packaged: {sorted(expected - found)}"
    assert re.fullmatch(r"\d+\.\d+\.\d+", PYPROJECT["project"]["version"])


def test_the_benchmarks_import_no_test_code():
    importing = set()
    for path in sorted((ROOT / "bench").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name == "tests" or name.startswith("tests.") for name in names):
                importing.add(path.name)
    assert not importing, f"bench modules importing the tests package: {sorted(importing)}"

"""Test code shares helpers through tests/support only: no test module or conftest imports another one, and every
module outside tests/support is a test module, a conftest or a package marker."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
SUPPORT = TESTS / "support"


def package_imports(path: Path) -> list[str]:
    """Every module of the tests package that ``path`` imports (function-level imports included), and any
    relative import, written as the module it names."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name == "tests" or a.name.startswith("tests.")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                found.append("." * node.level + (node.module or ""))
            elif node.module == "tests":
                found += [f"tests.{a.name}" for a in node.names]
            elif node.module and node.module.startswith("tests."):
                found.append(node.module)
    return found


def outside_support(module: str) -> bool:
    return module.startswith(".") or not (module == "tests.support" or module.startswith("tests.support."))


def test_no_test_module_or_conftest_imports_another():
    offending = {
        path.relative_to(TESTS).as_posix(): bad
        for path in sorted(TESTS.rglob("*.py"))
        if (bad := [m for m in package_imports(path) if outside_support(m)])
    }
    assert offending == {}, "import helpers from tests.support instead"


def test_helpers_live_in_tests_support():
    helpers = [
        path.relative_to(TESTS).as_posix()
        for path in sorted(TESTS.rglob("*.py"))
        if SUPPORT not in path.parents
        and path.name not in ("conftest.py", "__init__.py")
        and not path.name.startswith("test_")
    ]
    assert helpers == []


def test_the_check_sees_the_imports_it_forbids(tmp_path):
    module = tmp_path / "test_example.py"
    module.write_text(
        "from tests.workflow.conftest import TEXTS\nfrom . import helpers\nimport tests.infra.test_commands\n"
        "from tests import conftest\nfrom tests.support.data import TEXTS\n\n"
        "def test_x():\n    from tests.container.test_http import clarify_batch\n",
        encoding="utf-8",
    )
    assert [m for m in package_imports(module) if outside_support(m)] == [
        "tests.workflow.conftest",
        ".",
        "tests.infra.test_commands",
        "tests.conftest",
        "tests.container.test_http",
    ]


def test_one_local_aws_api_per_session():
    """moto's server is started by the session fixture only; tests ask for ``moto_url`` (emptied for each test)."""
    starting = [
        path.relative_to(TESTS).as_posix()
        for path in sorted(TESTS.rglob("*.py"))
        if SUPPORT not in path.parents
        and any(
            isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "moto_server"
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        )
    ]
    assert starting == ["conftest.py"]

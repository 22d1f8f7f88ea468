"""Every test the docs name as holding a fact (``tests/<path>.py::<name>``, e.g. docs/workflow.md's table of service
behaviours) exists: the module is there and defines that test at its top level. A renamed or deleted test would
otherwise leave the docs claiming a guard that no longer runs."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
REFERENCE = re.compile(r"\b(tests/[\w/]+\.py)::(\w+)")


def references(text: str) -> list[tuple[str, str]]:
    return REFERENCE.findall(text)


@cache
def defined(module: str) -> frozenset[str]:
    """The names a test module defines at its top level (functions, async functions, classes)."""
    tree = ast.parse((ROOT / module).read_text(encoding="utf-8"))
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return frozenset(node.name for node in tree.body if isinstance(node, kinds))


def test_every_test_the_docs_name_exists():
    named, missing = [], []
    for doc in DOCS:
        for module, name in references(doc.read_text(encoding="utf-8")):
            named.append((doc.name, module, name))
            if not (ROOT / module).is_file():
                missing.append(f"{doc.name}: {module} (no such file)")
            elif name not in defined(module):
                missing.append(f"{doc.name}: {module}::{name} (no such test)")
    assert missing == []
    assert any(doc == "workflow.md" for doc, _, _ in named)  # the facts table names its tests


def test_a_misnamed_test_is_caught():
    text = "held by `tests/packaging/test_documented_tests.py::test_every_test_the_docs_name_exist`"
    ((module, name),) = references(text)
    assert (ROOT / module).is_file()
    assert name not in defined(module)
    assert "test_every_test_the_docs_name_exists" in defined(module)

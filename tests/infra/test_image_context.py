"""The image is built from the checkout with container/Dockerfile, and /.dockerignore admits only what the image copies:
so the image asset's hash (CDK hashes the context less what .dockerignore excludes) changes with the image's own files
and with nothing else in the repository."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_ecr_assets as ecr_assets

from infra.config import ROOT
from tests.support.image import context_files, copy_image_context


def asset_hash(context: Path, outdir: Path) -> str:
    app = cdk.App(outdir=str(outdir))
    stack = cdk.Stack(app, "S")
    asset = ecr_assets.DockerImageAsset(stack, "Image", directory=str(context), file="container/Dockerfile")
    return asset.asset_hash


def copied_sources() -> set[str]:
    """Every path a COPY of container/Dockerfile takes from the build context."""
    text = (ROOT / "container" / "Dockerfile").read_text().replace("\\\n", " ")
    sources = set()
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            sources |= set(words[1:-1])
    return sources


def test_the_context_holds_exactly_what_the_dockerfile_copies():
    admitted = {line[1:] for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")}
    assert copied_sources() == admitted - {"container/Dockerfile"}
    assert all((ROOT / p).exists() for p in admitted)


def test_the_asset_hash_ignores_the_rest_of_the_repository(tmp_path):
    context = copy_image_context(tmp_path / "context")
    base = asset_hash(context, tmp_path / "a")
    assert asset_hash(ROOT, tmp_path / "b") == base  # the checkout (docs, tests, node_modules, ...) hashes as the copy
    for unrelated in ("docs/new.md", "tests/test_new.py", "infra/new.py", "lambda/explain_workflow/new.py"):
        (context / unrelated).parent.mkdir(parents=True, exist_ok=True)
        (context / unrelated).write_text("a change the image does not contain\n")
    (context / "textexplain" / "explainer" / "__pycache__").mkdir()
    (context / "textexplain" / "explainer" / "__pycache__" / "explain.cpython-311.pyc").write_bytes(b"\0")
    assert asset_hash(context, tmp_path / "c") == base


def test_the_asset_hash_changes_with_each_part_of_the_image(tmp_path):
    context = copy_image_context(tmp_path / "context")
    seen = {asset_hash(context, tmp_path / "base")}
    for i, relative in enumerate(["textexplain/job.py", "textexplain/explainer/units.py",
                                  "lambda/explain_workflow/parts.py", "container/fasttext_server/app.py"]):  # fmt: skip
        assert Path(relative) in context_files(context)
        with (context / relative).open("a") as fh:
            fh.write("# changed\n")
        seen.add(asset_hash(context, tmp_path / f"c{i}"))
    assert len(seen) == 5
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in seen)


# where each first-party package lives in the checkout (the image puts each under /opt/program/<package>/)
PACKAGES = {"textexplain": ROOT / "textexplain", "explain_workflow": ROOT / "lambda" / "explain_workflow",
            "fasttext_server": ROOT / "container" / "fasttext_server"}  # fmt: skip


def module_file(name: str) -> Path | None:
    package, _, rest = name.partition(".")
    if package not in PACKAGES:
        return None
    base = PACKAGES[package].joinpath(*rest.split(".")) if rest else PACKAGES[package]
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def first_party_imports(path: Path) -> set[str]:
    """Every first-party module ``path`` imports, function-level imports included (the job imports lazily)."""
    found = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):  # what `if TYPE_CHECKING:` imports is never imported at run time
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        found |= {n for n in names if (f := module_file(n)) is not None and f.is_file()}
    return found


def test_every_module_the_job_and_the_server_import_is_in_the_image():
    """A first-party import added to a module the job uses (dataset.py importing evaluation.py, say) must be copied
    too, or explain-job fails in the image with ModuleNotFoundError: the closure of the entry points' imports."""
    todo = [ROOT / "textexplain" / "job.py", ROOT / "container" / "fasttext_server" / "__main__.py"]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo += [module_file(name) for name in first_party_imports(path)]
        todo += [p / "__init__.py" for p in path.parents if (p / "__init__.py").is_file() and p != ROOT]
    in_context = {ROOT / p for p in context_files()}
    missing = sorted(p.relative_to(ROOT).as_posix() for p in seen - in_context)
    assert missing == [], f"add these to .dockerignore and container/Dockerfile: {missing}"

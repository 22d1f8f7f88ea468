"""The functions' shared layer, built from the very distributions the tests run with.

Each function's ``lambda/<fn>/requirements.txt`` pins what it needs beyond the standard library (Powertools with its
X-Ray SDK, pydantic, boto3). AWS's managed Powertools layer is published under version numbers of its own, which say
nothing checkable offline about the Powertools release inside. So the layer is made here: the installed files of the
pinned distributions and their dependencies, copied from this environment into ``python/``, and the synth fails if
an installed version is not the pinned one. What the tests import is what is deployed. boto3 and its dependencies
come with the Lambda runtime and are left out.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import shutil
import tempfile
from pathlib import Path

from aws_cdk import aws_lambda as lambda_
from constructs import Construct
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from infra.config import ROOT

LAMBDA_DIR = ROOT / "lambda"
# what the python3.11 runtime provides itself (boto3 and what it pulls in)
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "jmespath", "urllib3", "python-dateutil", "six"})


class LayerError(RuntimeError):
    """The environment does not hold the pinned distributions the layer is made of."""


def pinned_requirements(lambda_dir: Path = LAMBDA_DIR) -> list[Requirement]:
    found: dict[str, Requirement] = {}
    for path in sorted(lambda_dir.glob("*/requirements.txt")):
        for line in path.read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                requirement = Requirement(line)
                found.setdefault(f"{canonicalize_name(requirement.name)}{sorted(requirement.extras)}", requirement)
    return list(found.values())


def layer_distributions(
    requirements: list[Requirement], runtime_provided: frozenset[str] = RUNTIME_PROVIDED
) -> dict[str, metadata.Distribution]:
    """The installed distributions for ``requirements`` and their dependencies, minus what the runtime provides."""
    found: dict[str, metadata.Distribution] = {}
    seen: set[tuple[str, str]] = set()
    todo = [(r, "") for r in requirements]
    while todo:
        requirement, parent_extra = todo.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": parent_extra}):
            continue
        name = canonicalize_name(requirement.name)
        if name in runtime_provided:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise LayerError(f"{name} ({requirement}) is not installed: run `make test` to install the pins") from None
        if not requirement.specifier.contains(dist.version, prereleases=True):
            raise LayerError(f"{name} {dist.version} is installed, the functions pin {requirement}")
        tags = wheel_tags(dist)
        if not runs_on_lambda(tags):
            raise LayerError(
                f"{name} {dist.version} is installed as a build for {', '.join(tags)}; the functions run CPython 3.11 "
                "on Linux x86_64, so the layer would not import there: synthesize on Linux x86_64 (as CI does)"
            )
        found[name] = dist
        for extra in sorted(requirement.extras) or [""]:
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            todo.extend((Requirement(r), extra) for r in dist.requires or [])
    return dict(sorted(found.items()))


def wheel_tags(dist: metadata.Distribution) -> list[str]:
    """The wheel tags a distribution was installed from (``py3-none-any`` when it records none)."""
    lines = (dist.read_text("WHEEL") or "").splitlines()
    return [line.split(":", 1)[1].strip() for line in lines if line.startswith("Tag:")] or ["py3-none-any"]


# the python3.11 runtime is Amazon Linux 2: glibc 2.26
LAMBDA_GLIBC = (2, 26)
_LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


def runs_on_lambda(tags: list[str]) -> bool:
    """Whether a wheel with these tags imports on the functions' runtime: CPython 3.11, glibc 2.26, x86_64.

    The layer is copied from this environment, so a compiled extension built for another machine (macOS, arm64,
    musl, a newer glibc) would be deployed and fail at its first import.
    """
    for tag in tags:
        python, abi, platform = tag.split("-", 2)
        if platform == "any":
            return True
        if not (platform.endswith("_x86_64") and (python == "cp311" or abi == "abi3")):
            continue
        policy = platform.removesuffix("_x86_64")
        if policy in _LEGACY_MANYLINUX:
            glibc = _LEGACY_MANYLINUX[policy]
        elif policy.startswith("manylinux_"):
            major, minor = policy.removeprefix("manylinux_").split("_")
            glibc = (int(major), int(minor))
        else:  # linux_x86_64: built on this machine against its own glibc
            continue
        if glibc <= LAMBDA_GLIBC:
            return True
    return False


def _layer_files(dists: dict[str, metadata.Distribution]) -> list[tuple[str, Path]]:
    files = []
    for dist in dists.values():
        for file in dist.files or []:
            if file.parts[0] in ("..", "bin") or "__pycache__" in file.parts or file.suffix == ".pyc":
                continue
            source = Path(dist.locate_file(file))
            if source.is_file():
                files.append((file.as_posix(), source))
    return sorted(files)


def build_layer_directory(dists: dict[str, metadata.Distribution], parent: Path | None = None) -> Path:
    """``<dir>/python/<the distributions' files>``; the directory is named by a digest of its content."""
    files = _layer_files(dists)
    digest = hashlib.sha256()
    for relative, source in files:
        digest.update(relative.encode() + b"\0" + source.read_bytes() + b"\0")
    target = (parent or Path(tempfile.gettempdir())) / f"text-explanations-layer-{digest.hexdigest()[:16]}"
    if not target.is_dir():
        staging = Path(tempfile.mkdtemp(dir=target.parent))
        for relative, source in files:
            destination = staging / "python" / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)
        try:
            staging.rename(target)
        except OSError:  # another synth made the same directory meanwhile
            shutil.rmtree(staging, ignore_errors=True)
    return target


def dependencies_layer(scope: Construct, id: str) -> lambda_.LayerVersion:
    dists = layer_distributions(pinned_requirements())
    described = ", ".join(f"{d.metadata['Name']} {d.version}" for d in dists.values())
    return lambda_.LayerVersion(
        scope,
        id,
        code=lambda_.Code.from_asset(str(build_layer_directory(dists))),
        compatible_runtimes=[lambda_.Runtime.PYTHON_3_11],
        compatible_architectures=[lambda_.Architecture.X86_64],
        description=f"pinned: {described}"[:256],
    )

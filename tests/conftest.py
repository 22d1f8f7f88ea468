"""Session-wide fixtures shared by every test tier (a generated corpus and a real fastText model), and the tiers.

Every test gets exactly one tier marker, assigned here (``make test-<tier>`` selects one with ``-m``):
unit (in-process, no server, no subprocess), integration (real servers and subprocesses on 127.0.0.1),
infra (the synthesized CDK app), image (the real container image, podman), browser (headless Chromium).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.aws_calls import _calls_are_in_the_inventory, _record_aws_calls  # noqa: F401 (every test)
from textexplain import synthetic, training


@dataclass(frozen=True)
class TrainedModel:
    """A real fastText model trained in this session, laid out as SageMaker lays out /opt/ml/model."""

    model_dir: Path  # holds model.bin, as SageMaker extracts model.tar.gz
    model_file: Path
    tarball: Path
    labels: list[str]  # sorted label names, the order the server answers in
    model: object  # the in-process fasttext model, for comparisons


@pytest.fixture(scope="session")
def corpus() -> list[synthetic.Example]:
    return synthetic.generate(1400, seed=7)


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory, corpus) -> TrainedModel:
    root = tmp_path_factory.mktemp("model")
    model = training.train([(ex.label, ex.text) for ex in corpus])
    model_dir = root / "opt_ml_model"
    model_dir.mkdir()
    model_file = model_dir / "model.bin"
    model.save_model(str(model_file))
    tarball = training.package(model_file, root / "model.tar.gz")
    return TrainedModel(model_dir, model_file, tarball, sorted(training.model_labels(model)), model)


@pytest.fixture(scope="session")
def built_image() -> str:
    """The image built from container/ by scripts/image.sh (podman); skips where images cannot be built."""
    from tests.support import image

    built = image.build()
    if built is None:
        pytest.skip("container images cannot be built on this machine (run scripts/image.sh check to see why)")
    return built


TIERS = ("unit", "integration", "infra", "image", "browser")
# by directory under tests/ ...
DIRECTORY_TIERS = {
    "unit": "unit",
    "container": "integration",
    "local": "integration",
    "workflow": "integration",
    "packaging": "integration",
    "infra": "infra",
    "image": "image",
}
# ... unless the module needs another tier than its directory
MODULE_TIERS = {
    "container/test_codec.py": "unit",
    "container/test_image_requirements.py": "unit",
    "infra/test_iam_eval.py": "unit",
    "local/test_kernel_shap.py": "unit",
    "packaging/test_dependencies.py": "unit",
    "workflow/test_dataset.py": "unit",
    "workflow/test_report_browser.py": "browser",
}
TESTS = Path(__file__).resolve().parent


def tier_of(item: pytest.Item) -> str:
    explicit = [m.name for m in item.iter_markers() if m.name in TIERS]
    if explicit:
        if len(set(explicit)) != 1:
            raise pytest.UsageError(f"{item.nodeid}: more than one tier marker {sorted(set(explicit))}")
        return explicit[0]
    callspec = getattr(item, "callspec", None)
    if "built_image" in item.fixturenames or (callspec is not None and callspec.params.get("server") == "image"):
        return "image"  # the container's HTTP suite run against the image
    relative = Path(item.path).resolve().relative_to(TESTS).as_posix()
    tier = MODULE_TIERS.get(relative) or DIRECTORY_TIERS.get(relative.split("/")[0])
    if tier is None:
        raise pytest.UsageError(f"{item.nodeid}: no tier for {relative} (tests/conftest.py DIRECTORY_TIERS)")
    return tier


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = tier_of(item)
        if not item.get_closest_marker(tier):
            item.add_marker(getattr(pytest.mark, tier))

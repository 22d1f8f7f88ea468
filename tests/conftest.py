"""Session-wide fixtures shared by every test tier (a generated corpus, a real fastText model, the built image, one
local AWS API), and the tier marker each test gets (tests/support/tiers.py says which).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.aws_calls import _calls_are_in_the_inventory, _record_aws_calls  # noqa: F401 (every test)
from tests.support.tiers import tier_of
from textexplain import synthetic, training

CORPUS_SEED = 7


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
    return synthetic.generate(1400, seed=CORPUS_SEED)


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory, corpus) -> TrainedModel:
    from tests.support.models import train_in_fresh_process

    root = tmp_path_factory.mktemp("model")
    model_dir = root / "opt_ml_model"
    model_dir.mkdir()
    model_file = model_dir / "model.bin"
    model = train_in_fresh_process(model_file, len(corpus), CORPUS_SEED)  # the corpus fixture's own examples
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


@pytest.fixture(scope="session")
def moto_server_url() -> Iterator[str]:
    """The session's one local AWS API (moto's server, in its own process), started when a test first needs it."""
    from tests.support import s3

    with s3.moto_server() as url:
        yield url


@pytest.fixture
def moto_url(moto_server_url) -> str:
    """The local AWS API, emptied for this test: no bucket, stack, bus or configuration an earlier test made."""
    from tests.support import s3

    s3.reset(moto_server_url)
    return moto_server_url


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = tier_of(item)
        if not item.get_closest_marker(tier):
            item.add_marker(getattr(pytest.mark, tier))

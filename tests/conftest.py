"""Session-wide fixtures shared by every test tier: a generated corpus and a real fastText model."""

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

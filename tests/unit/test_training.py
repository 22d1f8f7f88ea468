import tarfile

import pytest

from fasttext_server.normalize import normalize
from textexplain import synthetic, training


def test_training_line_uses_the_shared_normalisation():
    assert training.training_line("NaturalPlace", "The River.\nFlows") == "__label__NaturalPlace the river . flows\n"


def test_label_with_space_is_rejected():
    with pytest.raises(ValueError, match="white space"):
        training.training_line("Natural Place", "x")


def test_trained_model_learns_the_cues(trained_model):
    assert trained_model.labels == sorted(synthetic.CLASSES)
    held_out = synthetic.generate(280, seed=99)
    labels, _ = trained_model.model.predict([normalize(e.text) for e in held_out], k=1)
    accuracy = sum(lab[0] == "__label__" + e.label for lab, e in zip(labels, held_out, strict=True)) / len(held_out)
    assert accuracy > 0.95


def test_package_holds_model_bin_at_the_root(trained_model):
    with tarfile.open(trained_model.tarball) as tar:
        assert tar.getnames() == ["model.bin"]

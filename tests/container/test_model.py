"""In-process checks of model loading and scoring against fastText's own predictions."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fasttext_server.model import Classifier, ModelError, find_model_file, normalize_batch, resolve_labels
from fasttext_server.normalize import normalize
from tests.support.models import train_in_fresh_process
from textexplain import synthetic


def reference_probs(ft_model, texts: list[str], labels: list[str]) -> np.ndarray:
    """fastText's own answer for each normalised text, one row at a time, arranged by ``labels``."""
    out = np.zeros((len(texts), len(labels)), dtype=np.float32)
    for i, text in enumerate(texts):
        row_labels, row_probs = ft_model.predict([normalize(text)], k=-1)
        for label, p in zip(row_labels[0], row_probs[0], strict=True):
            out[i, labels.index(label.removeprefix("__label__"))] = p
    return out


@given(st.lists(st.text(), max_size=20))
def test_batch_normalisation_equals_the_shared_function(texts):
    assert normalize_batch(texts) == [normalize(t) for t in texts]


def test_scores_equal_fasttext_in_any_label_order(trained_model):
    labels = list(reversed(trained_model.labels))
    classifier = Classifier(trained_model.model, labels)
    texts = [e.text for e in synthetic.generate(60, seed=11)] + ["", "<UNK> <UNK>", "unseen zzz words"]
    got = classifier.predict(texts)
    np.testing.assert_array_equal(got, reference_probs(trained_model.model, texts, labels))
    # fastText adds 1e-5 to every probability before its log; the vector sums to 1 within that
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=len(labels) * 1.1e-5)


def test_hierarchical_softmax_rows_with_omitted_labels_are_zero_filled(tmp_path):
    model = train_in_fresh_process(tmp_path / "model.bin", loss="hs", epoch=5)
    classifier = Classifier(model)
    texts = [e.text for e in synthetic.generate(30, seed=12)]
    np.testing.assert_array_equal(classifier.predict(texts), reference_probs(model, texts, classifier.labels))


def test_labels_default_to_sorted_and_must_match(trained_model):
    assert Classifier(trained_model.model).labels == sorted(trained_model.labels)
    with pytest.raises(ModelError) as info:
        resolve_labels(["Film", "Dinosaur"], ["Film", "Album"])
    assert "missing from LABELS ['Album']" in str(info.value)
    assert "not in the model ['Dinosaur']" in str(info.value)
    with pytest.raises(ModelError, match="duplicated"):
        resolve_labels(["Film", "Film", "Album"], ["Film", "Album"])


def test_model_file_discovery(tmp_path, trained_model):
    with pytest.raises(ModelError, match="does not exist"):
        find_model_file(tmp_path / "nope")
    with pytest.raises(ModelError, match="empty"):
        find_model_file(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ModelError, match=r"no fastText model .*notes\.txt"):
        find_model_file(tmp_path)
    shutil.copy(trained_model.model_file, tmp_path / "model.bin")
    assert find_model_file(tmp_path).name == "model.bin"
    shutil.copy(trained_model.model_file, tmp_path / "other.ftz")
    with pytest.raises(ModelError, match=r"more than one .*model\.bin.*other\.ftz"):
        find_model_file(tmp_path)


def test_quantized_ftz_model_is_served(tmp_path, trained_model):
    import fasttext

    model = fasttext.load_model(str(trained_model.model_file))  # a private copy to quantize
    model.quantize(input=None, retrain=False, cutoff=0, qnorm=True, qout=False, dsub=2)
    model.save_model(str(tmp_path / "model.ftz"))
    classifier = Classifier.load(tmp_path)
    texts = [e.text for e in synthetic.generate(10, seed=13)]
    np.testing.assert_array_equal(classifier.predict(texts), reference_probs(model, texts, classifier.labels))


def test_a_file_that_is_not_a_model_is_a_clear_error(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load"):
        Classifier.load(tmp_path)

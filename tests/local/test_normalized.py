"""Perturbed texts built in normal form equal the container's normalisation of the raw perturbed texts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fasttext_server.model import normalize_batch
from textexplain import synthetic
from textexplain.explainer import normalized
from textexplain.explainer.explain import Template
from textexplain.explainer.normalized import NormalizedTemplate
from textexplain.explainer.scorer import InProcessScorer
from textexplain.explainer.units import split_units

AWKWARD = [
    "Don't stop: 3.5 km/h, 1,000 people (approx.) -- e-mail me@x.org!!",
    "  leading and trailing  \t white\n\nspace  ",
    "<UNK> already <MASK> here; tabs\tand\x00control\x1fchars",
    "naïve Érable façade — “quoted” 'single' l'homme",
    "a",
    "",
]


def check(text: str, baseline: str, granularity: str, seed: int) -> bool:
    units = split_units(text, granularity)
    rng = np.random.default_rng(seed)
    masks = rng.random((64, len(units))) < 0.5
    template = NormalizedTemplate(text, units, baseline)
    if not template.usable:
        return False
    expected = normalize_batch(Template(text, units, baseline).texts(masks))
    assert template.texts(masks) == expected
    return True


def test_equal_on_awkward_and_generated_texts():
    texts = AWKWARD + [e.text for e in synthetic.generate(30, seed=3, paragraphs=(1, 2))]
    used = [
        check(text, baseline, granularity, i)
        for i, text in enumerate(texts)
        for baseline in ("<UNK>", "", "x y", "...", " ")
        for granularity in ("token", "sentence", "paragraph")
    ]
    assert all(used)  # no record here needs the raw-text fallback


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("ab1.,'’-<>UNK \t\n\x00é—")), max_size=40),
    st.sampled_from(["<UNK>", "", "u v", "-", "\t"]),
    st.integers(0, 1000),
)
def test_equal_on_random_texts(text, baseline, seed):
    check(text, baseline, "token", seed)


@pytest.mark.parametrize("bits", [1, 3, 10])
def test_equal_whatever_the_joined_column_width(monkeypatch, bits):
    # columns are joined up to MERGED_BITS units; one unit per column, and wider than any group, give the same texts
    monkeypatch.setattr(normalized, "MERGED_BITS", bits)
    texts = AWKWARD + [e.text for e in synthetic.generate(10, seed=11, paragraphs=(1, 2))]
    assert all(check(text, baseline, "token", i) for i, text in enumerate(texts) for baseline in ("<UNK>", "", "x y"))


def test_in_process_scoring_in_blocks_equals_one_classifier_call(trained_model):
    texts = [e.text for e in synthetic.generate(40, seed=8)] + ["", "<UNK> <UNK>"]
    scorer = InProcessScorer.load(trained_model.model_dir, trained_model.labels)
    whole = scorer.classifier.predict(texts)
    scorer.block_rows = 7  # 42 rows: 6 blocks
    np.testing.assert_array_equal(scorer.score(texts), whole)
    np.testing.assert_array_equal(scorer.score_normalized(normalize_batch(texts)), whole)
    assert scorer.score([]).shape == (0, len(trained_model.labels))

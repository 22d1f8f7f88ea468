"""Perturbed texts built in normal form equal the container's normalisation of the raw perturbed texts."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fasttext_server.model import normalize_batch
from textexplain import synthetic
from textexplain.explainer.explain import Template
from textexplain.explainer.normalized import NormalizedTemplate
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

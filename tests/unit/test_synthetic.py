import csv
from collections import Counter
from itertools import combinations

import pytest

from fasttext_server.normalize import tokenize
from textexplain import synthetic


def test_cue_vocabularies_are_disjoint():
    for a, b in combinations(synthetic.CLASSES, 2):
        assert not set(synthetic.CUES[a]) & set(synthetic.CUES[b]), (a, b)


def test_same_seed_same_corpus_other_seed_other_corpus():
    assert synthetic.generate(50, seed=3) == synthetic.generate(50, seed=3)
    assert synthetic.generate(50, seed=3) != synthetic.generate(50, seed=4)


def test_every_text_carries_a_cue_of_its_class_only():
    for ex in synthetic.generate(300, seed=1):
        tokens = set(tokenize(ex.text))
        assert tokens & set(synthetic.CUES[ex.label])
        others = set().union(*(set(c) for k, c in synthetic.CUES.items() if k != ex.label))
        assert not tokens & others, ex


def test_classes_are_balanced_and_restrictable():
    counts = Counter(ex.label for ex in synthetic.generate(140, seed=0))
    assert set(counts.values()) == {10}
    three = synthetic.generate(30, seed=0, classes=["NaturalPlace", "Film", "Animal"])
    assert {ex.label for ex in three} == {"NaturalPlace", "Film", "Animal"}


def test_unknown_class_is_rejected_by_name():
    with pytest.raises(ValueError, match="Dinosaur"):
        synthetic.generate(3, classes=["Dinosaur"])


def test_paragraphs_are_separated_by_blank_lines():
    ex = synthetic.generate(5, seed=2, paragraphs=(3, 3))[0]
    assert ex.text.count("\n\n") == 2


def test_write_csv_round_trips(tmp_path):
    examples = synthetic.generate(20, seed=5, paragraphs=(2, 2))
    path = synthetic.write_csv(tmp_path / "d.csv", examples)
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["label", "text"]
    assert [tuple(r) for r in rows[1:]] == [(e.label, e.text) for e in examples]

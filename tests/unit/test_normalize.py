import pytest
from hypothesis import given
from hypothesis import strategies as st

from fasttext_server.normalize import normalize, tokenize


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The River.", "the river ."),
        ("  Lots\tof\n\nspace  ", "lots of space"),
        ("Don't stop", "don't stop"),
        ("It cost 3.5 million, or 1,000 euros!", "it cost 3.5 million , or 1,000 euros !"),
        ('He said "yes"; she said (no).', 'he said " yes " ; she said ( no ) .'),
        ("<UNK> river <UNK>", "<UNK> river <UNK>"),
        ("a <UNK>, b", "a <UNK> , b"),
        ("Zürich ÉCOLE", "zürich école"),
        ("", ""),
        ("   \n  ", ""),
        ("end-to-end", "end - to - end"),
        ("a<b", "a < b"),
    ],
)
def test_normalize_examples(text, expected):
    assert normalize(text) == expected


def test_placeholder_is_one_token_and_keeps_its_case():
    assert tokenize("The <UNK> flows") == ["the", "<UNK>", "flows"]
    # only <letter...> is a placeholder: a lone "<" and "<1x>" are punctuation and words
    assert tokenize("a < b <Unk2> River <1x>") == ["a", "<", "b", "<Unk2>", "river", "<", "1x", ">"]


@given(st.text())
def test_normalize_is_idempotent_and_single_spaced(text):
    once = normalize(text)
    assert normalize(once) == once
    assert "  " not in once
    assert once == once.strip()
    assert "\n" not in once
    assert "\t" not in once


def test_control_characters_are_dropped():
    assert normalize("a\x00b\x07 c") == "a b c"

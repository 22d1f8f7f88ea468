"""The one text normalisation that training and serving share.

A model only sees what this function produces, so training (the local mode's ``train``) and the
inference server both call it; nothing else may tokenise texts for the model.

Rules:
- lower-case (``str.lower``: Unicode-aware, so "Érable" -> "érable");
- words are runs of letters/digits/underscore, keeping inner apostrophes ("don't") and decimal
  points or thousands separators inside numbers ("3.5", "1,000");
- every other visible character is a token of its own ("river." -> "river .");
- placeholders written as ``<WORD>`` (Clarify's baseline token, ``<UNK>`` by default) stay one
  token, verbatim, so a masked unit never turns into "< unk >";
- control characters (NUL, ...) are dropped like white space; newlines, tabs and runs of white
  space collapse to one space; the result has no leading or trailing space. An empty or blank
  text normalises to "".
"""

from __future__ import annotations

import re

# Order matters: placeholders first, then numbers (so "3.5" is not split), then words, then any
# other single non-space character.
_TOKEN = re.compile(
    r"""
    <[A-Za-z][A-Za-z0-9_]*>          # placeholder such as <UNK>, kept verbatim
  | \d+(?:[.,]\d+)+                  # number with decimal point / thousands separator
  | \w+(?:['’]\w+)*                  # word, inner apostrophes kept
  | [^\w\s\x00-\x1f\x7f]              # any other visible character, alone (control characters are dropped)
    """,
    re.VERBOSE,
)

PLACEHOLDER = re.compile(r"<[A-Za-z][A-Za-z0-9_]*>")  # a baseline token such as <UNK>, kept as written


def tokenize(text: str) -> list[str]:
    """Split ``text`` into model tokens (lower-cased, placeholders verbatim)."""
    return [tok if tok[0] == "<" and PLACEHOLDER.fullmatch(tok) else tok.lower() for tok in _TOKEN.findall(text)]


def normalize(text: str) -> str:
    """Return ``text`` as the model saw it in training: tokens joined by single spaces."""
    return " ".join(tokenize(text))

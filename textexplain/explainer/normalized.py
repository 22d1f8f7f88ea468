"""Perturbed texts built directly in the model's normal form, for in-process scoring.

The server normalises every text it gets (``fasttext_server.normalize``: per white-space chunk, then
joined by single spaces). A record's 1,000 perturbed texts share nearly all of their chunks, so
normalising each of them again costs as much as the model itself. Here the text is cut into groups
at its white space: a group is the units that touch with no white space between them (usually one
word, or a word and its punctuation) and the fixed text around them. Each variant of a group (which
of its units are masked) is normalised once with the container's own ``normalize``; a perturbed
text is the join of its groups' variants. Tokens never span white space, so this equals
``normalize_batch`` of the raw perturbed texts, string for string (tested).
"""

from __future__ import annotations

import functools

import numpy as np

from fasttext_server import normalize as _normalize
from textexplain.explainer.units import Span

# the same word, its punctuation and the baseline recur across records: normalise each spelling once
normalize = functools.lru_cache(maxsize=1 << 16)(_normalize.normalize)
MAX_UNITS_PER_GROUP = 10  # 2^10 variants; a record with a longer run of touching units uses raw texts
# units per joined column (2^5 variants each): fewer, longer pieces to join per text; measured in bench explain
MERGED_BITS = 5


@functools.lru_cache(maxsize=1 << 15)
def _variants(parts: tuple, baseline: str) -> np.ndarray:
    """Normalised text (plus a space, or "" when empty) of a group for each code of kept units (bit j: unit j).

    ``parts`` are fixed strings and 1-tuples holding a unit's text; the same word recurs across records."""
    slots = [i for i, p in enumerate(parts) if isinstance(p, tuple)]
    variants = np.empty(2 ** len(slots), dtype=object)
    for code in range(len(variants)):
        pieces = list(parts)
        for j, i in enumerate(slots):
            pieces[i] = parts[i][0] if (code >> j) & 1 else baseline
        normal = normalize("".join(pieces))
        variants[code] = normal + " " if normal else ""
    variants.flags.writeable = False  # shared between records through the cache
    return variants


def _split_gap(gap: str) -> tuple[str, str, str] | None:
    """(before the first white space, from it to the last white space, after it), or None without any."""
    spaces = [i for i, ch in enumerate(gap) if ch.isspace()]
    if not spaces:
        return None
    return gap[: spaces[0]], gap[spaces[0] : spaces[-1] + 1], gap[spaces[-1] + 1 :]


class NormalizedTemplate:
    """``texts(masks)``: the normalised perturbed texts of one record, or None if it cannot be cut in groups."""

    def __init__(self, text: str, units: list[Span], baseline: str):
        gaps = [
            text[a.end if a else 0 : b.start if b else len(text)]
            for a, b in zip([None, *units], [*units, None], strict=True)
        ]
        groups: list[list] = [[]]  # parts: str (fixed) or int (unit index)
        for i, gap in enumerate(gaps):
            split = _split_gap(gap)
            if split is None:
                groups[-1].append(gap)
            else:
                left, middle, right = split
                groups[-1].append(left)
                groups.append([middle])
                groups.append([right])
            if i < len(units):
                groups[-1].append(i)
        self.units = len(units)
        columns: list[tuple[list[int], np.ndarray]] = []  # (unit indices, normalised variants + " ")
        self.usable = True
        for parts in groups:
            members = [p for p in parts if isinstance(p, int)]
            if len(members) > MAX_UNITS_PER_GROUP:
                self.usable = False
                return
            spelled = tuple(p if isinstance(p, str) else (units[p].text,) for p in parts)
            variants = _variants(spelled, baseline)
            if members or variants[0]:
                columns.append((members, variants))
        self.columns = _merged(columns)
        # column c's code is the dot product of a row's mask with weights[:, c] (bit j of a column: its j-th unit)
        self.weights = np.zeros((len(units), len(self.columns)), dtype=np.intp)
        for c, (members, _) in enumerate(self.columns):
            self.weights[members, c] = 1 << np.arange(len(members), dtype=np.intp)

    def texts(self, masks: np.ndarray) -> list[str]:
        n = len(masks)
        if n == 0 or not self.columns:  # no columns: the text normalises to nothing
            return [""] * n
        codes = (masks.astype(np.intp) @ self.weights).T
        pieces = [variants[code].tolist() for (_, variants), code in zip(self.columns, codes, strict=True)]
        return [text[:-1] for text in map("".join, zip(*pieces, strict=True))]


def _merged(columns: list[tuple[list[int], np.ndarray]]) -> list[tuple[list[int], np.ndarray]]:
    """Neighbouring columns joined into one while it has at most MERGED_BITS units (its variants are the
    concatenations of theirs): a text is then the join of a few longer pieces, not one piece per word."""
    out: list[tuple[list[int], np.ndarray]] = []
    for members, variants in columns:
        if out and len(out[-1][0]) + len(members) <= MERGED_BITS:
            head, head_variants = out[-1]
            # code = head code | (this code << len(head)): row index this code, column index the head's
            joined = (head_variants[None, :] + variants[:, None]).ravel()
            out[-1] = (head + members, joined)
        else:
            out.append((list(members), variants))
    return out

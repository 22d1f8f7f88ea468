"""Split a text into the units Clarify explains (tokens, sentences or paragraphs) and mask them.

Tokens and sentences come from spaCy's blank pipelines (a tokenizer and the rule-based sentencizer
ship with spaCy for every supported language: no model download). Each unit keeps its character
offset into the original text, which is Clarify's ``start_idx``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from explain_workflow.languages import language_code

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n\s*")


@dataclass(frozen=True)
class Span:
    text: str
    start: int

    @property
    def end(self) -> int:
        return self.start + len(self.text)


@functools.cache
def _pipeline(code: str, sentences: bool):
    import spacy

    nlp = spacy.blank(code)
    if sentences:
        nlp.add_pipe("sentencizer")
    return nlp


def _stripped(text: str, start: int) -> Span | None:
    lead = len(text) - len(text.lstrip())
    body = text.strip()
    return Span(body, start + lead) if body else None


def split_units(text: str, granularity: str = "token", language: str = "english") -> list[Span]:
    if granularity == "paragraph":
        spans, cursor = [], 0
        for brk in _PARAGRAPH_BREAK.finditer(text):
            spans.append(_stripped(text[cursor : brk.start()], cursor))
            cursor = brk.end()
        spans.append(_stripped(text[cursor:], cursor))
        return [s for s in spans if s is not None]
    code = language_code(language)
    if granularity == "sentence":
        doc = _pipeline(code, True)(text)
        return [s for s in (_stripped(sent.text, sent.start_char) for sent in doc.sents) if s is not None]
    if granularity == "token":
        return [Span(tok.text, tok.idx) for tok in _pipeline(code, False)(text) if not tok.is_space]
    raise ValueError(f"granularity {granularity!r} is not one of token, sentence, paragraph")


def mask(text: str, units: Sequence[Span], keep: Sequence[bool], baseline: str) -> str:
    """``text`` with every unit whose ``keep`` is False replaced by ``baseline`` (text between units kept)."""
    parts, cursor = [], 0
    for unit, kept in zip(units, keep, strict=True):
        parts.append(text[cursor : unit.start])
        parts.append(unit.text if kept else baseline)
        cursor = unit.end
    parts.append(text[cursor:])
    return "".join(parts)

"""Deterministic labelled synthetic text for tests, the demo and benchmarks.

Each class owns a small vocabulary of cue words that no other class uses ("river" belongs to
NaturalPlace, "guitar" to Artist, ...). Texts mix a few cue words of their class into neutral
filler sentences, so a model learns the cues and a faithful explanation must point at them. The
class names follow the 14 DBpedia classes that the AWS BlazingText sample used, so texts look
like short encyclopedia abstracts.

Everything is drawn from ``random.Random(seed)``: the same arguments give the same corpus on every
machine and Python version.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# Cue words per class. Disjoint across classes (checked by a test).
CUES: dict[str, tuple[str, ...]] = {
    "Company": ("company", "shares", "revenue", "headquartered", "founded", "subsidiary", "merger", "ceo"),
    "EducationalInstitution": ("university", "college", "students", "campus", "faculty", "degree", "school"),
    "Artist": ("singer", "guitar", "painter", "songwriter", "musician", "vocalist", "gallery"),
    "Athlete": ("footballer", "striker", "olympic", "medal", "goalkeeper", "championship", "sprinter"),
    "OfficeHolder": ("politician", "senator", "minister", "elected", "parliament", "governor", "mayor"),
    "MeanOfTransportation": ("locomotive", "aircraft", "ship", "engine", "frigate", "railway", "sedan"),
    "Building": ("building", "tower", "cathedral", "storey", "architect", "castle", "mansion"),
    "NaturalPlace": ("river", "mountain", "lake", "glacier", "valley", "waterfall", "summit"),
    "Village": ("village", "hamlet", "parish", "municipality", "census", "inhabitants", "rural"),
    "Animal": ("species", "moth", "beetle", "snail", "genus", "habitat", "predator"),
    "Plant": ("flowering", "shrub", "leaves", "orchid", "perennial", "seeds", "botanical"),
    "Album": ("album", "studio", "tracks", "recorded", "chart", "label", "remastered"),
    "Film": ("film", "directed", "starring", "screenplay", "cinema", "documentary", "premiered"),
    "WrittenWork": ("novel", "book", "author", "published", "magazine", "poems", "chapters"),
}

CLASSES: tuple[str, ...] = tuple(CUES)

# Neutral words every class uses, so a model cannot rely on them.
_FILLER_NOUNS = ("area", "history", "period", "region", "name", "people", "year", "part", "example", "time")
_FILLER_ADJ = ("small", "large", "old", "new", "famous", "local", "northern", "southern", "early", "late")
_PLACES = ("Ontario", "Bavaria", "Kerala", "Patagonia", "Zürich", "Lyon", "Hokkaido", "Galicia")
_TEMPLATES = (
    "The {cue} is a {adj} {cue2} in {place}.",
    "It is known for its {cue} and the {adj} {noun}.",
    "In {year}, the {cue} was described as {adj}, with {cue2} nearby.",
    'Critics called the {cue} "{adj}"; the {noun} remains {adj2}.',
    "The {noun} of the {cue} dates from {year}.",
    "Its {cue2}, {cue}, and {noun} are often mentioned together.",
    "Many {noun}s visit the {cue} every {noun2}.",
)


@dataclass(frozen=True)
class Example:
    """One labelled text."""

    label: str
    text: str


def _sentence(rng: random.Random, cues: Sequence[str]) -> str:
    template = rng.choice(_TEMPLATES)
    return template.format(
        cue=rng.choice(cues),
        cue2=rng.choice(cues),
        adj=rng.choice(_FILLER_ADJ),
        adj2=rng.choice(_FILLER_ADJ),
        noun=rng.choice(_FILLER_NOUNS),
        noun2=rng.choice(_FILLER_NOUNS),
        place=rng.choice(_PLACES),
        year=rng.randint(1800, 2020),
    )


def make_text(rng: random.Random, label: str, sentences: int = 3, paragraphs: int = 1) -> str:
    """A text of class ``label``: ``paragraphs`` blocks separated by a blank line."""
    cues = CUES[label]
    blocks = [" ".join(_sentence(rng, cues) for _ in range(sentences)) for _ in range(paragraphs)]
    return "\n\n".join(blocks)


def generate(
    n: int,
    seed: int = 0,
    classes: Sequence[str] | None = None,
    sentences: tuple[int, int] = (2, 4),
    paragraphs: tuple[int, int] = (1, 1),
) -> list[Example]:
    """``n`` examples, classes taken round-robin then shuffled, deterministic by ``seed``."""
    chosen = tuple(classes) if classes is not None else CLASSES
    unknown = [c for c in chosen if c not in CUES]
    if unknown:
        raise ValueError(f"unknown classes {unknown}; known: {list(CLASSES)}")
    if not chosen:
        raise ValueError("at least one class is needed")
    rng = random.Random(seed)
    examples = [
        Example(
            chosen[i % len(chosen)],
            make_text(
                rng,
                chosen[i % len(chosen)],
                sentences=rng.randint(*sentences),
                paragraphs=rng.randint(*paragraphs),
            ),
        )
        for i in range(n)
    ]
    rng.shuffle(examples)
    return examples


def write_csv(path: str | Path, examples: Iterable[Example], header: tuple[str, str] = ("label", "text")) -> Path:
    """Write examples as an RFC 4180 CSV with a header row (UTF-8, quoted where needed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for ex in examples:
            writer.writerow((ex.label, ex.text))
    return path

"""CSV validation and the frozen dataset: pure, over in-memory streams."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from explain_workflow.contract import Limits
from explain_workflow.dataset import InputValidationError, first_invalid_utf8_byte, freeze, read_frozen
from tests.support.data import csv_rows

LIMITS = Limits(max_rows=100, max_text_chars=200, max_object_bytes=10_000)


def frozen(data: bytes, column="text", limits=LIMITS):
    out = io.BytesIO()
    summary = freeze(io.BytesIO(data), out, column, limits)
    out.seek(0)
    return summary, list(read_frozen(out))


def rejected(data: bytes, column="text", limits=LIMITS) -> InputValidationError:
    with pytest.raises(InputValidationError) as info:
        frozen(data, column, limits)
    return info.value


def test_freezes_the_text_column_with_row_ids():
    data = b'id,text,label\n1,"A river, wide.",x\n2,"multi\nline ""quoted""",y\n'
    summary, rows = frozen(data)
    assert rows == [(1, "A river, wide."), (2, 'multi\nline "quoted"')]
    assert summary.rows == 2
    assert summary.bytes == len(data)


def test_column_by_index_and_bom():
    _, rows = frozen("\ufeffa,b\nx,the text\n".encode(), column="1")
    assert rows == [(1, "the text")]


@pytest.mark.parametrize(
    ("data", "column", "reason", "where"),
    [
        (b"", "text", "the file is empty", {}),
        (b"text\n", "text", "no data rows", {"row": 1}),
        (b"body\nx\n", "text", "no column named 'text'", {"row": 0}),
        (b"text\nx\n", "3", "index 3 is out of range", {"row": 0}),
        (b"text,text\nx,y\n", "text", "more than once", {"row": 0}),
        (b"text,b\nx,1\ny\n", "text", "1 fields where the header has 2", {"row": 2, "line": 3}),
        (b'text\n"x"y\n', "text", "malformed CSV", {"line": 2}),
        (b"text\nok\n  \n", "text", "the text is empty", {"row": 2, "line": 3}),
        (b"text\n" + b"x" * 201 + b"\n", "text", "201 characters", {"row": 1, "line": 2}),
    ],
)
def test_every_bad_input_names_what_and_where(data, column, reason, where):
    error = rejected(data, column)
    assert reason in error.reason
    assert error.where == where


def test_row_limit():
    data = "text\n" + "a\n" * 3
    error = rejected(data.encode(), limits=Limits(max_rows=2))
    assert "more than 2 data rows" in error.reason
    assert error.where["row"] == 3


def test_non_utf8_is_rejected_and_located():
    data = b"text\nok\ncaf" + b"\xe9\n"
    assert "not valid UTF-8" in rejected(data).reason
    assert first_invalid_utf8_byte(io.BytesIO(data)) == data.index(b"\xe9")


def test_invalid_utf8_offset_across_chunk_edges():
    good = ("é" * 40000).encode()  # 80,000 bytes: chunks of 65,536 cut a character in two
    assert first_invalid_utf8_byte(io.BytesIO(good)) is None
    assert first_invalid_utf8_byte(io.BytesIO(good + b"\xff")) == len(good)
    assert first_invalid_utf8_byte(io.BytesIO(good + "é".encode()[:1])) == len(good)


texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1).filter(
    lambda t: t.strip()
)


@given(st.lists(texts, min_size=1, max_size=20))
def test_any_valid_csv_round_trips_through_the_frozen_dataset(values):
    summary, rows = frozen(
        csv_rows(["label", "text"], (["L", v] for v in values)), limits=Limits(max_rows=100, max_text_chars=10_000)
    )
    assert rows == list(enumerate(values, start=1))
    assert summary.rows == len(values)

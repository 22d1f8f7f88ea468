"""Pure request/response codec: every accepted shape and every rejection, with where it happened."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fasttext_server.codec import (
    JSON,
    JSONLINES,
    Bounds,
    RequestError,
    ResponseEncoder,
    choose_accept,
    decode_request,
    encode_csv_batch,
    parse_media_type,
)
from tests.support.wire import decode_jsonlines_response

# Texts a client can send: any Unicode except lone surrogates (not encodable as UTF-8).
texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)))


def rejects(status: int, error: str, body: bytes, content_type: str = "text/csv") -> RequestError:
    with pytest.raises(RequestError) as info:
        decode_request(body, content_type)
    assert (info.value.status, info.value.error) == (status, error), info.value
    return info.value


def test_media_type_parsing_is_case_and_space_insensitive():
    assert parse_media_type(' Text/CSV ; Charset="UTF-8"') == ("text/csv", {"charset": "utf-8"})
    assert parse_media_type(None) == ("", {})


@pytest.mark.parametrize("content_type", ["text/csv", "text/csv; charset=utf-8", "TEXT/CSV;charset=UTF8"])
def test_csv_with_or_without_charset(content_type):
    assert decode_request(b'"a river"\n"b"\n', content_type) == ["a river", "b"]


def test_csv_clarify_shapes():
    body = (
        '"plain"\n'
        '"with, comma"\n'
        '"with ""quotes"""\n'
        '"quoted\nnewline"\n'
        '""\n'
        "\n"
        '"<UNK> river <UNK>"\n'
        "unquoted text\r\n"
        '"Zürich ☃ 東京"\n'
    ).encode()
    assert decode_request(body, "text/csv") == [
        "plain",
        "with, comma",
        'with "quotes"',
        "quoted\nnewline",
        "",
        "",
        "<UNK> river <UNK>",
        "unquoted text",
        "Zürich ☃ 東京",
    ]


def test_csv_byte_order_mark_is_not_part_of_the_text():
    assert decode_request('\ufeff"x"\n'.encode(), "text/csv") == ["x"]


def test_csv_more_than_one_column_names_the_record():
    error = rejects(400, "too_many_columns", b'"ok"\n"fine"\nnot,ok\n')
    assert "record 3" in error.detail
    assert "2 columns" in error.detail


def test_csv_malformed_quoting_names_the_record():
    error = rejects(400, "malformed_csv", b'"ok"\n"bad"quote\n')
    assert "record 2" in error.detail


def test_csv_nul_byte_is_part_of_the_text():
    assert decode_request(b'"a\x00b"\n', "text/csv") == ["a\x00b"]


def test_non_utf8_names_the_byte_offset():
    error = rejects(400, "invalid_encoding", b'"caf\xe9"\n')
    assert "byte offset 4" in error.detail


def test_empty_body():
    rejects(400, "empty_body", b"")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-npy", "", None])
def test_unsupported_content_type(content_type):
    rejects(415, "unsupported_content_type", b"x", content_type)


def test_unsupported_charset():
    rejects(415, "unsupported_charset", b"x", "text/csv; charset=latin-1")


def test_jsonlines_strings_and_objects():
    body = b'"one"\n{"text": "two"}\n"\\u00e9"\n'
    assert decode_request(body, JSONLINES) == ["one", "two", "é"]


def test_jsonlines_bad_line_is_named():
    error = rejects(400, "malformed_jsonlines", b'"one"\n{oops\n', JSONLINES)
    assert "line 2" in error.detail
    rejects(400, "invalid_record", b'"one"\n{"txt": 1}\n', JSONLINES)


def test_json_instances_blazingtext_shape():
    body = json.dumps({"instances": ["a", {"text": "b"}], "configuration": {"k": 2}}).encode()
    assert decode_request(body, JSON) == ["a", "b"]
    rejects(400, "malformed_json", b'["a"]', JSON)
    rejects(400, "malformed_json", b"{", JSON)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, JSONLINES),
        ("*/*", JSONLINES),
        ("application/jsonlines", JSONLINES),
        ("application/json", JSON),
        ("text/html, application/json;q=0.9", JSON),
    ],
)
def test_accept_negotiation(header, expected):
    assert choose_accept(header) == expected


def test_unsupported_accept_is_406():
    with pytest.raises(RequestError) as info:
        choose_accept("text/html")
    assert info.value.status == 406


def test_encoder_writes_one_line_per_row_in_label_order():
    labels = ["b", "a", 'quote"d']
    probs = np.array([[0.1, 0.7, 0.2], [0.05, 0.05, 0.9]], dtype=np.float32)
    records = decode_jsonlines_response(ResponseEncoder(labels).encode(probs))
    assert [r["label"] for r in records] == ["a", 'quote"d']
    np.testing.assert_array_equal(np.array([r["prob"] for r in records], dtype=np.float32), probs)


def test_encoder_json_and_empty():
    encoder = ResponseEncoder(["x", "y"])
    body = json.loads(encoder.encode(np.array([[0.25, 0.75]], dtype=np.float32), JSON))
    assert body == {"predictions": [{"label": "y", "prob": [0.25, 0.75]}]}
    assert encoder.encode(np.zeros((0, 2), dtype=np.float32)) == b""


def test_error_body_is_json():
    assert json.loads(RequestError(400, "x", "y").body()) == {"error": "x", "detail": "y"}


@given(st.lists(texts, min_size=1, max_size=30))
def test_any_texts_encoded_as_clarify_csv_decode_back_exactly(batch):
    assert decode_request(encode_csv_batch(batch), "text/csv") == batch


@given(st.lists(texts, min_size=1, max_size=20), st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_any_batch_csv_writer_writes_is_read_back_record_for_record(batch, terminator, quote_all):
    import csv
    import io

    from fasttext_server.normalize import normalize

    out = io.StringIO()
    quoting = csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL
    csv.writer(out, quoting=quoting, lineterminator=terminator).writerows([t] for t in batch)
    decoded = decode_request(out.getvalue().encode(), "text/csv", Bounds(max_text_chars=10**6))
    assert len(decoded) == len(batch)
    # a CR right before the line end is read as part of it: the model sees the same text either way
    assert [normalize(t) for t in decoded] == [normalize(t) for t in batch]

"""One text-size limit from prepare down to the container's csv parser; csv's own field limit never decides."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from explain_workflow.contract import Limits
from explain_workflow.dataset import InputValidationError, freeze
from fasttext_server.codec import Bounds, RequestError, decode_request, encode_csv_batch
from fasttext_server.config import ServerConfig

ROOT = Path(__file__).resolve().parents[2]


def test_container_and_prepare_share_one_default_text_limit():
    assert ServerConfig.from_env({}).max_text_chars == Limits().max_text_chars == ServerConfig.max_text_chars
    assert ServerConfig.from_env({"MAX_TEXT_CHARS": "20000"}).max_text_chars == 20000


def test_a_long_column_that_is_not_explained_never_fails_a_valid_file():
    # In a fresh interpreter with only prepare's module loaded: csv's process-wide limit is whatever it sets.
    script = textwrap.dedent(
        """
        import csv, io
        from explain_workflow.dataset import freeze
        from explain_workflow.contract import Limits
        notes = "n" * 300_000
        data = io.StringIO()
        csv.writer(data).writerows([["id", "notes", "text"], ["1", notes, "a river"], ["2", "short", "a film"]])
        out = io.BytesIO()
        summary = freeze(io.BytesIO(data.getvalue().encode()), out, "text", Limits())
        print(summary.rows, out.getvalue().decode().splitlines())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, env={"PYTHONPATH": "lambda"}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == """2 ['"1","a river"', '"2","a film"']"""


def test_the_limit_prepare_admits_is_the_limit_the_container_admits():
    limit = Limits().max_text_chars
    admitted = ("ab " * limit)[:limit]
    out = io.BytesIO()
    freeze(io.BytesIO(b"text\n" + encode_csv_batch([admitted])), out, "text", Limits())
    bounds = Bounds(max_text_chars=limit)
    assert decode_request(encode_csv_batch([admitted]), "text/csv", bounds) == [admitted]
    # every variant Clarify makes of it (units replaced by the baseline) is admitted, though longer
    masked = " ".join("<UNK>" for _ in admitted.split())
    assert len(masked) > limit
    assert decode_request(encode_csv_batch([masked]), "text/csv", bounds) == [masked]
    over = admitted + "x"
    with pytest.raises(InputValidationError, match=r"\(limits\.max_text_chars\)"):
        freeze(io.BytesIO(b"text\n" + encode_csv_batch([over])), io.BytesIO(), "text", Limits())
    for kind, body in [("text/csv", encode_csv_batch([over])), ("application/jsonlines", f'"{over}"\n'.encode())]:
        with pytest.raises(RequestError) as info:
            decode_request(body, kind, bounds)
        assert (info.value.status, info.value.error) == (413, "text_too_long")
        assert "MAX_TEXT_CHARS" in info.value.detail

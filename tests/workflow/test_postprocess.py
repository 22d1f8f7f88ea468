"""postprocess on known attributions: exact results, and every malformed-output class fails loudly."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from explain_workflow.clarify_format import ClarifyOutputError, LocalExplanation, Unit, local_line, parse_local_line
from explain_workflow.postprocess import postprocess_run, record_line, record_of
from explain_workflow.runs import read_manifest
from explain_workflow.storage import read_bytes
from tests.workflow.conftest import LABELS, TEXTS, write_clarify_output


def records(storage, layout):
    body = read_bytes(storage, layout.bucket, layout.results_prefix + "records.jsonl").decode()
    return [json.loads(line) for line in body.splitlines()]


@pytest.mark.parametrize("split", [None, 1])
def test_results_follow_from_the_attributions(storage, settings, prepared, split):
    layout, run = prepared
    write_clarify_output(storage, layout, run, split)
    answer = postprocess_run(storage, layout.run_id, settings)
    assert answer["status"] == "SUCCEEDED"
    assert answer["records"] == 3
    got = records(storage, layout)
    assert [r["text"] for r in got] == TEXTS
    for record, explanation in zip(got, run.explanations, strict=True):
        expected = np.array(run.expected_values) + np.array([u.attribution for u in explanation.units]).sum(axis=0)
        assert record["probabilities"] == pytest.approx(dict(zip(LABELS, expected, strict=True)), abs=1e-6)
        assert record["predicted_label"] == LABELS[int(expected.argmax())]
        assert all(u["aligned"] for u in record["units"])
        assert record["units"][0]["attributions"] == list(explanation.units[0].attribution)
    classes = json.loads(read_bytes(storage, layout.bucket, layout.results_prefix + "classes.json"))
    assert set(classes) == set(LABELS)
    totals = {}
    for explanation in run.explanations:
        for unit in explanation.units:
            totals[unit.text.lower()] = totals.get(unit.text.lower(), 0.0) + unit.attribution[0]
    best = max(totals, key=totals.get)
    assert classes[LABELS[0]]["top_positive_tokens"][0]["token"] == best
    manifest = read_manifest(storage, layout)
    assert manifest["status"] == "SUCCEEDED"
    assert manifest["counts"]["rows"] == 3
    assert manifest["digests"]["input_sha256"]


def test_rerun_after_success_changes_nothing(storage, settings, prepared):
    layout, run = prepared
    write_clarify_output(storage, layout, run)
    postprocess_run(storage, layout.run_id, settings)
    before = read_bytes(storage, layout.bucket, layout.manifest_key)
    postprocess_run(storage, layout.run_id, settings)
    assert read_bytes(storage, layout.bucket, layout.manifest_key) == before


def corrupt(storage, layout, run, mutate) -> str:
    write_clarify_output(storage, layout, run)
    key = layout.clarify_prefix + "explanations_shap/out.jsonl"
    storage.put(layout.bucket, key, mutate(read_bytes(storage, layout.bucket, key)), "x")
    return key


@pytest.mark.parametrize(
    ("mutate", "reason", "line"),
    [
        (lambda b: b[: len(b) - 40], "malformed or truncated JSON", 3),
        (lambda b: b"".join(b.splitlines(keepends=True)[:2]), "ends after 2 lines", 3),
        (lambda b: b + b.splitlines(keepends=True)[0], "more lines than the 3 input rows", 4),
        (lambda b: b.replace(b'"attribution": [', b'"attribution": [0.5, ', 1), "has 4 values but there are 3", 1),
        (lambda b: b.replace(b'"join_source_value": 2', b'"join_source_value": 9'), "join_source_value 9", 2),
        (lambda b: b.replace(b"\n", b"\n\n", 1), "empty line", 2),
    ],
)
def test_bad_clarify_output_fails_with_the_line(storage, settings, prepared, mutate, reason, line):
    layout, run = prepared
    corrupt(storage, layout, run, mutate)
    with pytest.raises(ClarifyOutputError) as info:
        postprocess_run(storage, layout.run_id, settings)
    assert reason in info.value.reason
    assert info.value.where == {"line": line}
    manifest = read_manifest(storage, layout)
    assert manifest["status"] == "FAILED"
    assert reason in manifest["reason"]
    assert not storage.list(layout.bucket, layout.results_prefix)  # nothing half-written


def test_missing_analysis_or_output(storage, settings, prepared):
    layout, _ = prepared
    with pytest.raises(ClarifyOutputError, match=r"no analysis\.json"):
        postprocess_run(storage, layout.run_id, settings)
    assert read_manifest(storage, layout)["status"] == "FAILED"


def test_units_not_at_their_start_idx_are_counted(storage, settings, prepared):
    layout, run = prepared
    shifted = LocalExplanation(
        tuple(Unit(u.text, u.start_idx + 1, u.attribution) for u in run.explanations[0].units), 1
    )
    run.explanations[0] = shifted
    write_clarify_output(storage, layout, run)
    postprocess_run(storage, layout.run_id, settings)
    manifest = read_manifest(storage, layout)
    assert manifest["counts"]["misaligned_units"] == len(shifted.units)


@hsettings(max_examples=50)
@given(
    st.lists(
        st.tuples(st.text(min_size=1, max_size=5), st.lists(st.floats(-1, 1), min_size=3, max_size=3)),
        max_size=12,
    ),
    st.lists(st.floats(0, 1), min_size=3, max_size=3),
)
def test_additivity_and_line_round_trip(units, base):
    explanation = LocalExplanation(tuple(Unit(t, 0, tuple(a)) for t, a in units), 1)
    parsed = parse_local_line(local_line(explanation), 1, 3)
    assert parsed == explanation
    record = record_of(1, "x", parsed, LABELS, base)
    expected = np.array(base) + (np.array([a for _, a in units]).sum(axis=0) if units else 0)
    assert list(record["probabilities"].values()) == pytest.approx(expected.round(6).tolist(), abs=1e-9)


@hsettings(max_examples=100)
@given(
    st.lists(
        st.tuples(
            st.text(max_size=8) | st.sampled_from(['"attribution": [', "]", '\\"attribution\\": [1]', "<UNK>"]),
            st.integers(0, 50),
            st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=3, max_size=3),
        ),
        max_size=10,
    ),
    st.text(max_size=30),
)
def test_records_line_copies_clarify_arrays_and_equals_json_dumps(units, text):
    """The fast encoder's line parses to exactly what json.dumps would have written, for any unit texts."""
    explanation = LocalExplanation(tuple(Unit(t, s, tuple(a)) for t, s, a in units), 1)
    parsed = parse_local_line(local_line(explanation), 1, 3)
    assert len(parsed.raw_attributions) == len(units)  # the copy path, not the fallback
    record = record_of(1, text, parsed, LABELS, [0.1, 0.2, 0.7])
    misaligned = sum(not u["aligned"] for u in record["units"])
    for explanation in (parsed, LocalExplanation(parsed.units, 1)):  # copied arrays, then the json.dumps fallback
        line, predicted, unaligned = record_line(1, text, explanation, LABELS, [0.1, 0.2, 0.7])
        assert json.loads(line) == json.loads(json.dumps(record))
        assert (predicted, unaligned) == (record["predicted_label"], misaligned)


@pytest.mark.parametrize(
    "edit",
    [
        lambda line: line.replace('"join_source_value"', '"attribution": [9, 9, 9], "join_source_value"'),
        lambda line: line.replace('"river"', '"river\\"attribution"'),  # the quoted key inside a string
    ],
)
def test_an_unmatched_attribution_key_falls_back_to_reencoding(edit):
    line = edit(local_line(LocalExplanation((Unit("river", 0, (0.1, 0.2, 0.3)),), 1)))
    parsed = parse_local_line(line, 1, 3)
    assert parsed.raw_attributions == ()
    line, _, _ = record_line(1, "river", parsed, LABELS, [0.0, 0.0, 0.0])
    assert json.loads(line)["units"][0]["attributions"] == [0.1, 0.2, 0.3]


@pytest.mark.parametrize("value", ['"0.1"', "null", "[0.1]", "{}"])
def test_an_attribution_value_that_is_not_a_number_is_rejected(value):
    line = local_line(LocalExplanation((Unit("river", 0, (0.1, 0.2, 0.3)),), 1)).replace("0.2", value)
    with pytest.raises(ClarifyOutputError, match="not a number"):
        parse_local_line(line, 7, 3)

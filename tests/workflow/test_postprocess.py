"""postprocess on known attributions and known model answers: exact results, and every malformed output fails
cleanly (a FAILED manifest naming the file and the line, never a crash)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from explain_workflow.clarify_format import (
    ClarifyOutputError,
    LocalExplanation,
    Unit,
    join_row_id,
    local_line,
    parse_local_line,
)
from explain_workflow.contract import RunRequest
from explain_workflow.postprocess import TokenStats, min_support, postprocess_run, record_line, record_of
from explain_workflow.prepare import prepare_run
from explain_workflow.runs import RunLayout, read_manifest
from explain_workflow.storage import read_bytes
from tests.support.clarify_output import known_run, write_clarify_output, write_predictions
from tests.support.data import LABELS, TEXTS, csv_bytes

OUT = "explanations_shap/out.jsonl"


def records(storage, layout):
    body = read_bytes(storage, layout.bucket, layout.results_prefix + "records.jsonl").decode()
    return [json.loads(line) for line in body.splitlines()]


def report_data(storage, layout):
    from explain_workflow.report import data_of

    return data_of(read_bytes(storage, layout.bucket, layout.results_prefix + "report.html").decode())


def classes_of(storage, layout):
    return json.loads(read_bytes(storage, layout.bucket, layout.results_prefix + "classes.json"))


@pytest.mark.parametrize("split", [None, 1])
def test_records_carry_the_models_own_predictions(storage, settings, prepared, split):
    """Old main published expected value + Σφ as "probabilities" (values outside [0, 1], wrong top class)."""
    layout, run = prepared
    write_clarify_output(storage, layout, run, split)
    answer = postprocess_run(storage, layout.run_id, settings)
    assert answer.status == "SUCCEEDED"
    assert answer.complete is True
    assert answer.records == 3
    got = records(storage, layout)
    from tests.support.clarify_output import model_probabilities

    model = model_probabilities(run)
    assert [r["text"] for r in got] == TEXTS
    gaps = []
    for record, explanation, probs in zip(got, run.explanations, model, strict=True):
        assert record["probabilities"] == dict(zip(LABELS, probs, strict=True))  # exactly the model's values
        assert record["predicted_label"] == LABELS[int(np.argmax(probs))]
        assert record["prediction_missing"] is False
        assert all(u["aligned"] for u in record["units"])
        assert record["units"][0]["attributions"] == list(explanation.units[0].attribution)
        rebuilt = np.array(run.expected_values) + np.array([u.attribution for u in explanation.units]).sum(axis=0)
        gaps.append(float(np.abs(rebuilt - np.array(probs)).max()))
    manifest = read_manifest(storage, layout)
    assert manifest["status"] == "SUCCEEDED"
    assert manifest["complete"] is True
    assert manifest["counts"]["rows"] == 3
    assert manifest["counts"]["predictions_missing"] == 0
    assert manifest["digests"]["input_sha256"]
    gap = manifest["quality"]["additivity_gap"]
    assert gap["definition"].startswith("derived")
    assert gap["max"] == pytest.approx(max(gaps), abs=1e-12)
    assert gap["mean"] == pytest.approx(sum(gaps) / 3, abs=1e-12)
    assert gap["p95"] == pytest.approx(max(gaps), abs=1e-12)
    assert manifest["identity"]["input"]["key"] == "incoming/sample.csv"
    assert manifest["identity"]["model"]
    data = report_data(storage, layout)
    assert [r["q"] for r in data["records"]] == [[round(p * 10_000) for p in probs] for probs in model]
    assert [r["p"] for r in data["records"]] == [int(np.argmax(probs)) for probs in model]


def test_predictions_in_any_order_are_joined_by_row_id(storage, settings, prepared):
    layout, run = prepared
    write_clarify_output(storage, layout, run)
    probs = write_predictions(storage, layout, run, order=[2, 0, 1])
    postprocess_run(storage, layout.run_id, settings)
    assert [list(r["probabilities"].values()) for r in records(storage, layout)] == probs


def test_missing_predictions_are_said_to_be_missing(storage, settings, prepared):
    layout, run = prepared
    write_clarify_output(storage, layout, run, predictions=False)
    answer = postprocess_run(storage, layout.run_id, settings)
    assert answer.status == "SUCCEEDED"
    assert answer.complete is False
    got = records(storage, layout)
    assert all(r["probabilities"] is None and r["predicted_label"] is None for r in got)
    assert all(r["prediction_missing"] for r in got)
    manifest = read_manifest(storage, layout)
    assert manifest["complete"] is False
    missing = manifest["missing"]["predictions"]
    assert missing["rows"] == 3
    assert missing["row_ids"] == [1, 2, 3]
    assert "no predictions under" in missing["reason"]
    assert manifest["counts"]["predicted"] == dict.fromkeys(LABELS, 0)
    assert manifest["quality"]["additivity_gap"]["records"] == 0
    report = read_bytes(storage, layout.bucket, layout.results_prefix + "report.html").decode()
    assert "the model's prediction is missing for 3 of 3 records" in report
    assert [(r["p"], r["q"]) for r in report_data(storage, layout)["records"]] == [(-1, None)] * 3


def test_one_missing_prediction_is_named(storage, settings, prepared):
    layout, run = prepared
    write_clarify_output(storage, layout, run)
    write_predictions(storage, layout, run, order=[0, 2])
    answer = postprocess_run(storage, layout.run_id, settings)
    assert answer.complete is False
    assert read_manifest(storage, layout)["missing"]["predictions"]["row_ids"] == [2]
    assert [r["prediction_missing"] for r in records(storage, layout)] == [False, True, False]


def prediction_file(storage, layout, lines: list[str]) -> None:
    body = "".join(line + "\n" for line in lines).encode("utf-8", "surrogateescape")  # \udcff: a raw 0xff byte
    storage.put(layout.bucket, layout.predictions_key, body, "x")


def test_an_unknown_file_beside_the_predictions_fails_the_run_by_name(storage, settings, prepared):
    layout, run = prepared
    write_clarify_output(storage, layout, run)
    key = layout.predict_output_prefix + ".rows.jsonl.out.crc"
    storage.put(layout.bucket, key, b"\x00crc", "x")
    with pytest.raises(ClarifyOutputError, match=r"unexpected file \.rows\.jsonl\.out\.crc beside rows\.jsonl\.out"):
        postprocess_run(storage, layout.run_id, settings)
    assert read_manifest(storage, layout)["where"] == {"file": key}


def good(row: int, prob=(0.2, 0.5, 0.3), label="Film") -> str:
    return json.dumps({"row_id": row, "SageMakerOutput": {"label": label, "prob": list(prob)}})


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (good(2, (0.2, 1.019, 0.3)), "not a probability"),
        (good(2, (-0.0118, 0.9, 0.1)), "not a probability"),
        (good(2).replace("0.5", "NaN"), "not strict JSON"),
        (good(2).replace("0.5", "true"), "not a probability"),
        (good(2, label="Album"), "not one of the run's labels"),
        (good(2, label="Animal"), "not the top class"),
        (good(2, (0.5, 0.5)), "must hold 3 values"),
        (good(1), "a second prediction for row 1"),
        (good(9), "row_id 9 names no row"),
        ('{"row_id": 2}', "row_id and SageMakerOutput"),
        (good(2).replace("0.5", "1e999"), "not a probability"),
        (good(0), "row_id 0 names no row"),
        (good(2).replace('"Film"', '"F\udcffilm"'), "not valid UTF-8"),
    ],
)
def test_bad_predictions_fail_the_run_naming_file_and_line(storage, settings, prepared, bad, reason):
    layout, run = prepared
    write_clarify_output(storage, layout, run, predictions=False)
    prediction_file(storage, layout, [good(1), bad, good(3)])
    with pytest.raises(ClarifyOutputError) as info:
        postprocess_run(storage, layout.run_id, settings)
    assert reason in info.value.reason
    manifest = read_manifest(storage, layout)
    assert manifest["status"] == "FAILED"
    assert manifest["where"] == {"file": layout.predictions_key, "line": 2}
    assert not storage.list(layout.bucket, layout.results_prefix)


def test_fasttexts_offset_above_one_is_published_as_a_probability(storage, settings, prepared):
    """fastText answers softmax + 1e-5, so a sure class reads 1.0000039: old main published that as a probability
    (above 1); anything further above 1 than that offset is still refused."""
    layout, run = prepared
    write_clarify_output(storage, layout, run, predictions=False)
    sure = (1.5e-05, 1.0000039339065552, 1.0e-05)
    prediction_file(storage, layout, [good(1), good(2, sure), good(3)])
    postprocess_run(storage, layout.run_id, settings)
    got = records(storage, layout)[1]
    assert got["probabilities"] == dict(zip(LABELS, (1.5e-05, 1.0, 1.0e-05), strict=True))
    assert got["predicted_label"] == "Film"
    every = [p for r in records(storage, layout) for p in r["probabilities"].values()]
    assert all(0.0 <= p <= 1.0 for p in every)


def test_a_torn_request_json_fails_the_run_naming_it(storage, settings, prepared):
    """Old main crashed (JSONDecodeError) on a request.json that is not JSON instead of failing the run."""
    layout, run = prepared
    write_clarify_output(storage, layout, run)
    storage.put(layout.bucket, layout.request_key, b'{"run_id": ', "x")
    with pytest.raises(ClarifyOutputError, match=r"request\.json of the run is not JSON"):
        postprocess_run(storage, layout.run_id, settings)
    manifest = read_manifest(storage, layout)
    assert (manifest["status"], manifest["where"]) == ("FAILED", {"file": layout.request_key})
    assert not storage.list(layout.bucket, layout.results_prefix)


def test_rerun_after_success_changes_nothing(storage, settings, prepared):
    layout, run = prepared
    write_clarify_output(storage, layout, run)
    postprocess_run(storage, layout.run_id, settings)
    before = read_bytes(storage, layout.bucket, layout.manifest_key)
    postprocess_run(storage, layout.run_id, settings)
    assert read_bytes(storage, layout.bucket, layout.manifest_key) == before


def corrupt(storage, layout, run, mutate) -> str:
    write_clarify_output(storage, layout, run)
    key = layout.clarify_prefix + OUT
    storage.put(layout.bucket, key, mutate(read_bytes(storage, layout.bucket, key)), "x")
    return key


def first_value(b: bytes) -> bytes:
    """The first attribution value of the first line, as written."""
    start = b.index(b'"attribution": [') + len(b'"attribution": [')
    return b[start : b.index(b",", start)]


@pytest.mark.parametrize(
    ("mutate", "reason", "line"),
    [
        (lambda b: b[: len(b) - 40], "malformed or truncated JSON", 3),
        (lambda b: b"".join(b.splitlines(keepends=True)[:2]), "ends after 2 lines", 3),
        (lambda b: b + b.splitlines(keepends=True)[0], "a second line for row 1", 4),
        (lambda b: b.replace(b'"attribution": [', b'"attribution": [0.5, ', 1), "has 4 values but there are 3", 1),
        (lambda b: b.replace(b'"join_source_value": 2', b'"join_source_value": 9'), "9 names no input row", 2),
        (lambda b: b.replace(b"\n", b"\n\n", 1), "empty line", 2),
        # old main named no file for an empty out.jsonl, and called a join value of 0 or -1 "a second line"
        (lambda b: b"", "ends after 0 lines", 1),
        (lambda b: b.replace(b'"join_source_value": 2', b'"join_source_value": 0'), "0 names no input row", 2),
        (lambda b: b.replace(b'"join_source_value": 2', b'"join_source_value": "-1"'), "-1 names no input row", 2),
        # strict numbers: old main accepted all of these and wrote them into records.jsonl and classes.json
        (lambda b: b.replace(first_value(b), b"NaN", 1), "NaN is not a JSON number", 1),
        (lambda b: b.replace(first_value(b), b"Infinity", 1), "Infinity is not a JSON number", 1),
        (lambda b: b.replace(first_value(b), b"-Infinity", 1), "-Infinity is not a JSON number", 1),
        (lambda b: b.replace(first_value(b), b"1e999", 1), "not finite", 1),
        (lambda b: b.replace(first_value(b), b"true", 1), "not a number", 1),
        (lambda b: b.replace(b'"start_idx": 0', b'"start_idx": true', 1), "start_idx", 1),
        (lambda b: b.replace(b'"join_source_value": 2', b'"join_source_value": 2.5'), "not a row number", 2),
        (lambda b: b.replace(b'"join_source_value": 2', b'"join_source_value": true'), "not a row number", 2),
        # old main crashed (UnicodeDecodeError) instead of failing the run
        (lambda b: b.replace(b"river", b"riv\xe9r", 1), "not valid UTF-8", 1),
    ],
)
def test_bad_clarify_output_fails_with_the_file_and_line(storage, settings, prepared, mutate, reason, line):
    layout, run = prepared
    key = corrupt(storage, layout, run, mutate)
    with pytest.raises(ClarifyOutputError) as info:
        postprocess_run(storage, layout.run_id, settings)
    assert reason in info.value.reason
    assert info.value.where == {"file": key, "line": line}
    manifest = read_manifest(storage, layout)
    assert manifest["status"] == "FAILED"
    assert reason in manifest["reason"]
    assert manifest["where"] == {"file": key, "line": line}
    assert not storage.list(layout.bucket, layout.results_prefix)  # nothing half-written


@pytest.mark.parametrize("name", ["out.jsonl.crc", "out.jsonl.bak", "notes.txt"])
def test_an_unknown_side_file_fails_the_run_by_name(storage, settings, prepared, name):
    """Old main read `out.jsonl.crc` as explanations (a crash on its bytes) and ignored the rest silently. Spark's own
    side files (``_SUCCESS``, ``.<part>.crc``) are the one exception: see the next test."""
    layout, run = prepared
    write_clarify_output(storage, layout, run)
    key = layout.clarify_prefix + "explanations_shap/" + name
    storage.put(layout.bucket, key, b"\x00\x01crc", "x")
    with pytest.raises(ClarifyOutputError, match="unexpected file"):
        postprocess_run(storage, layout.run_id, settings)
    assert read_manifest(storage, layout)["where"] == {"file": key}


@pytest.mark.parametrize("name", [".out.jsonl.crc", "_SUCCESS", "._SUCCESS.crc"])
def test_sparks_marker_and_checksums_beside_the_explanations_are_skipped(storage, settings, prepared, name):
    """A multi-instance Clarify job writes through Spark: its _SUCCESS marker and Hadoop .<name>.crc checksums are
    not explanations, and are not an error either."""
    layout, run = prepared
    write_clarify_output(storage, layout, run)
    storage.put(layout.bucket, layout.clarify_prefix + "explanations_shap/" + name, b"\x00\x01crc", "x")
    assert postprocess_run(storage, layout.run_id, settings).status == "SUCCEEDED"


def test_baseline_csv_beside_the_explanations_is_expected(storage, settings, prepared):
    layout, run = prepared
    write_clarify_output(storage, layout, run)
    storage.put(layout.bucket, layout.clarify_prefix + "explanations_shap/baseline.csv", b"<UNK>\n", "x")
    assert postprocess_run(storage, layout.run_id, settings).status == "SUCCEEDED"


def analysis_edit(storage, layout, run, edit):
    write_clarify_output(storage, layout, run)
    key = layout.clarify_prefix + "analysis.json"
    document = json.loads(read_bytes(storage, layout.bucket, key))
    storage.put(layout.bucket, key, edit(document, json.dumps(document)).encode(), "x")
    return key


def first_expected(d: dict) -> str:
    return f'"expected_value": {d["explanations"]["kernel_shap"][LABELS[0]]["expected_value"]}'


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda d, s: s.replace('"expected_value"', '"expected"', 1), "no expected_value for label"),
        (lambda d, s: s.replace(first_expected(d), '"expected_value": NaN', 1), "NaN is not a JSON number"),
        (lambda d, s: s.replace(first_expected(d), '"expected_value": true', 1), "not a finite number"),
        (lambda d, s: s.replace(first_expected(d), '"expected_value": 1e400', 1), "not a finite number"),
        (lambda d, s: s.replace('"text": {', '"text": {"x": NaN, ', 1), "NaN"),
        (lambda d, s: s[:-5], "is not JSON"),
    ],
)
def test_bad_analysis_json_fails_naming_the_file(storage, settings, prepared, edit, reason):
    """Old main crashed with KeyError on a label without expected_value and published NaN/true as numbers."""
    layout, run = prepared
    key = analysis_edit(storage, layout, run, edit)
    with pytest.raises(ClarifyOutputError, match=reason):
        postprocess_run(storage, layout.run_id, settings)
    manifest = read_manifest(storage, layout)
    assert manifest["status"] == "FAILED"
    assert manifest["where"]["file"] == key


def test_missing_analysis_or_output(storage, settings, prepared):
    layout, _ = prepared
    with pytest.raises(ClarifyOutputError, match=r"no analysis\.json"):
        postprocess_run(storage, layout.run_id, settings)
    assert read_manifest(storage, layout)["status"] == "FAILED"


@pytest.mark.parametrize(
    ("order", "join"),
    [
        ([2, 0, 1], lambda i: i),
        ([1, 2, 0], lambda i: float(i)),
        ([0, 1, 2], lambda i: f"{i}.0"),
        ([2, 1, 0], lambda i: str(i)),
    ],
)
def test_clarify_lines_are_joined_by_join_source_value_in_any_order(storage, settings, prepared, order, join):
    """Old main matched by position: lines out of order (or a join value of "1.0") failed the run."""
    layout, run = prepared
    write_clarify_output(storage, layout, run)
    lines = [local_line(e) for e in run.explanations]
    shuffled = "".join(
        lines[i].replace(f'"join_source_value": {i + 1}', f'"join_source_value": {json.dumps(join(i + 1))}')
        for i in order
    )
    storage.put(layout.bucket, layout.clarify_prefix + OUT, shuffled.encode(), "x")
    postprocess_run(storage, layout.run_id, settings)
    got = records(storage, layout)
    assert [r["row_id"] for r in got] == [1, 2, 3]
    assert [r["text"] for r in got] == TEXTS
    for record, explanation in zip(got, run.explanations, strict=True):
        assert [u["attributions"] for u in record["units"]] == [list(u.attribution) for u in explanation.units]


def test_part_files_written_out_of_row_order_are_joined(storage, settings, prepared):
    layout, run = prepared
    write_clarify_output(storage, layout, run, split=1)
    prefix = layout.clarify_prefix + "explanations_shap/"
    first, second = (read_bytes(storage, layout.bucket, prefix + n) for n in ("out.jsonl.part000", "out.jsonl.part001"))
    storage.put(layout.bucket, prefix + "out.jsonl.part000", second, "x")
    storage.put(layout.bucket, prefix + "out.jsonl.part001", first, "x")
    postprocess_run(storage, layout.run_id, settings)
    assert [r["text"] for r in records(storage, layout)] == TEXTS


@pytest.mark.parametrize(("value", "row"), [(1, 1), (1.0, 1), ("1", 1), ("1.0", 1), (" 7 ", 7), ("7e0", 7)])
def test_join_values_that_name_a_row(value, row):
    assert join_row_id(value) == row


@pytest.mark.parametrize("value", [True, 1.5, "x", None, float("nan"), [1], "1.5"])
def test_join_values_that_do_not(value):
    with pytest.raises(ValueError, match="not a row number"):
        join_row_id(value)


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


def test_class_summary_is_not_led_by_frequent_words(storage, settings):
    """40 records: "the" in each with a small push towards every class, one cue word per class with a strong one.

    Old main ranked by attribution summed over all records: "the" (40 × 0.02 = 0.8) beat "river" (6 × 0.1 = 0.6).
    Now tokens rank by mean per occurrence over the records predicted as the class.
    """
    cues = {"NaturalPlace": "river", "Film": "cinema", "Animal": "wolf"}
    texts, explanations, probs = [], [], []
    for i in range(40):
        label = LABELS[i % 3] if i < 18 else LABELS[1]
        cue = cues[label]
        text = f"the {cue} and the hill" if i < 18 else "the plain story here"
        texts.append(text)
        k = LABELS.index(label)
        units = []
        for m in __import__("re").finditer(r"\S+", text):
            word = m.group()
            strong = word == cue
            values = tuple((0.1 if strong else 0.02) if j == k else (-0.05 if strong else 0.01) for j in range(3))
            units.append(Unit(word, m.start(), values))
        explanations.append(LocalExplanation(tuple(units), i + 1))
        probs.append([0.8 if j == k else 0.1 for j in range(3)])
    storage.put("input", "incoming/cues.csv", csv_bytes(texts), "text/csv")
    prepared = prepare_run(storage, RunRequest(bucket="input", key="incoming/cues.csv"), settings)
    layout = RunLayout("results", prepared.run_id)
    run = known_run(texts, LABELS)
    run.explanations[:] = explanations
    write_clarify_output(storage, layout, run, predictions=False)
    from explain_workflow.predictions import prediction_lines

    storage.put(layout.bucket, layout.predictions_key, b"".join(prediction_lines(enumerate(probs, 1), LABELS)), "x")
    postprocess_run(storage, layout.run_id, settings)
    classes = classes_of(storage, layout)
    place = classes["NaturalPlace"]["predicted_as_this_class"]
    assert place["records"] == 6
    assert place["min_support"] == 1
    top = place["top_positive_tokens"][0]
    assert (top["token"], top["count"]) == ("river", 6)
    assert top["mean"] == pytest.approx(0.1)
    every = classes["NaturalPlace"]["all_records"]
    assert every["records"] == 40
    assert every["min_support"] == 4
    assert every["top_positive_tokens"][0]["token"] == "river"
    assert [t["token"] for t in every["top_negative_tokens"]][:2] == ["cinema", "wolf"]
    assert classes["NaturalPlace"]["clarify_global_top_shap_text"]["text"]["river"] == pytest.approx(0.1)


def test_min_support_grows_with_the_view():
    assert [min_support(n) for n in (0, 1, 10, 11, 30, 50, 5000)] == [1, 1, 1, 2, 3, 5, 5]
    stats = TokenStats(2)
    stats.add((Unit("Rare", 0, (0.9, 0.0)),), 0)
    for _ in range(10):
        stats.add((Unit("the", 0, (0.1, 0.0)),), 0)
    view = stats.predicted_view(0)
    assert view["min_support"] == 2
    assert [t["token"] for t in view["top_positive_tokens"]] == ["the"]  # "rare" has one occurrence only


@hsettings(max_examples=50)
@given(
    st.lists(
        st.tuples(st.text(min_size=1, max_size=5), st.lists(st.floats(-1, 1), min_size=3, max_size=3)),
        max_size=12,
    ),
)
def test_line_round_trip(units):
    explanation = LocalExplanation(tuple(Unit(t, 0, tuple(a)) for t, a in units), 1)
    assert parse_local_line(local_line(explanation), 1, 3) == explanation


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
    st.none() | st.tuples(st.sampled_from(LABELS), st.lists(st.floats(0, 1), min_size=3, max_size=3)),
)
def test_records_line_copies_clarify_arrays_and_equals_json_dumps(units, text, prediction):
    """The fast encoder's line parses to exactly what json.dumps would have written, for any unit texts."""
    explanation = LocalExplanation(tuple(Unit(t, s, tuple(a)) for t, s, a in units), 1)
    parsed = parse_local_line(local_line(explanation), 1, 3)
    assert len(parsed.raw_attributions) == len(units)  # the copy path, not the fallback
    record = record_of(1, text, parsed, LABELS, prediction)
    misaligned = sum(not u["aligned"] for u in record["units"])
    for explanation in (parsed, LocalExplanation(parsed.units, 1)):  # copied arrays, then the json.dumps fallback
        line, unaligned = record_line(1, text, explanation, LABELS, prediction)
        assert json.loads(line) == json.loads(json.dumps(record))
        assert unaligned == misaligned


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
    line, _ = record_line(1, "river", parsed, LABELS, None)
    assert json.loads(line)["units"][0]["attributions"] == [0.1, 0.2, 0.3]


@pytest.mark.parametrize("value", ['"0.1"', "null", "[0.1]", "{}", "true", "false"])
def test_an_attribution_value_that_is_not_a_number_is_rejected(value):
    line = local_line(LocalExplanation((Unit("river", 0, (0.1, 0.2, 0.3)),), 1)).replace("0.2", value)
    with pytest.raises(ClarifyOutputError, match="not a number") as info:
        parse_local_line(line, 7, 3, "clarify/explanations_shap/out.jsonl")
    assert info.value.where == {"file": "clarify/explanations_shap/out.jsonl", "line": 7}


def test_the_report_still_renders_an_earlier_versions_classes():
    """`textexplain report` re-renders a run directory; one written before the two views must not crash it."""
    from explain_workflow import report

    row = {"token": "river", "total": 0.6, "mean": 0.1, "count": 6}
    classes = {"A": {"expected_value": 0.5, "top_positive_tokens": [row], "top_negative_tokens": [],
                     "clarify_global_top_shap_text": {"text": {"river": 0.1}}}}  # fmt: skip
    summary = {"run_id": "r", "rows": 0, "labels": ["A"], "predicted_counts": {"A": 0}, "misaligned_units": 0,
               "records_in_report": 0}  # fmt: skip
    html = report.render(summary, classes, [])
    assert "ranked by summed attribution" in html
    assert "river" in html


def test_a_faithfulness_check_the_caller_ran_is_published(storage, settings, prepared):
    """The local mode hands postprocess its own deletion check (a run in AWS has none)."""
    layout, run = prepared
    write_clarify_output(storage, layout, run)
    check = {"k": 3, "records": 3, "mean_top_k_drop": 0.25, "mean_random_k_drop": 0.05, "top_beats_random": 1.0,
             "per_record": [{"row_id": 1, "top_k_drop": 0.3, "random_k_drop": 0.1}]}  # fmt: skip
    postprocess_run(storage, layout.run_id, settings, faithfulness=check)
    manifest = read_manifest(storage, layout)
    assert manifest["faithfulness"] == {k: v for k, v in check.items() if k != "per_record"}
    report = read_bytes(storage, layout.bucket, layout.results_prefix + "report.html").decode()
    assert "lowers that class's probability by 0.250 on average" in report


def test_a_run_in_aws_publishes_no_faithfulness_whatever_files_its_prefix_holds(storage, settings, prepared):
    """Old postprocess read local/faithfulness.json, a file only the local mode writes, in every run."""
    layout, run = prepared
    write_clarify_output(storage, layout, run)
    stray = {"k": 3, "records": 3, "mean_top_k_drop": 0.25, "mean_random_k_drop": 0.05, "top_beats_random": 1.0}
    storage.put(layout.bucket, layout.prefix + "local/faithfulness.json", json.dumps(stray).encode(), "x")
    postprocess_run(storage, layout.run_id, settings)
    assert "faithfulness" not in read_manifest(storage, layout)
    report = read_bytes(storage, layout.bucket, layout.results_prefix + "report.html").decode()
    assert "lowers that class's probability" not in report
    assert "not run (a Clarify job runs no deletion check; the local mode does)" in report

"""The builtin job's parts: analysis parts merge into what one process over every record computes, a median is never
merged, and the readers take the single files or the parts (never both, never a stray file)."""

from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pytest

from explain_workflow.clarify_format import SHAP_DIR, out_keys
from explain_workflow.errors import ClarifyOutputError
from explain_workflow.parts import (
    PartAggregate,
    frozen_dataset_keys,
    frozen_rows,
    merge_parts,
    part_name,
    read_analysis,
)
from explain_workflow.predictions import prediction_keys, read_predictions
from explain_workflow.storage import FileStorage
from textexplain.explainer.explain import GlobalAggregate, RecordResult
from textexplain.explainer.units import Span

LABELS = ["a", "b", "c"]
WORDS = ["River", "river", "lake", "The", "film", "song", "A"]


def records(n: int, seed: int = 0) -> list[RecordResult]:
    rng = np.random.default_rng(seed)
    out = []
    for row_id in range(1, n + 1):
        m = int(rng.integers(0, 6))
        units = [Span(str(rng.choice(WORDS)), 5 * i) for i in range(m)]
        out.append(RecordResult(row_id, "", units, rng.normal(size=(m, 3)), rng.random(3), rng.dirichlet(np.ones(3))))
    return out


def part_of(results: list[RecordResult], agg: str, top: int = 50) -> dict:
    part = PartAggregate(LABELS, agg, top)
    median = GlobalAggregate(LABELS, "median") if agg == "median" else None
    for r in results:
        part.add(r.f_none.tolist(), [(u.text, phi) for u, phi in zip(r.units, r.attributions.tolist(), strict=True)])
        if median is not None:
            median.add(r)
    # through JSON, as the job writes it and postprocess reads it
    return json.loads(json.dumps(part.document(median.document_parts() if median else None)))


@pytest.mark.parametrize("agg", ["mean_abs", "mean_sq"])
@pytest.mark.parametrize("cuts", [[], [7], [3, 3, 20]])
def test_merged_parts_equal_one_process_over_every_record(agg, cuts):
    results = records(30)
    whole = GlobalAggregate(LABELS, agg)
    for r in results:
        whole.add(r)
    expected, global_values, top = whole.document_parts()
    edges = [0, *cuts, len(results)]
    parts = [(f"p{i}", part_of(results[a:b], agg)) for i, (a, b) in enumerate(itertools.pairwise(edges))]
    m_expected, m_global, m_top = merge_parts(parts, LABELS)
    assert m_expected == pytest.approx(expected, rel=1e-12)
    assert m_global == pytest.approx(global_values, rel=1e-12)
    for ours, theirs in zip(m_top, top, strict=True):
        assert list(ours) == list(theirs)  # the same tokens in the same order (ties: first occurrence)
        assert list(ours.values()) == pytest.approx(list(theirs.values()), rel=1e-12)


def test_tokens_are_lower_cased_and_max_top_tokens_is_kept():
    merged = merge_parts([("p", part_of(records(30), "mean_abs", top=2))], LABELS)[2]
    assert all(len(t) == 2 for t in merged)
    assert all(k == k.lower() for t in merged for k in t)


def test_empty_parts_merge_to_zeros_and_count_for_nothing():
    empty = part_of([], "mean_abs")
    assert merge_parts([("p0", empty)], LABELS) == ([0.0] * 3, [0.0] * 3, [{}, {}, {}])
    full = part_of(records(5), "mean_abs")
    assert merge_parts([("p0", full), ("p1", empty)], LABELS) == merge_parts([("p0", full)], LABELS)


def test_a_median_is_taken_from_its_one_part_and_never_merged():
    results = records(12)
    whole = GlobalAggregate(LABELS, "median")
    for r in results:
        whole.add(r)
    assert merge_parts([("p0", part_of(results, "median"))], LABELS) == whole.document_parts()
    assert (
        merge_parts([("p0", part_of(results, "median")), ("p1", part_of([], "median"))], LABELS)[0]
        == (whole.document_parts()[0])
    )
    with pytest.raises(ClarifyOutputError, match="median cannot be merged from 2 parts") as info:
        merge_parts([("p0", part_of(results[:6], "median")), ("p1", part_of(results[6:], "median"))], LABELS)
    assert info.value.where == {"file": "p1"}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: p.update(labels=["a", "b"]), "labels"),
        (lambda p: p.update(format="other"), "not a textexplain-analysis-part/1"),
        (lambda p: p.update(records=-1), "records"),
        (lambda p: p["f_none_sum"].__setitem__(0, "x"), "f_none_sum"),
        (lambda p: p["tokens"].update(river={"count": 0, "sum": [0, 0, 0]}), "tokens"),
        (lambda p: p.update(agg_method="mean_sq"), "disagree"),
    ],
)
def test_a_malformed_or_disagreeing_part_is_refused_by_name(edit, message):
    good, bad = part_of(records(4), "mean_abs"), part_of(records(4, seed=1), "mean_abs")
    edit(bad)
    with pytest.raises(ClarifyOutputError, match=message):
        merge_parts([("clarify/analysis.part-00000.json", good), ("clarify/analysis.part-00001.json", bad)], LABELS)


def test_part_names_are_what_out_keys_and_the_readers_accept():
    assert part_name("out", 3) == "out.part-00003.jsonl"
    prefix = "runs/x/clarify/"
    keys = [prefix + SHAP_DIR + part_name("out", i) for i in (1, 0)]
    assert out_keys(keys, prefix) == sorted(keys)
    assert part_name("predictions", 12) == "rows.part-00012.jsonl.out"
    assert part_name("dataset", 0) == "dataset.part-00000.csv"


def test_prediction_files_are_the_single_file_or_the_parts():
    p = "predict/output/"
    assert prediction_keys([p + "rows.jsonl.out"], p) == [p + "rows.jsonl.out"]
    parts = [p + part_name("predictions", i) for i in (10, 2, 0)]
    assert prediction_keys(parts, p) == [p + part_name("predictions", i) for i in (0, 2, 10)]
    with pytest.raises(ClarifyOutputError, match=re.escape("both rows.jsonl.out and 3 part files")):
        prediction_keys([*parts, p + "rows.jsonl.out"], p)
    with pytest.raises(ClarifyOutputError, match=re.escape("unexpected file rows.part-1.jsonl.out")):
        prediction_keys([p + "rows.part-1.jsonl.out"], p)


def test_the_frozen_dataset_is_the_single_file_or_its_parts():
    i = "runs/x/input/"
    assert frozen_dataset_keys([i + "dataset.csv", i + "labels.csv"], i) == [i + "dataset.csv"]
    parts = [i + part_name("dataset", n) for n in (1, 0)]
    assert frozen_dataset_keys(parts, i) == sorted(parts)
    with pytest.raises(ClarifyOutputError, match=re.escape("both dataset.csv and 2 dataset parts")):
        frozen_dataset_keys([*parts, i + "dataset.csv"], i)
    with pytest.raises(ClarifyOutputError, match="no frozen dataset"):
        frozen_dataset_keys([i + "other.csv"], i)


def test_readers_over_storage(tmp_path):
    storage = FileStorage(tmp_path)
    storage.put("b", "r/input/dataset.part-00001.csv", b'"3","c"\n', "text/csv")
    storage.put("b", "r/input/dataset.part-00000.csv", b'"1","a"\n"2","b\nb"\n', "text/csv")
    assert list(frozen_rows(storage, "b", "r/input/")) == [(1, "a"), (2, "b\nb"), (3, "c")]
    line = {"row_id": 2, "SageMakerOutput": {"label": "b", "prob": [0.1, 0.8, 0.1]}}
    storage.put("b", "r/predict/output/rows.part-00001.jsonl.out", (json.dumps(line) + "\n").encode(), "x")
    found = read_predictions(storage, "b", "r/predict/output/", LABELS, 3)
    assert found.get(2) == ("b", [0.1, 0.8, 0.1])
    assert found.get(1) is None
    results = records(6)
    for n, chunk in enumerate((results[:2], results[2:])):
        body = json.dumps(part_of(chunk, "mean_abs")).encode()
        storage.put("b", f"r/clarify/{part_name('analysis', n)}", body, "application/json")
    document, where = read_analysis(storage, "b", "r/clarify/", LABELS)
    assert where == "r/clarify/analysis.part-*.json"
    assert set(document["explanations"]["kernel_shap"]) == set(LABELS)
    storage.put("b", "r/clarify/analysis.json", json.dumps(document).encode(), "application/json")
    with pytest.raises(ClarifyOutputError, match=re.escape("both analysis.json and 2 analysis parts")):
        read_analysis(storage, "b", "r/clarify/", LABELS)
    with pytest.raises(ClarifyOutputError, match=re.escape("no analysis.json under r/other/")):
        read_analysis(storage, "b", "r/other/", LABELS)

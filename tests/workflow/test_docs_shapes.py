"""docs/workflow.md shows records.jsonl, the manifest and the steps' results exactly as the code writes them: every
key the docs show is written, and every key written is shown (values are examples; keyed-by-label and model objects
are compared by presence only)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from explain_workflow.contract import FailureResult, PostprocessResult, PredictJob, PrepareResult
from explain_workflow.postprocess import postprocess_run
from explain_workflow.runs import read_manifest
from explain_workflow.storage import read_bytes
from tests.support.clarify_output import write_clarify_output, write_predictions
from tests.support.data import write_texts
from textexplain import local

DOC = (Path(__file__).resolve().parents[2] / "docs" / "workflow.md").read_text(encoding="utf-8")
# objects whose keys are the run's labels or the model's own description: their presence is what the docs fix
OPEN = {"identity.model", "counts.predicted", "probabilities"}


def json_block_after(sentence: str) -> dict:
    """The first ```json block after ``sentence`` in docs/workflow.md (a ``, ...`` in a list stands for more)."""
    begin = DOC.index("```json\n", DOC.index(sentence)) + len("```json\n")
    block = DOC[begin : DOC.index("\n```", begin)]
    return json.loads(block.replace(", ...]", "]"))


def key_paths(value, prefix: str = "") -> set[str]:
    """Every key of nested objects as a dotted path (a list's first element stands for all of them)."""
    paths = set()
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return key_paths(value[0], prefix + "[]")
    if not isinstance(value, dict) or prefix.rstrip(".") in OPEN:
        return paths
    for key, inner in value.items():
        path = f"{prefix}.{key}" if prefix else key
        paths.add(path)
        paths |= key_paths(inner, path)
    return paths


MANIFEST_DOC = json_block_after("A SUCCEEDED manifest")
OPTIONAL = {"missing", "faithfulness"}


def without(paths: set[str], tops: set[str]) -> set[str]:
    return {p for p in paths if p.split(".")[0].removesuffix("[]") not in tops}


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, trained_model):
    """A real local run (in-process model): its records and its SUCCEEDED manifest, with the faithfulness check."""
    root = tmp_path_factory.mktemp("docs-shapes")
    data = write_texts(root / "t.csv", ["The river flows into a lake.", "A film directed by a friend."])
    with local.model_endpoint(trained_model.tarball, None, None) as (target, labels):
        result = local.run(local.LocalRun(data, root / "out", labels, {"num_samples": 20}), target)
    run_dir = Path(result["run_dir"])
    records = [json.loads(line) for line in (run_dir / "results" / "records.jsonl").read_text().splitlines()]
    return records, json.loads((run_dir / "manifest.json").read_text())


def test_a_records_line_has_exactly_the_keys_the_docs_show(local_run):
    records, _ = local_run
    shown = key_paths(json_block_after("A line of\n`records.jsonl`"))
    assert {"units[].attributions", "probabilities", "prediction_missing"} <= shown
    for record in records:
        assert key_paths(record) == shown


def test_a_local_manifest_has_exactly_the_keys_the_docs_show(local_run):
    _, manifest = local_run
    assert manifest["complete"] is True
    assert key_paths(manifest) == without(key_paths(MANIFEST_DOC), {"missing"})


def test_a_manifest_with_missing_predictions_has_exactly_the_keys_the_docs_show(storage, settings, prepared):
    layout, run = prepared
    write_clarify_output(storage, layout, run, predictions=False)
    write_predictions(storage, layout, run, order=[0, 2])
    postprocess_run(storage, layout.run_id, settings)
    manifest = read_manifest(storage, layout)
    assert manifest["complete"] is False
    assert key_paths(manifest) == without(key_paths(MANIFEST_DOC), {"faithfulness"})
    assert manifest["missing"]["predictions"]["row_ids"] == [2]


def test_a_failed_manifest_has_exactly_the_keys_the_docs_show(storage, settings, prepared):
    layout, run = prepared
    write_clarify_output(storage, layout, run)
    key = layout.clarify_prefix + "explanations_shap/out.jsonl"
    storage.put(layout.bucket, key, read_bytes(storage, layout.bucket, key)[:-40], "x")
    with pytest.raises(Exception, match="truncated"):
        postprocess_run(storage, layout.run_id, settings)
    shown = json_block_after("A FAILED manifest says where")
    assert key_paths(read_manifest(storage, layout)) == key_paths(shown)


def names_in_bullet(opening: str) -> set[str]:
    """The quoted field names of the ``{...}`` that follows ``opening`` in the contract section."""
    start = end = DOC.index(opening) + len(opening)
    depth = 0
    while True:
        depth += {"{": 1, "}": -1}.get(DOC[end], 0)
        if depth == 0:
            break
        end += 1
    return set(re.findall(r'"(\w+)"', DOC[start : end + 1]))


@pytest.mark.parametrize(
    ("opening", "fields"),
    [
        (
            "returns a `PrepareResult` (state `$.prepare`): `",
            set(PrepareResult.model_fields) | set(PredictJob.model_fields),
        ),
        ("returns a `PostprocessResult`: `", set(PostprocessResult.model_fields)),
        ("It returns a `FailureResult`: `", set(FailureResult.model_fields)),
    ],
)
def test_the_steps_results_are_the_contracts_fields(opening, fields):
    names = names_in_bullet(opening)
    names -= {"READY", "ALREADY_DONE", "SUCCEEDED"}  # values shown beside "status"
    assert names == fields

"""The report's figures against the run's own files, its bounds, its escaping, the label column end to end, and
`textexplain report` rendering exactly what postprocess rendered."""

from __future__ import annotations

import html.parser
import json
from collections import Counter
from html import escape
from pathlib import Path

import pytest

from bench.bench_report import build_run
from explain_workflow import report
from explain_workflow.contract import RunRequest
from explain_workflow.evaluation import labels_key
from explain_workflow.postprocess import min_support, postprocess_run
from explain_workflow.prepare import prepare_run
from explain_workflow.runs import RunLayout
from explain_workflow.storage import read_bytes
from tests.support.clarify_output import known_run, write_clarify_output
from tests.support.data import LABELS, csv_rows
from tests.support.report_checks import HOSTILE, hostile_inputs, lines, recomputed


class Elements(html.parser.HTMLParser):
    """Every element and attribute a browser's parser would make of a page (the standard library's HTML parser)."""

    def __init__(self):
        super().__init__()
        self.tags: Counter = Counter()
        self.attributes: list[tuple[str, str, str | None]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags[tag] += 1
        self.attributes += [(tag, k, v) for k, v in attrs]
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)


def parsed(page: str) -> Elements:
    found = Elements()
    found.feed(page)
    return found


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory) -> Path:
    """A finished, labelled run of 120 generated records (the benchmark's own run, smaller)."""
    return build_run(tmp_path_factory.mktemp("run"), 120)


def test_every_figure_equals_the_runs_files(bench_run):
    page = (bench_run / "report.html").read_text(encoding="utf-8")
    records = lines(bench_run / "records.jsonl")
    classes = json.loads((bench_run / "classes.json").read_text())
    summary = json.loads((bench_run / "summary.json").read_text())
    labels = summary["labels"]
    found = parsed(page)
    # the predicted-class chart: one bar per class, its count recounted from records.jsonl
    counts = Counter(r["predicted_label"] for r in records)
    chart = {v for t, k, v in found.attributes if k == "data-label" and t == "g"}
    assert chart == set(labels)
    for label in labels:
        assert f'data-label="{label}" data-count="{counts[label]}"' in page
    assert f"<td>records</td><td>{len(records)} explained, none missing</td>" in page
    # per class: the base value and both views' bars are classes.json's, min support as postprocess computes it
    for info in classes.values():
        assert f'<span class="base">{info["expected_value"]:.4f}</span>' in page
        for view in ("predicted_as_this_class", "all_records"):
            assert info[view]["min_support"] == min_support(info[view]["records"])
            assert f"{info[view]['records']} records; tokens with at least {info[view]['min_support']} occurrences" in (
                page
            )
            for row in info[view]["top_positive_tokens"][:10] + info[view]["top_negative_tokens"][:10]:
                assert (
                    f'data-token="{escape(row["token"])}" data-mean="{row["mean"]:.6g}" data-count="{row["count"]}"'
                    in page
                )
    # the records the script renders: records.jsonl's, rounded to 4 decimals
    data = report.data_of(page)
    assert data["labels"] == labels
    assert data["base"] == [classes[label]["expected_value"] for label in labels]
    assert len(data["records"]) == len(records)
    for shown, record in zip(data["records"], records, strict=True):
        assert (shown["r"], shown["t"]) == (record["row_id"], record["text"])
        assert shown["p"] == labels.index(record["predicted_label"])
        assert shown["q"] == [round(record["probabilities"][label] * 10_000) for label in labels]
        assert shown["a"] == [round(v * 10_000) for u in record["units"] for v in u["attributions"]]
        assert [record["text"][s:e] for s, e in shown["u"]] == [u["text"] for u in record["units"]]
        assert data["truth"][shown["y"]] == record["label"]


def test_the_evaluation_equals_a_recomputation_from_records_and_labels(bench_run):
    run_dir = bench_run.parent
    records = lines(bench_run / "records.jsonl")
    truth = {line["row_id"]: line["label"] for line in lines(run_dir / "labels" / "labels.jsonl")}
    labels = json.loads((bench_run / "summary.json").read_text())["labels"]
    again = recomputed(records, truth, labels)
    evaluation = json.loads((bench_run / "evaluation.json").read_text())
    assert evaluation["definition"].startswith("derived")
    assert evaluation["true_labels"] == again["rows"]
    assert evaluation["confusion"] == again["matrix"]
    assert (evaluation["correct"], evaluation["evaluated"]) == (again["correct"], again["evaluated"])
    assert evaluation["accuracy"] == again["correct"] / again["evaluated"]
    assert [
        (w["row_id"], w["label"], w["predicted"], [u["text"] for u in w["towards_predicted"]],
         [u["text"] for u in w["away_from_label"]])
        for w in evaluation["misclassified"]
    ] == again["wrong"]  # fmt: skip
    assert again["wrong"], "the generated run has misclassified records"
    page = (bench_run / "report.html").read_text(encoding="utf-8")
    assert f"<b>{again['correct'] / again['evaluated']:.1%}</b>" in page
    for name, row in zip(again["rows"], again["matrix"], strict=True):
        cells = page.split(f"<tr><th>{name}</th>", 1)[1].split("</tr>", 1)[0]
        assert [int(c.split(">", 1)[1]) for c in cells.split("</td>")[:-1]] == row
    shown = [int(v) for t, k, v in parsed(page).attributes if t == "div" and k == "data-row"]
    assert shown == [w[0] for w in again["wrong"]][: report.MISCLASSIFIED_SHOWN]


def test_a_label_column_goes_beside_the_dataset_never_into_it(storage, settings):
    """prepare keeps the labels in labels/labels.jsonl; input/ (what Clarify reads) has row_id and text only."""
    texts = ["a river in a valley", "a film by a director", "a wolf in a forest", "a glacier and a lake"]
    truth = ["NaturalPlace", "Film", "Animal", "NotAClass"]
    storage.put(
        "input", "incoming/labelled.csv", csv_rows(["truth", "text"], zip(truth, texts, strict=True)), "text/csv"
    )
    # the request as an event carries it (the starter and prepare read overrides with RunRequest.from_event)
    event = {"bucket": "input", "key": "incoming/labelled.csv", "overrides": {"label_column": "truth"}}
    request = RunRequest.from_event(event)
    prepared = prepare_run(storage, request, settings)
    assert (
        json.loads(read_bytes(storage, layout_of(prepared).bucket, layout_of(prepared).request_key))["label_column"]
        == "truth"
    )
    layout = RunLayout(settings.results_bucket, prepared.run_id)
    frozen = read_bytes(storage, layout.bucket, layout.dataset_key).decode()
    assert all(label not in frozen for label in truth)
    assert [k for k in storage.list(layout.bucket, layout.input_prefix)] == [layout.dataset_key]
    kept = [json.loads(line) for line in read_bytes(storage, layout.bucket, labels_key(layout.prefix)).splitlines()]
    assert kept == [{"row_id": i, "label": label} for i, label in enumerate(truth, start=1)]
    # a run without the label column is another run (the labels are part of what it publishes)
    plain = prepare_run(storage, RunRequest(bucket="input", key="incoming/labelled.csv"), settings)
    assert plain.run_id != prepared.run_id
    run = known_run(texts, LABELS, seed=5)
    write_clarify_output(storage, layout, run)
    postprocess_run(storage, layout.run_id, settings)
    records = [json.loads(line) for line in read_bytes(storage, layout.bucket, layout.results_prefix + "records.jsonl")
               .splitlines()]  # fmt: skip
    assert [r["label"] for r in records] == truth
    evaluation = json.loads(read_bytes(storage, layout.bucket, layout.results_prefix + "evaluation.json"))
    again = recomputed(records, dict(enumerate(truth, start=1)), LABELS)
    assert evaluation["true_labels"] == [*LABELS, "NotAClass"] == again["rows"]
    assert evaluation["confusion"] == again["matrix"]
    assert evaluation["labels_not_classes_of_the_model"] == ["NotAClass"]
    missed = next(w for w in evaluation["misclassified"] if w["label"] == "NotAClass")
    assert (missed["away_from_label"], missed["label_is_a_class"]) == ([], False)


@pytest.mark.parametrize("column", ["nope", "text"])
def test_a_label_column_the_file_lacks_fails_the_run_naming_it(storage, settings, column):
    from explain_workflow.dataset import InputValidationError

    storage.put("input", "incoming/l.csv", csv_rows(["label", "text"], [["Film", "a film"]]), "text/csv")
    request = RunRequest(bucket="input", key="incoming/l.csv", overrides={"label_column": column})
    with pytest.raises(InputValidationError, match="label column"):
        prepare_run(storage, request, settings)


@pytest.mark.parametrize("value", [3, "", " ", ["label"]])
def test_a_label_column_override_that_is_no_name_is_refused(storage, settings, value):
    from explain_workflow.dataset import InputValidationError

    storage.put("input", "incoming/l.csv", csv_rows(["label", "text"], [["Film", "a film"]]), "text/csv")
    request = RunRequest(bucket="input", key="incoming/l.csv", overrides={"label_column": value})
    with pytest.raises(InputValidationError, match="label_column must be a column name"):
        prepare_run(storage, request, settings)


def layout_of(prepared) -> RunLayout:
    return RunLayout(prepared.results_bucket, prepared.run_id)


def test_a_re_rendered_report_escapes_every_value_of_the_files(tmp_path, capsys):
    """Issue 23's finding: `textexplain report` of a run whose files carry markup (row_id, records, min_support,
    count ...) must show it as text, as postprocess's render does."""
    from textexplain.cli import main

    summary, classes, records, evaluation = hostile_inputs()
    (tmp_path / "results").mkdir()
    (tmp_path / "manifest.json").write_text(json.dumps({"status": "SUCCEEDED"}))
    for name, value in (("summary.json", summary), ("classes.json", classes), ("evaluation.json", evaluation)):
        (tmp_path / "results" / name).write_text(json.dumps(value))
    (tmp_path / "results" / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert main(["report", str(tmp_path)]) == 0, capsys.readouterr().err
    page = (tmp_path / "results" / "report.html").read_text(encoding="utf-8")
    assert page == report.render(summary, classes, records, evaluation)
    assert parsed(page).tags["x-evil"] == 0
    assert parsed(page).tags["script"] == 2


def test_every_value_is_escaped(tmp_path):
    """row_id, records, min_support, count and every other value of the files a report is rendered from."""
    page = report.render(*hostile_inputs())
    found = parsed(page)
    assert found.tags["x-evil"] == 0
    assert not [a for a in found.attributes if a[1] in ("onload", "id") and a[2] == "pwn"]
    assert found.tags["script"] == 2  # the data block and the report's own script, nothing else
    assert all("window.pwned" not in s for s in found.scripts[1:])
    assert "window.pwned" in found.scripts[0]  # as JSON text inside the data block, where it cannot run
    assert "<x-evil" not in page
    assert "</script><script>window" not in page
    assert page.count(html_escaped := "&lt;x-evil id=pwn onload=alert(1)&gt;") >= 20, html_escaped
    assert report.data_of(page)["records"][0]["r"] == HOSTILE  # the script writes it with textContent
    (tmp_path / "hostile.html").write_text(page, encoding="utf-8")  # the browser test opens the same page


def test_the_report_is_bounded_in_records_and_bytes(tmp_path):
    """Past REPORT_MAX_RECORDS records or REPORT_MAX_BYTES bytes the report shows the first ones and says so."""
    summary, classes, _, _ = hostile_inputs()
    summary = {**summary, "rows": 3000, "run_id": "r", "predicted_counts": {"A": 3000}, "missing": {}}
    long_text = "word " * 600
    units = [{"text": "word", "start_idx": 5 * i, "aligned": True, "attributions": [0.123456]} for i in range(600)]

    def records(n):
        return ({"row_id": i, "text": long_text, "predicted_label": "A", "probabilities": {"A": 0.5}, "units": units}
                for i in range(1, n + 1))  # fmt: skip

    page = report.render(summary, classes, records(3000))
    shown = len(report.data_of(page)["records"])
    assert len(page.encode()) <= report.REPORT_MAX_BYTES
    assert 0 < shown < report.REPORT_MAX_RECORDS  # the byte budget decided
    assert f"This report shows the first {shown} of 3000 records" in page
    short = [{"row_id": i, "text": "w", "predicted_label": "A", "probabilities": {"A": 0.5}, "units": []}
             for i in range(1, 3001)]  # fmt: skip
    page = report.render(summary, classes, short)
    assert len(report.data_of(page)["records"]) == report.REPORT_MAX_RECORDS  # the record bound decided
    assert f"the first {report.REPORT_MAX_RECORDS} of 3000 records" in page


def test_the_report_command_renders_exactly_what_postprocess_rendered(bench_run, capsys):
    from textexplain.cli import main

    run_dir = bench_run.parent
    written = (bench_run / "report.html").read_bytes()
    (bench_run / "report.html").write_text("stale", encoding="utf-8")
    assert main(["report", str(run_dir)]) == 0
    assert (bench_run / "report.html").read_bytes() == written
    assert capsys.readouterr().out.strip() == f"report: {bench_run / 'report.html'}"


def test_the_report_command_refuses_a_run_without_its_summary(bench_run, tmp_path, capsys):
    import shutil

    from textexplain.cli import main

    copy = tmp_path / "run"
    shutil.copytree(bench_run.parent, copy)
    (copy / "results" / "summary.json").unlink()
    assert main(["report", str(copy)]) == 2
    assert "has no summary.json" in capsys.readouterr().err


def test_a_local_run_says_base_value_and_a_clarify_run_names_clarify(bench_run):
    page = (bench_run / "report.html").read_text(encoding="utf-8")
    assert "base value (Clarify's)" in page  # engine "clarify"
    assert "Clarify's global_top_shap_text" in page
    summary = json.loads((bench_run / "summary.json").read_text())
    classes = json.loads((bench_run / "classes.json").read_text())
    check = {"k": 3, "records": 2, "mean_top_k_drop": 0.2, "mean_random_k_drop": 0.01, "top_beats_random": 1.0}
    local = report.render({**summary, "engine": report.LOCAL_ENGINE, "faithfulness": check}, classes, [])
    assert "Clarify" not in local.split('<script type="application/json"')[0].replace("Clarify-compatible", "")
    assert "base value" in local
    assert "<td>engine</td><td>local (Clarify-compatible)</td>" in local

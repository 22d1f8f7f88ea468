"""The report opened in real headless Chromium (driven over the DevTools protocol, bench/chromium.py): it renders
with no console error, injected markup never runs, every control does what it says with real mouse events, the
figures on screen are the run's files', and docs/report.png is the current report's."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from bench.bench_report import build_run
from bench.chromium import BINARY, Chromium
from explain_workflow import report
from explain_workflow.postprocess import postprocess_run
from explain_workflow.storage import read_bytes
from tests.support.clarify_output import write_clarify_output
from tests.support.report_checks import hostile_inputs, lines, recomputed

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(BINARY is None, reason="chromium is not installed (scripts/ensure-system-packages.sh)"),
]


@pytest.fixture(scope="module")
def browser():
    with Chromium() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    """results/ of a finished run of 120 generated records with a label column (about 1 in 5 misclassified)."""
    return build_run(tmp_path_factory.mktemp("run"), 120)


def opened(browser, path: Path):
    page = browser.page(width=1200, height=900)
    page.open(path.as_uri())
    page.wait_for("document.documentElement.dataset.ready")
    return page


def click(page, selector: str) -> None:
    """A real mouse click at the middle of the element (scrolled into view first)."""
    box = page.js(
        f"(e => {{ e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect();"
        f" return [r.x + r.width / 2, r.y + r.height / 2]; }})(document.querySelector({json.dumps(selector)}))"
    )
    for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
        page.call("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1], "button": "left",
                                               "clickCount": 1})  # fmt: skip


def choose(page, selector: str, value: str) -> None:
    """Pick an option of a <select> as a user does (focus, the value, one change event)."""
    page.js(
        f"(s => {{ s.focus(); s.value = {json.dumps(value)}; s.dispatchEvent(new Event('change')); }})"
        f"(document.querySelector({json.dumps(selector)}))"
    )


def type_into(page, selector: str, text: str) -> None:
    """Replace an input's text by typing it (real key events)."""
    click(page, selector)
    page.js(f"document.querySelector({json.dumps(selector)}).select()")
    page.call("Input.insertText", {"text": text})


def signed(q: int) -> str:
    """How the report writes a value held as q / 10,000 (JavaScript's toFixed(4), a + before a positive one)."""
    return ("+" if q > 0 else "") + f"{q / 10_000:.4f}"


def shown_rows(page) -> list[str]:
    return page.js("[...document.querySelectorAll('#records .record')].map(e => e.dataset.row)")


def count_text(page) -> str:
    return page.js("document.getElementById('count').textContent")


def test_report_renders_and_escapes(browser, tmp_path, storage, settings, prepared):
    layout, run = prepared
    write_clarify_output(storage, layout, run)
    postprocess_run(storage, layout.run_id, settings)
    path = tmp_path / "report.html"
    path.write_bytes(read_bytes(storage, layout.bucket, layout.results_prefix + "report.html"))
    page = opened(browser, path)
    assert page.js("document.title").startswith("Explanations")  # the injected script never ran
    texts = page.js("[...document.querySelectorAll('#records .text')].map(e => e.textContent)")
    assert texts == run.texts  # markup in a text shows as text
    assert page.js("document.querySelectorAll('#records b, #records script').length") == 0
    assert page.js("document.querySelectorAll('svg.bars').length") >= 3
    assert page.js("document.querySelectorAll('.tok').length") == sum(len(e.units) for e in run.explanations)
    assert page.js("[...document.querySelectorAll('.tok')].every(t => t.style.background.startsWith('rgba('))")
    choose(page, "#f-class", "-2")  # "(prediction missing)": every record here has its prediction
    assert shown_rows(page) == []
    assert count_text(page) == "records 0–0 of 0 matching (3 in this report)"
    assert page.errors() == []


def test_records_without_a_prediction_say_so_and_are_their_own_filter(browser, tmp_path, storage, settings, prepared):
    layout, run = prepared
    write_clarify_output(storage, layout, run, predictions=False)
    postprocess_run(storage, layout.run_id, settings)
    path = tmp_path / "report.html"
    path.write_bytes(read_bytes(storage, layout.bucket, layout.results_prefix + "report.html"))
    page = opened(browser, path)
    heads = page.js("[...document.querySelectorAll('#records .record .head')].map(e => e.textContent)")
    assert all("prediction missing (the model gave no answer for this row)" in h for h in heads)
    assert len(heads) == 3
    captions = page.js("[...document.querySelectorAll('#records .caption')].map(e => e.textContent)")
    assert all("model probability missing" in c for c in captions)
    choose(page, "#f-class", "-2")
    assert len(shown_rows(page)) == 3
    choose(page, "#f-class", "0")
    assert shown_rows(page) == []
    assert page.errors() == []


def test_hostile_values_in_every_field_stay_text(browser, tmp_path):
    path = tmp_path / "hostile.html"
    path.write_text(report.render(*hostile_inputs()), encoding="utf-8")
    page = opened(browser, path)
    assert page.js("document.querySelectorAll('x-evil, #pwn').length") == 0
    assert page.js("typeof window.pwned") == "undefined"
    assert page.js("document.querySelector('#records .record').dataset.row") == hostile_inputs()[2][0]["row_id"]
    assert page.errors() == []


def test_every_control_does_what_it_says(browser, labelled):
    records = lines(labelled / "records.jsonl")
    labels = json.loads((labelled / "summary.json").read_text())["labels"]
    page = opened(browser, labelled / "report.html")
    n = len(records)
    assert shown_rows(page) == [str(r["row_id"]) for r in records[:20]]
    assert count_text(page) == f"records 1–20 of {n} matching ({n} in this report)"

    # the class-ranking switch: one view at a time
    visible = "[...document.querySelectorAll('{}')].filter(e => e.offsetParent !== null).length"
    assert (page.js(visible.format(".v-pred")), page.js(visible.format(".v-all"))) == (len(labels), 0)
    click(page, "input[name=view][value=all]")
    assert (page.js(visible.format(".v-pred")), page.js(visible.format(".v-all"))) == (0, len(labels))
    click(page, "input[name=view][value=predicted]")
    assert page.js(visible.format(".v-all")) == 0

    # paging
    click(page, "#next")
    assert shown_rows(page) == [str(r["row_id"]) for r in records[20:40]]
    click(page, "#prev")
    assert shown_rows(page)[0] == str(records[0]["row_id"])

    # filter by predicted class
    c = labels.index(records[0]["predicted_label"])
    choose(page, "#f-class", str(c))
    expected = [str(r["row_id"]) for r in records if r["predicted_label"] == labels[c]]
    assert shown_rows(page) == expected[:20]
    assert count_text(page).startswith(f"records 1–{min(20, len(expected))} of {len(expected)} matching")
    choose(page, "#f-class", "-1")

    # filter by confidence (typed), then sort by it
    type_into(page, "#f-lo", "0.6")
    confident = [r for r in records if round(r["probabilities"][r["predicted_label"]], 4) >= 0.6]
    assert count_text(page).split(" of ")[1].startswith(f"{len(confident)} matching")
    type_into(page, "#f-hi", "0.9")
    between = [r for r in confident if round(r["probabilities"][r["predicted_label"]], 4) <= 0.9]
    assert count_text(page).split(" of ")[1].startswith(f"{len(between)} matching")
    choose(page, "#f-sort", "conf-desc")
    ordered = sorted(between, key=lambda r: -round(r["probabilities"][r["predicted_label"]], 4))
    assert shown_rows(page) == [str(r["row_id"]) for r in ordered[:20]]
    choose(page, "#f-sort", "conf-asc")
    assert shown_rows(page)[0] == str(ordered[-1]["row_id"])
    type_into(page, "#f-lo", "0")
    type_into(page, "#f-hi", "1")
    choose(page, "#f-sort", "row")

    # misclassified only
    click(page, "#f-wrong")
    wrong = [str(r["row_id"]) for r in records if r["label"] != r["predicted_label"]]
    assert shown_rows(page) == wrong[:20]
    click(page, "#f-wrong")

    # "show record" in the misclassified section shows that one record; "show all records" undoes it
    first_wrong = page.js("document.querySelector('button.show-row').dataset.row")
    click(page, "button.show-row")
    assert shown_rows(page) == [first_wrong]
    click(page, "#clear-row")
    assert len(shown_rows(page)) == 20

    # a record's class switch: units recoloured and their values (on hover) for the chosen class, a new force bar
    record = records[0]
    other = (labels.index(record["predicted_label"]) + 1) % len(labels)
    choose(page, "#records .record select.explain", str(other))
    titles = page.js("[...document.querySelector('#records .record').querySelectorAll('.tok')].map(t => t.title)")
    assert titles == [f"{u['text']}: {signed(round(u['attributions'][other] * 10_000))}" for u in record["units"]]
    caption = page.js("document.querySelector('#records .record .caption').textContent")
    assert caption.endswith(f"for {labels[other]}")
    base = json.loads((labelled / "classes.json").read_text())[labels[other]]["expected_value"]
    assert caption.startswith(f"base value (Clarify's) {base:.4f} + contributions of {len(record['units'])} units")
    nonzero = sum(1 for u in record["units"] if round(u["attributions"][other] * 10_000))
    assert page.js("document.querySelector('#records .record').querySelectorAll('rect.seg').length") == nonzero

    # hover: the pointer over a unit is over the element that carries its value
    click(page, "#records .record .tok")
    assert page.js("document.querySelector('#records .record .tok').matches(':hover')")
    assert page.errors() == []


def test_a_labelled_run_shows_the_confusion_matrix_and_misclassified_records_as_recomputed(browser, labelled):
    records = lines(labelled / "records.jsonl")
    truth = {line["row_id"]: line["label"] for line in lines(labelled.parent / "labels" / "labels.jsonl")}
    labels = json.loads((labelled / "summary.json").read_text())["labels"]
    again = recomputed(records, truth, labels)
    page = opened(browser, labelled / "report.html")
    matrix = page.js(
        "[...document.querySelectorAll('#confusion tr')].slice(1).map(r => [...r.querySelectorAll('td')]"
        ".map(c => +c.textContent))"
    )
    assert matrix == again["matrix"]
    names = page.js(
        "[...document.querySelectorAll('#confusion tr')].slice(1).map(r => r.querySelector('th').textContent)"
    )
    assert names == again["rows"]
    items = page.js("[...document.querySelectorAll('.wrong')].map(w => [w.dataset.row, w.innerText])")
    assert [int(row) for row, _ in items] == [w[0] for w in again["wrong"]][: report.MISCLASSIFIED_SHOWN]
    for (_, text), (_, label, predicted, towards, away) in zip(items, again["wrong"], strict=False):
        assert f"label {label}" in text
        assert f"predicted {predicted}" in text
        assert all(unit in text for unit in towards + away)
    accuracy = page.js("document.getElementById('evaluation').nextElementSibling.querySelector('b').textContent")
    assert accuracy == f"{again['correct'] / again['evaluated']:.1%}"
    assert page.errors() == []


def test_a_report_of_1000_records_renders_its_first_page_without_errors(browser, tmp_path):
    """Its speed is the benchmark's (python -m bench report); here: it loads whole and works."""
    results = build_run(tmp_path, 1000)
    size = (results / "report.html").stat().st_size
    assert size <= report.REPORT_MAX_BYTES
    page = opened(browser, results / "report.html")
    assert count_text(page) == "records 1–20 of 1000 matching (1000 in this report)"
    click(page, "#next")
    assert shown_rows(page)[0] == "21"
    assert page.errors() == []


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_the_documented_screenshots_are_the_current_reports(tmp_path):
    """docs/report.png and docs/report-records.png are made by `python -m bench.screenshot docs`. A PNG of a page
    cannot be compared pixel for pixel across Chromium builds and fonts, so "current" means: each committed PNG
    carries the fingerprint of the report code that rendered it (report.py's sha256, in a tEXt chunk), that
    fingerprint is today's, and the command still runs and makes PNGs of the same size."""
    from bench import screenshot

    for name in screenshot.SHOTS:
        assert screenshot.fingerprint_of(ROOT / "docs" / name) == screenshot.current_fingerprint(), (
            f"docs/{name} was made by another version of explain_workflow/report.py: python -m bench.screenshot docs"
        )
    done = subprocess.run([sys.executable, "-m", "bench.screenshot", str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    for name in screenshot.SHOTS:
        assert png_size(tmp_path / name) == png_size(ROOT / "docs" / name) == screenshot.SIZE
        assert screenshot.fingerprint_of(tmp_path / name) == screenshot.current_fingerprint()

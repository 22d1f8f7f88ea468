"""The self-contained HTML report: summary, per-class token bar charts, highlighted records.

Everything is inline (CSS, SVG, a few lines of script to switch the explained class), so the file
opens offline or straight from S3. Every piece of user text goes through ``html.escape``.
"""

from __future__ import annotations

import html

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#222;max-width:70rem}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem}
table.summary td{padding:.15rem .8rem .15rem 0}
.classes{display:flex;flex-wrap:wrap;gap:1rem}
.class{border:1px solid #ddd;border-radius:6px;padding:.5rem;width:22rem}
.class h3{margin:.2rem 0;font-size:1rem}
.record{border-top:1px solid #eee;padding:.6rem 0}
.meta{color:#666;font-size:12px}
.tok{border-radius:3px;padding:0 1px}
.note{background:#fff8e1;border:1px solid #f0d68a;padding:.4rem .6rem;border-radius:4px}
"""

# Recolours every highlighted unit for the chosen class: red pushes towards it, blue away.
_SCRIPT = """
function paint(rec, k){
  var toks = rec.querySelectorAll('.tok'), max = 1e-9;
  toks.forEach(function(t){ max = Math.max(max, Math.abs(+t.dataset.a.split(',')[k])); });
  toks.forEach(function(t){
    var v = +t.dataset.a.split(',')[k], a = Math.min(1, Math.abs(v) / max) * 0.85;
    t.style.background = v >= 0 ? 'rgba(214,39,40,' + a + ')' : 'rgba(31,119,180,' + a + ')';
    t.title = v.toFixed(4);
  });
}
document.querySelectorAll('.record').forEach(function(rec){
  var sel = rec.querySelector('select');
  paint(rec, +sel.value);
  sel.addEventListener('change', function(){ paint(rec, +sel.value); });
});
"""


def _bars(rows: list[dict], colour: str, width: int = 330) -> str:
    """A horizontal SVG bar chart of tokens' mean attribution per occurrence, with their counts."""
    if not rows:
        return '<p class="meta">no token with enough occurrences</p>'
    peak = max(abs(r["mean"]) for r in rows) or 1.0
    height = 16
    parts = [f'<svg class="bars" width="{width}" height="{height * len(rows) + 4}" role="img">']
    for i, r in enumerate(rows):
        y = i * height + 2
        length = max(1.0, abs(r["mean"]) / peak * (width - 170))
        parts.append(
            f'<text x="0" y="{y + 11}" font-size="11">{html.escape(r["token"][:18])}</text>'
            f'<text x="118" y="{y + 11}" font-size="10" fill="#666">n={r["count"]}</text>'
            f'<rect x="160" y="{y}" width="{length:.1f}" height="{height - 4}" fill="{colour}">'
            f"<title>mean {r['mean']:.4f} per occurrence, n={r['count']}</title></rect>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _view(label: str, view: dict, heading: str) -> str:
    escaped = html.escape(label)
    return (
        f'<div class="meta">{heading} ({view["records"]} records; tokens seen at least {view["min_support"]} '
        "times, by mean attribution per occurrence)</div>"
        f"<div>towards {escaped}</div>{_bars(view['top_positive_tokens'][:10], '#d62728')}"
        f"<div>away from {escaped}</div>{_bars(view['top_negative_tokens'][:10], '#1f77b4')}"
    )


def _clarify_top(tokens_by_feature: dict) -> str:
    merged: dict[str, float] = {}
    for tokens in tokens_by_feature.values():
        merged.update(tokens)
    top = sorted(merged.items(), key=lambda kv: -kv[1])[:10]
    if not top:
        return '<p class="meta">none</p>'
    return '<p class="meta">' + ", ".join(f"{html.escape(t)} {v:.3g}" for t, v in top) + "</p>"


def _card(label: str, info: dict) -> str:
    if "predicted_as_this_class" in info:
        views = _view(label, info["predicted_as_this_class"], f"records the model predicted as {html.escape(label)}")
        views += _view(label, info["all_records"], "all records")
    else:  # classes.json of an earlier version: one view, ranked by summed attribution
        views = (
            '<div class="meta">all records, ranked by summed attribution (an earlier version\'s summary)</div>'
            f"<div>towards {html.escape(label)}</div>{_bars(info.get('top_positive_tokens', [])[:10], '#d62728')}"
            f"<div>away from {html.escape(label)}</div>{_bars(info.get('top_negative_tokens', [])[:10], '#1f77b4')}"
        )
    return (
        f'<div class="class"><h3>{html.escape(label)}</h3>'
        f'<div class="meta">Clarify expected value {info["expected_value"]:.4f}</div>'
        + views
        + '<div class="meta">Clarify\'s global_top_shap_text</div>'
        + _clarify_top(info.get("clarify_global_top_shap_text", {}))
        + "</div>"
    )


def _highlighted(record: dict) -> str:
    """The record's text with each explained unit wrapped in a span carrying its attributions."""
    text = record["text"]
    out, cursor = [], 0
    for unit in sorted((u for u in record["units"] if u["aligned"]), key=lambda u: u["start_idx"]):
        start, end = unit["start_idx"], unit["start_idx"] + len(unit["text"])
        if start < cursor:
            continue  # overlapping units cannot both be highlighted
        values = ",".join(f"{v:.4g}" for v in unit["attributions"])
        out.append(html.escape(text[cursor:start]))
        out.append(f'<span class="tok" data-a="{html.escape(values)}">{html.escape(text[start:end])}</span>')
        cursor = end
    out.append(html.escape(text[cursor:]))
    return "".join(out).replace("\n", "<br>")


def _record(record: dict, labels: list[str]) -> str:
    label = record.get("predicted_label")
    shown = labels.index(label) if label in labels else 0
    options = "".join(
        f'<option value="{i}"{" selected" if i == shown else ""}>{html.escape(name)}</option>'
        for i, name in enumerate(labels)
    )
    if label is None or record.get("probabilities") is None:
        prediction = "<b>prediction missing</b> (the model gave no answer for this row)"
    else:
        p = record["probabilities"][label]
        prediction = f"predicted <b>{html.escape(label)}</b> (model probability {p:.3f})"
    return (
        f'<div class="record" id="row-{record["row_id"]}">'
        f'<div class="meta">row {record["row_id"]} · {prediction} · explain class <select>{options}</select></div>'
        f'<div class="text">{_highlighted(record)}</div></div>'
    )


def render(summary: dict, classes: dict, records: list[dict]) -> str:
    labels = summary["labels"]
    cards = "".join(_card(label, info) for label, info in classes.items())
    counts = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in summary["predicted_counts"].items())
    note = ""
    if summary["records_in_report"] < summary["rows"]:
        note = (
            f'<p class="note">This report shows the first {summary["records_in_report"]} of {summary["rows"]} '
            "records; every record is in results/records.jsonl.</p>"
        )
    if summary["misaligned_units"]:
        note += (
            f'<p class="note">{summary["misaligned_units"]} explained units were not found at their start_idx in '
            "the input text and are not highlighted.</p>"
        )
    missing = (summary.get("missing") or {}).get("predictions")
    if missing:
        note += (
            f'<p class="note">The model\'s prediction is missing for {missing["rows"]} of {summary["rows"]} records '
            f"({html.escape(missing['reason'])}); they show no predicted class.</p>"
        )
    gap = (summary.get("quality") or {}).get("additivity_gap") or {}
    if gap.get("records"):
        note += (
            f'<p class="meta">Derived quality figure: expected value + sum of attributions differs from the '
            f"model's probability by {gap['mean']:.3f} on average (95th percentile {gap['p95']:.3f}, "
            f"max {gap['max']:.3f}).</p>"
        )
    check = summary.get("faithfulness")
    if check and check.get("records"):
        note += (
            f"<h2>Faithfulness</h2><p>Deleting each record's top {check['k']} units for its predicted class lowers "
            f"that class's probability by {check['mean_top_k_drop']:.3f} on average; deleting {check['k']} random "
            f"units lowers it by {check['mean_random_k_drop']:.3f}. Top units beat random ones in "
            f"{check['top_beats_random']:.0%} of {check['records']} records.</p>"
        )
    body = "".join(_record(r, labels) for r in records)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Explanations · {html.escape(summary['run_id'])}</title><style>{_CSS}</style></head><body>"
        f'<h1>Text explanations</h1><table class="summary"><tr><td>run</td><td>{html.escape(summary["run_id"])}'
        f"</td></tr><tr><td>records</td><td>{summary['rows']}</td></tr></table>"
        f'<h2>Predicted classes</h2><table class="summary">{counts}</table>'
        f'<h2>Tokens that matter, per class</h2><div class="classes">{cards}</div>'
        f'<h2>Records</h2>{note}<p class="meta">Red units push towards the chosen class, blue away from it; '
        f"hover for the value.</p>{body}<script>{_SCRIPT}</script></body></html>"
    )

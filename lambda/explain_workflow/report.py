"""The self-contained HTML report: a summary first, then how the model did against the labels (when a label column
was named), per class the tokens that matter, and per record the text plot and force bar.

One file, nothing fetched: inline CSS, server-rendered SVG for the summary charts, and the records as one JSON block
that a short script renders a page at a time (so a 1,000-record report is interactive at once). Every value from a
run's files is escaped: ``html.escape`` in the markup, ``_json_block`` (no ``<``, ``>`` or ``&`` left) for the data,
and the script writes text only through ``textContent`` and attributes.

Bounded: at most REPORT_MAX_RECORDS records and REPORT_MAX_BYTES bytes in all; records that do not fit are left out,
said so in the report, and are all in results/records.jsonl. Attributions and probabilities in the data block are
rounded to 4 decimals (integers in units of 1e-4); records.jsonl keeps them exact.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

SUMMARY_FILE = "summary.json"  # under results/: what postprocess rendered the report from
REPORT_MAX_RECORDS = 1000
REPORT_MAX_BYTES = 5_000_000
MISCLASSIFIED_SHOWN = 50  # the rest are in results/evaluation.json
SCALE = 10_000  # data-block numbers are integers in units of 1 / SCALE
LOCAL_ENGINE = "local (Clarify-compatible)"

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5rem 2rem;color:#222;max-width:76rem}
h1{font-size:1.45rem;margin:.2rem 0 .6rem}h2{font-size:1.15rem;margin:1.6rem 0 .5rem;border-bottom:1px solid #ddd}
table.kv td{padding:.1rem .9rem .1rem 0;vertical-align:top}table.kv td:first-child{color:#555;white-space:nowrap}
.top{display:flex;flex-wrap:wrap;gap:1.5rem;align-items:flex-start}#summary{max-width:40rem}
.classes{display:flex;flex-wrap:wrap;gap:.8rem}
.class{border:1px solid #ddd;border-radius:6px;padding:.5rem;width:23rem}
.class h3{margin:.1rem 0;font-size:1rem}
.meta{color:#666;font-size:12px}
.note{background:#fff8e1;border:1px solid #f0d68a;padding:.35rem .6rem;border-radius:4px}
body:not([data-view=all]) .v-all{display:none}body[data-view=all] .v-pred{display:none}
table.cm{border-collapse:collapse;font-size:12px}table.cm td,table.cm th{border:1px solid #ddd;padding:2px 6px;
text-align:right}table.cm th{background:#f6f6f6;font-weight:600}table.cm td.d{outline:2px solid #2ca02c}
table.cm th.col{writing-mode:vertical-rl;transform:rotate(180deg);text-align:left;padding:4px 2px}
.scroll{overflow-x:auto}
.wrong{border-top:1px solid #eee;padding:.4rem 0}
.controls{display:flex;flex-wrap:wrap;gap:.4rem 1rem;align-items:center;margin:.4rem 0;font-size:13px}
.controls input[type=number]{width:4.5rem}
.record{border-top:1px solid #eee;padding:.6rem 0}
.text{white-space:pre-wrap}.tok{border-radius:3px;padding:0 1px}
svg.force{width:100%;height:64px;display:block;margin-top:.3rem}
.pager{margin:.6rem 0}
"""

# Renders the records of the data block a page at a time; every value goes in as text, never as markup.
_SCRIPT = r"""
(function(){
var D = JSON.parse(document.getElementById('report-data').textContent), S = D.scale, K = D.labels.length;
var R = D.records, PAGE = 20, st = {cls: -1, lo: 0, hi: 1, sort: 'row', wrong: false, page: 0, row: null};
var NS = 'http://www.w3.org/2000/svg';
function el(tag, attrs, text){ var e = document.createElement(tag);
  for (var k in attrs) e.setAttribute(k, attrs[k]); if (text != null) e.textContent = text; return e; }
function sv(tag, attrs, text){ var e = document.createElementNS(NS, tag);
  for (var k in attrs) e.setAttribute(k, attrs[k]); if (text != null) e.textContent = text; return e; }
function f4(v){ return (v / S).toFixed(4); }
function sign(v){ return (v > 0 ? '+' : '') + f4(v); }
function conf(r){ return r.p < 0 ? -1 : r.q[r.p]; }
function wrong(r){ return r.y != null && r.y >= 0 && r.p >= 0 && r.y !== r.p; }
function unitText(r, i){ var u = r.u[i]; return u[0] < 0 ? u[2] : r.t.slice(u[0], u[1]); }
function paint(card, r, k){
  var text = card.querySelector('.text'), max = 1e-9, n = r.u.length, i;
  for (i = 0; i < n; i++) max = Math.max(max, Math.abs(r.a[i * K + k]));
  text.textContent = '';
  var cursor = 0, order = [];
  for (i = 0; i < n; i++) if (r.u[i][0] >= 0) order.push(i);
  order.sort(function(x, y){ return r.u[x][0] - r.u[y][0]; });
  order.forEach(function(i){
    var u = r.u[i], v = r.a[i * K + k], a = Math.min(1, Math.abs(v) / max) * 0.85;
    if (u[0] > cursor) text.appendChild(document.createTextNode(r.t.slice(cursor, u[0])));
    var s = el('span', {'class': 'tok', 'title': unitText(r, i) + ': ' + sign(v), 'data-v': f4(v)},
      r.t.slice(u[0], u[1]));
    s.style.background = v >= 0 ? 'rgba(214,39,40,' + a.toFixed(3) + ')' : 'rgba(31,119,180,' + a.toFixed(3) + ')';
    text.appendChild(s); cursor = u[1];
  });
  if (cursor < r.t.length) text.appendChild(document.createTextNode(r.t.slice(cursor)));
  force(card, r, k);
}
function force(card, r, k){
  var box = card.querySelector('.forcebox'), base = D.base[k], pos = [], neg = [], P = 0, N = 0, i;
  box.textContent = '';
  for (i = 0; i < r.u.length; i++){ var v = r.a[i * K + k] / S;
    if (v > 0){ pos.push([v, i]); P += v; } else if (v < 0){ neg.push([-v, i]); N -= v; } }
  var meet = base + P - N, lo = Math.min(0, base - N), hi = Math.max(1, base + P);
  var W = 1000, x = function(p){ return 10 + (p - lo) / (hi - lo) * (W - 20); };
  var svg = sv('svg', {'class': 'force', 'viewBox': '0 0 ' + W + ' 64', 'preserveAspectRatio': 'none',
    'role': 'img'});
  svg.appendChild(sv('line', {x1: x(lo), x2: x(hi), y1: 40, y2: 40, stroke: '#bbb'}));
  pos.sort(function(a, b){ return a[0] - b[0]; }); neg.sort(function(a, b){ return a[0] - b[0]; });
  var at = meet - P;
  pos.forEach(function(s){ seg(svg, x(at), x(at + s[0]), '#d62728', r, s[1], k); at += s[0]; });
  at = meet + N;
  neg.forEach(function(s){ seg(svg, x(at - s[0]), x(at), '#1f77b4', r, s[1], k); at -= s[0]; });
  mark(svg, x(base), '#444', 'base value ' + base.toFixed(4), 10);
  if (r.p >= 0) mark(svg, x(r.q[k] / S), '#000', 'model ' + f4(r.q[k]), 62);
  box.appendChild(svg);
  var cap = el('div', {'class': 'meta caption'});
  cap.textContent = D.baseName + ' ' + base.toFixed(4) + ' + contributions of ' + r.u.length + ' units ' +
    (P - N >= 0 ? '+' : '') + (P - N).toFixed(4) + ' = ' + meet.toFixed(4) +
    (r.p >= 0 ? '; model probability ' + f4(r.q[k]) + ' (difference ' + Math.abs(meet - r.q[k] / S).toFixed(4) +
    ', derived)' : '; model probability missing') + ' for ' + D.labels[k];
  box.appendChild(cap);
}
function seg(svg, x0, x1, colour, r, i, k){
  var g = sv('rect', {x: x0.toFixed(1), y: 26, width: Math.max(0.5, x1 - x0).toFixed(1), height: 28,
    fill: colour, stroke: '#fff', 'stroke-width': 1, 'class': 'seg'});
  g.appendChild(sv('title', {}, unitText(r, i) + ': ' + sign(r.a[i * K + k])));
  svg.appendChild(g);
  if (x1 - x0 > 60) svg.appendChild(sv('text', {x: ((x0 + x1) / 2).toFixed(1), y: 45, 'font-size': 12,
    'text-anchor': 'middle', fill: '#fff'}, unitText(r, i).slice(0, 12)));
}
function mark(svg, px, colour, label, y){
  svg.appendChild(sv('line', {x1: px, x2: px, y1: 20, y2: 58, stroke: colour, 'stroke-width': 2}));
  svg.appendChild(sv('text', {x: Math.min(Math.max(px, 60), 940), y: y > 30 ? 63 : 14, 'font-size': 11,
    'text-anchor': 'middle', fill: colour}, label));
}
function card(r){
  var c = el('div', {'class': 'record', 'data-row': String(r.r)}), m = el('div', {'class': 'meta head'});
  var head = 'row ' + r.r + ' · ';
  head += r.p < 0 ? 'prediction missing (the model gave no answer for this row)' :
    'predicted ' + D.labels[r.p] + ' (model probability ' + (r.q[r.p] / S).toFixed(3) + ')';
  if (r.y != null) head += r.y < 0 ? ' · no label' :
    ' · label ' + D.truth[r.y] + (wrong(r) ? ' ✗' : (r.p >= 0 ? ' ✓' : ''));
  m.appendChild(document.createTextNode(head + ' · explain class '));
  var sel = el('select', {'class': 'explain'});
  D.labels.forEach(function(name, i){ var o = el('option', {value: i}, name); sel.appendChild(o); });
  var shown = r.p >= 0 ? r.p : 0; sel.value = String(shown);
  m.appendChild(sel); c.appendChild(m);
  c.appendChild(el('div', {'class': 'text'})); c.appendChild(el('div', {'class': 'forcebox'}));
  sel.addEventListener('change', function(){ paint(c, r, +sel.value); });
  paint(c, r, shown);
  return c;
}
function chosen(){
  var out = [];
  for (var i = 0; i < R.length; i++){ var r = R[i], c = conf(r) / S;
    if (st.row !== null){ if (String(r.r) === st.row) out.push(r); continue; }
    if (st.cls >= 0 && r.p !== st.cls) continue;
    if (st.cls === -2 && r.p >= 0) continue;
    if (r.p >= 0 && (c < st.lo || c > st.hi)) continue;
    if (st.wrong && !wrong(r)) continue;
    out.push(r); }
  if (st.sort === 'conf-desc') out.sort(function(a, b){ return conf(b) - conf(a); });
  if (st.sort === 'conf-asc') out.sort(function(a, b){ return conf(a) - conf(b); });
  return out;
}
function show(){
  var list = chosen(), box = document.getElementById('records'), pages = Math.max(1, Math.ceil(list.length / PAGE));
  st.page = Math.min(st.page, pages - 1);
  box.textContent = '';
  var frag = document.createDocumentFragment();
  list.slice(st.page * PAGE, st.page * PAGE + PAGE).forEach(function(r){ frag.appendChild(card(r)); });
  box.appendChild(frag);
  var from = list.length ? st.page * PAGE + 1 : 0, to = Math.min(list.length, st.page * PAGE + PAGE);
  document.getElementById('count').textContent = 'records ' + from + '–' + to + ' of ' + list.length +
    ' matching (' + R.length + ' in this report)';
  document.getElementById('prev').disabled = st.page === 0;
  document.getElementById('next').disabled = st.page >= pages - 1;
  document.getElementById('clear-row').hidden = st.row === null;
}
function on(id, ev, fn){ var e = document.getElementById(id); if (e) e.addEventListener(ev, fn); return e; }
on('f-class', 'change', function(e){ st.cls = +e.target.value; st.page = 0; st.row = null; show(); });
on('f-lo', 'input', function(e){ st.lo = e.target.value === '' ? 0 : +e.target.value; st.page = 0; show(); });
on('f-hi', 'input', function(e){ st.hi = e.target.value === '' ? 1 : +e.target.value; st.page = 0; show(); });
on('f-sort', 'change', function(e){ st.sort = e.target.value; st.page = 0; show(); });
on('f-wrong', 'change', function(e){ st.wrong = e.target.checked; st.page = 0; st.row = null; show(); });
on('prev', 'click', function(){ st.page -= 1; show(); });
on('next', 'click', function(){ st.page += 1; show(); });
on('clear-row', 'click', function(){ st.row = null; show(); });
document.querySelectorAll('input[name=view]').forEach(function(e){
  e.addEventListener('change', function(){ document.body.dataset.view = e.value; }); });
document.querySelectorAll('button.show-row').forEach(function(b){
  b.addEventListener('click', function(){ st.row = b.dataset.row; st.page = 0; show();
    document.getElementById('records-h').scrollIntoView(); }); });
show();
document.documentElement.dataset.ready = performance.now().toFixed(1);
})();
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _num(value, spec: str) -> str:
    """A number in ``spec``; anything else (a tampered file) shown as escaped text, never as markup."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return format(value, spec)
    return _e(value)


def _json_block(value) -> str:
    """JSON safe inside <script type="application/json">: no character that could end the element or open one."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _q(value: float) -> int:
    return round(value * SCALE)


def is_local(summary: dict) -> bool:
    return summary.get("engine") == LOCAL_ENGINE


def base_name(summary: dict) -> str:
    """What the explainer's starting point is called: it is Clarify's own figure only when Clarify ran."""
    return "base value" if is_local(summary) or summary.get("engine") == "builtin" else "base value (Clarify's)"


# ---- summary ----


def _model_text(identity) -> str:
    if not isinstance(identity, dict) or not identity:
        return "not recorded"
    parts = []
    for key, value in identity.items():
        if key == "labels":
            value = f"{len(value)} labels" if isinstance(value, list) else value
        elif isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
            value = value[:12] + "…"
        parts.append(f"{_e(key)} {_e(value if isinstance(value, str | int | float) else json.dumps(value))}")
    return "; ".join(parts)


def _faithfulness_text(check) -> str:
    if not check or not check.get("records"):
        return "not run (a Clarify job runs no deletion check; the local mode does)"
    return (
        f"deleting each record's top {_e(check['k'])} units for its predicted class lowers that class's probability "
        f"by {_num(check['mean_top_k_drop'], '.3f')} on average; deleting {_e(check['k'])} random units lowers it by "
        f"{_num(check['mean_random_k_drop'], '.3f')}. Top units beat random ones in "
        f"{_num(check['top_beats_random'], '.0%')} of {_e(check['records'])} records."
    )


def _summary(summary: dict, evaluation: dict | None) -> str:
    missing = (summary.get("missing") or {}).get("predictions")
    rows = summary["rows"]
    explained = f"{_e(rows)} explained"
    if missing:
        explained += (
            f"; the model's prediction is missing for {_e(missing['rows'])} of {_e(rows)} records "
            f"({_e(missing['reason'])}): they show no predicted class"
        )
    else:
        explained += ", none missing"
    lines = [
        ("run", _e(summary["run_id"])),
        ("model", _model_text(summary.get("model"))),
        ("engine", _e(summary.get("engine", "clarify"))),
        ("records", explained),
        ("faithfulness check", _faithfulness_text(summary.get("faithfulness"))),
    ]
    if summary.get("misaligned_units"):
        lines.append(
            (
                "misaligned units",
                f"{_e(summary['misaligned_units'])} explained units were not found at their start_idx in the input "
                "text; they are not highlighted but count in the force bar",
            )
        )
    gap = (summary.get("quality") or {}).get("additivity_gap") or {}
    if gap.get("records"):
        lines.append(
            (
                "additivity gap (derived)",
                f"{base_name(summary)} + the sum of a record's attributions differs from the model's probability by "
                f"{_num(gap['mean'], '.3f')} on average (95th percentile {_num(gap['p95'], '.3f')}, max "
                f"{_num(gap['max'], '.3f')})",
            )
        )
    if evaluation:
        lines.append(
            (
                "accuracy (derived)",
                f"{_num(evaluation['accuracy'], '.1%')}: {_e(evaluation['correct'])} of {_e(evaluation['evaluated'])} "
                f"labelled records with a prediction (label column {_e(evaluation['label_column'])})",
            )
        )
    table = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in lines)
    return f'<table class="kv" id="summary">{table}</table>'


def _distribution(summary: dict) -> str:
    """Predicted classes as an SVG bar chart with counts and shares."""
    counts = dict(summary["predicted_counts"])
    missing = (summary.get("missing") or {}).get("predictions")
    if missing:
        counts["(prediction missing)"] = missing["rows"]
    values = [v if isinstance(v, int | float) and not isinstance(v, bool) else 0 for v in counts.values()]
    total, peak, height = sum(values) or 1, max(values, default=0) or 1, 18
    parts = [f'<svg class="dist" width="430" height="{height * len(counts) + 4}" role="img">']
    for i, ((label, shown), value) in enumerate(zip(counts.items(), values, strict=True)):
        y = i * height + 2
        parts.append(
            f'<g class="dist-row" data-label="{_e(label)}" data-count="{_e(shown)}">'
            f'<text x="0" y="{y + 12}" font-size="12">{_e(str(label)[:22])}</text>'
            f'<rect x="160" y="{y}" width="{max(1.0, value / peak * 200):.1f}" height="{height - 4}" fill="#6b8fb3">'
            f"<title>{_e(label)}: {_e(shown)} records</title></rect>"
            f'<text x="{166 + value / peak * 200:.1f}" y="{y + 12}" font-size="11" fill="#444">{_e(shown)} '
            f"({value / total:.0%})</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


# ---- evaluation ----


def _confusion(evaluation: dict) -> str:
    labels, truth, matrix = evaluation["predicted_labels"], evaluation["true_labels"], evaluation["confusion"]
    peak = max((v for row in matrix for v in row if isinstance(v, int)), default=0) or 1
    head = "".join(f'<th class="col">{_e(p)}</th>' for p in labels)
    rows = []
    for name, row in zip(truth, matrix, strict=True):
        cells = []
        for j, value in enumerate(row):
            shade = 0.6 * value / peak if isinstance(value, int) else 0
            diagonal = ' class="d"' if j < len(labels) and labels[j] == name else ""
            cells.append(f'<td{diagonal} style="background:rgba(107,143,179,{shade:.2f})">{_e(value)}</td>')
        rows.append(f"<tr><th>{_e(name)}</th>{''.join(cells)}</tr>")
    return (
        '<p class="meta">rows: label (from the label column); columns: the model\'s predicted class; each cell counts '
        'records (derived from records.jsonl and the labels)</p><div class="scroll"><table class="cm" id="confusion">'
        f"<tr><th>label \\ predicted</th>{head}</tr>{''.join(rows)}</table></div>"
    )


def _units_list(units: list[dict]) -> str:
    if not units:
        return '<span class="meta">none</span>'
    return ", ".join(f"<b>{_e(u['text'])}</b> {_num(u['attribution'], '+.4f')}" for u in units)


def _misclassified(evaluation: dict) -> str:
    wrong = evaluation["misclassified"]
    if not wrong:
        return "<p>No labelled record is misclassified.</p>"
    items = []
    for w in wrong[:MISCLASSIFIED_SHOWN]:
        items.append(
            f'<div class="wrong" data-row="{_e(w["row_id"])}"><div class="meta">row {_e(w["row_id"])} · label '
            f"<b>{_e(w['label'])}</b> (model probability {_num(w['label_probability'], '.3f')}) · predicted "
            f"<b>{_e(w['predicted'])}</b> ({_num(w['predicted_probability'], '.3f')}) "
            f'<button type="button" class="show-row" data-row="{_e(w["row_id"])}">show record</button></div>'
            f"<div>towards {_e(w['predicted'])}: {_units_list(w['towards_predicted'])}</div>"
            f"<div>away from {_e(w['label'])}: {_units_list(w['away_from_label'])}</div></div>"
        )
    more = ""
    if len(wrong) > MISCLASSIFIED_SHOWN:
        more = (
            f'<p class="meta">the first {MISCLASSIFIED_SHOWN} of {len(wrong)}; all are in results/evaluation.json</p>'
        )
    return "".join(items) + more


def _evaluation(evaluation: dict | None) -> str:
    if not evaluation:
        return ""
    unlabelled = evaluation.get("unlabelled", 0)
    note = f" {_e(unlabelled)} records have no label and count nowhere here." if unlabelled else ""
    no_prediction = evaluation.get("labelled_without_prediction", 0)
    if no_prediction:
        note += f" {_e(no_prediction)} labelled records have no prediction and count nowhere here."
    return (
        '<h2 id="evaluation">Against the labels</h2>'
        f"<p>Accuracy (derived) <b>{_num(evaluation['accuracy'], '.1%')}</b>: the model's predicted class equals the "
        f"label in {_e(evaluation['correct'])} of {_e(evaluation['evaluated'])} records.{note}</p>"
        f"{_confusion(evaluation)}"
        f'<h2 id="misclassified">Misclassified records ({_e(len(evaluation["misclassified"]))})</h2>'
        '<p class="meta">per record, the units with the largest attribution towards the predicted class and the most '
        "negative towards the label (Kernel SHAP values, from records.jsonl)</p>"
        f"{_misclassified(evaluation)}"
    )


# ---- classes ----


def _bars(rows: list[dict], colour: str, width: int = 360) -> str:
    """A horizontal SVG bar chart of tokens' mean attribution per occurrence, with their counts."""
    if not rows:
        return '<p class="meta">no token with enough occurrences</p>'
    means = [r["mean"] if isinstance(r["mean"], int | float) else 0.0 for r in rows]
    peak = max(abs(m) for m in means) or 1.0
    height = 16
    parts = [f'<svg class="bars" width="{width}" height="{height * len(rows) + 4}" role="img">']
    for i, (r, mean) in enumerate(zip(rows, means, strict=True)):
        y = i * height + 2
        length = max(1.0, abs(mean) / peak * (width - 215))
        parts.append(
            f'<g class="bar" data-token="{_e(r["token"])}" data-mean="{_num(r["mean"], ".6g")}" '
            f'data-count="{_e(r["count"])}"><text x="0" y="{y + 11}" font-size="11">{_e(str(r["token"])[:18])}</text>'
            f'<text x="118" y="{y + 11}" font-size="10" fill="#666">n={_e(r["count"])}</text>'
            f'<rect x="160" y="{y}" width="{length:.1f}" height="{height - 4}" fill="{colour}">'
            f"<title>mean {_num(r['mean'], '.4f')} per occurrence, n={_e(r['count'])}</title></rect>"
            f'<text x="{164 + length:.1f}" y="{y + 11}" font-size="10" fill="#444">{_num(r["mean"], "+.4f")}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _view(label: str, view: dict, which: str, heading: str) -> str:
    escaped = _e(label)
    return (
        f'<div class="{which}"><div class="meta">{heading}: {_e(view["records"])} records; tokens with at least '
        f"{_e(view['min_support'])} occurrences (min support), ranked by mean attribution per occurrence (derived "
        "from records.jsonl)</div>"
        f"<div>towards {escaped}</div>{_bars(view['top_positive_tokens'][:10], '#d62728')}"
        f"<div>away from {escaped}</div>{_bars(view['top_negative_tokens'][:10], '#1f77b4')}</div>"
    )


def _clarify_top(tokens_by_feature: dict, local: bool) -> str:
    merged: dict[str, float] = {}
    for tokens in tokens_by_feature.values():
        merged.update(tokens)
    top = sorted(merged.items(), key=lambda kv: -kv[1] if isinstance(kv[1], int | float) else 0)[:10]
    source = "the explainer's global_top_shap_text" if local else "Clarify's global_top_shap_text"
    shown = ", ".join(f"{_e(t)} {_num(v, '.3g')}" for t, v in top) if top else "none"
    return f'<div class="meta">{source}: {shown}</div>'


def _card(label: str, info: dict, summary: dict) -> str:
    if "predicted_as_this_class" in info:
        views = _view(label, info["predicted_as_this_class"], "v-pred", f"records predicted as {_e(label)}")
        views += _view(label, info["all_records"], "v-all", "all records")
    else:  # classes.json of an earlier version: one view, ranked by summed attribution
        views = (
            '<div class="meta">all records, ranked by summed attribution (an earlier version\'s summary)</div>'
            f"<div>towards {_e(label)}</div>{_bars(info.get('top_positive_tokens', [])[:10], '#d62728')}"
            f"<div>away from {_e(label)}</div>{_bars(info.get('top_negative_tokens', [])[:10], '#1f77b4')}"
        )
    return (
        f'<div class="class" data-label="{_e(label)}"><h3>{_e(label)}</h3>'
        f'<div class="meta">{base_name(summary)} <span class="base">{_num(info["expected_value"], ".4f")}</span></div>'
        + views
        + _clarify_top(info.get("clarify_global_top_shap_text", {}), is_local(summary))
        + "</div>"
    )


def _classes(summary: dict, classes: dict) -> str:
    cards = "".join(_card(label, info, summary) for label, info in classes.items())
    return (
        '<h2 id="classes">Tokens that matter, per class</h2><div class="controls">ranking over '
        '<label><input type="radio" name="view" value="predicted" checked> the records predicted as the class</label>'
        '<label><input type="radio" name="view" value="all"> all records</label></div>'
        '<p class="meta">red: towards the class, blue: away from it; n is the token\'s occurrences in the view</p>'
        f'<div class="classes">{cards}</div>'
    )


# ---- records ----


def _utf16_offsets(text: str):
    """Python string offsets -> the JavaScript (UTF-16) offsets the script slices with."""
    if not text or max(text) < "\U00010000":
        return lambda i: i
    table, at = [0], 0
    for ch in text:
        at += 2 if ord(ch) > 0xFFFF else 1
        table.append(at)
    return table.__getitem__


def record_data(record: dict, labels: list[str], truth_names: list[str]) -> dict:
    """One record as the data block carries it (see the module doc for the rounding)."""
    text = record["text"]
    at = _utf16_offsets(text)
    units, values, cursor = [], [], -1
    for unit in sorted(record["units"], key=lambda u: u["start_idx"]):
        start, end = unit["start_idx"], unit["start_idx"] + len(unit["text"])
        if unit["aligned"] and start >= cursor:
            units.append([at(start), at(end)])
            cursor = end
        else:  # misaligned or overlapping: not highlighted, still a contribution
            units.append([-1, -1, unit["text"]])
        values.extend(_q(v) for v in unit["attributions"])
    label = record.get("predicted_label")
    probs = record.get("probabilities")
    data = {
        "r": record["row_id"],
        "t": text,
        "p": labels.index(label) if label in labels and probs is not None else -1,
        "q": [_q(probs[name]) for name in labels] if probs is not None else None,
        "u": units,
        "a": values,
    }
    if "label" in record:  # a run with a label column: the row's label, or None when its cell was empty
        name = record["label"]
        data["y"] = truth_names.index(name) if name in truth_names else -1
    return data


def _records(summary: dict, records: Iterable[dict], evaluation: dict | None, base: list, budget: int):
    """The data block (JSON) and how many records it holds: records in order while both bounds allow."""
    labels = summary["labels"]
    truth_names = (evaluation or {}).get("true_labels") or labels
    kept, size = [], 0
    for record in records:
        if len(kept) >= REPORT_MAX_RECORDS:
            break
        item = _json_block(record_data(record, labels, truth_names))
        if size + len(item.encode()) + 1 > budget:
            break
        kept.append(item)
        size += len(item.encode()) + 1
    head = {"labels": labels, "base": base, "baseName": base_name(summary), "scale": SCALE, "truth": truth_names}
    return _json_block(head)[:-1] + ',"records":[' + ",".join(kept) + "]}", len(kept)


def _record_controls(summary: dict, evaluation: dict | None) -> str:
    options = "".join(f'<option value="{i}">{_e(name)}</option>' for i, name in enumerate(summary["labels"]))
    wrong = '<label><input type="checkbox" id="f-wrong"> misclassified only</label>' if evaluation is not None else ""
    return (
        '<div class="controls"><label>predicted class <select id="f-class"><option value="-1">any</option>'
        f'<option value="-2">(prediction missing)</option>{options}</select></label>'
        '<label>model probability at least <input type="number" id="f-lo" min="0" max="1" step="0.05" value="0">'
        "</label>"
        '<label>at most <input type="number" id="f-hi" min="0" max="1" step="0.05" value="1"></label>'
        '<label>sort <select id="f-sort"><option value="row">row order</option><option value="conf-desc">most '
        'confident first</option><option value="conf-asc">least confident first</option></select></label>'
        f'{wrong}<button type="button" id="clear-row" hidden>show all records</button></div>'
    )


def render(summary: dict, classes: dict, records: Iterable[dict], evaluation: dict | None = None) -> str:
    """The report of one run: ``summary`` as postprocess writes it to results/summary.json, ``classes`` and
    ``evaluation`` as in classes.json and evaluation.json, ``records`` the lines of records.jsonl in order."""
    labels = summary["labels"]
    local = is_local(summary)
    top = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Explanations · {_e(summary['run_id'])}</title><style>{_CSS}</style></head>"
        f'<body data-view="predicted"><h1>Text explanations</h1><div class="top">'
        f"{_summary(summary, evaluation)}<div><div><b>Predicted classes</b></div>{_distribution(summary)}</div></div>"
        f"{_evaluation(evaluation)}{_classes(summary, classes)}"
    )
    explainer = "this run's Kernel SHAP explainer" if local else "Clarify"
    legend = (
        f'<p class="meta">Each unit is coloured by its attribution ({explainer}) for the chosen class: red towards it, '
        "blue away from it; hover a unit or a bar segment for its value. The bar under a text starts at the "
        f"{base_name(summary)} of the class and adds the units' contributions (red up, blue down); the black mark is "
        "the model's own probability. Values are rounded to 4 decimals here; records.jsonl has them exact.</p>"
    )
    controls = _record_controls(summary, evaluation)
    heading = '<h2 id="records-h">Records</h2>'
    middle = (
        f'{legend}{controls}<div class="pager"><button type="button" id="prev">‹ previous</button> '
        '<span id="count" class="meta"></span> <button type="button" id="next">next ›</button></div>'
        '<div id="records"></div><noscript><p class="note">The records need JavaScript.</p></noscript>'
        '<script type="application/json" id="report-data">'
    )
    end = f"</script><script>{_SCRIPT}</script></body></html>"
    base = [
        info["expected_value"] if isinstance(info.get("expected_value"), int | float) else 0.0
        for info in (classes.get(label) or {} for label in labels)
    ]
    fixed = sum(len(part.encode()) for part in (top, heading, middle, end)) + 40 * len(labels) + 1000  # + the note
    data, shown = _records(summary, records, evaluation, base, REPORT_MAX_BYTES - fixed)
    rows = summary["rows"]
    note = ""
    if not isinstance(rows, int) or shown < rows:
        note = (
            f'<p class="note">This report shows the first {shown} of {_e(rows)} records (at most '
            f"{REPORT_MAX_RECORDS:,} records and {REPORT_MAX_BYTES:,} bytes); every record is in "
            "results/records.jsonl.</p>"
        )
    return top + heading + note + middle + data + end


def _lines(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            yield json.loads(line)


def render_dir(results: Path) -> str:
    """The report of a finished run from its results/ directory: the same call with the same inputs as postprocess
    made (summary.json is the summary it rendered from), so the same bytes."""
    if not (results / SUMMARY_FILE).is_file():
        raise ValueError(
            f"{results} has no {SUMMARY_FILE} (a run postprocessed before the report had one); explain it again"
        )
    summary = json.loads((results / SUMMARY_FILE).read_text(encoding="utf-8"))
    classes = json.loads((results / "classes.json").read_text(encoding="utf-8"))
    evaluation_file = results / "evaluation.json"
    evaluation = json.loads(evaluation_file.read_text(encoding="utf-8")) if evaluation_file.is_file() else None
    records = _lines(results / "records.jsonl")
    try:
        return render(summary, classes, records, evaluation)
    finally:
        records.close()


def data_of(page: str) -> dict:
    """The data block of a rendered report (what the script renders the records from), parsed."""
    start = page.index('<script type="application/json" id="report-data">') + len(
        '<script type="application/json" id="report-data">'
    )
    return json.loads(page[start : page.index("</script>", start)])

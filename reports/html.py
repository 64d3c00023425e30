"""One self-contained HTML page: inline CSS, figures as base64 PNG, no external resource, opens from disk.

A few lines of inline script record load errors and each figure's rendered size into ``data-`` attributes of
``<body>`` (``data-figures``, ``data-errors``), so a headless browser (tests/reports/test_browser.py) or a person
with the developer tools can confirm that every figure rendered.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from .compare import Comparison
from .plots import Plot
from .tables import COLUMNS, WorkloadTable, format_value

__all__ = ["Section", "comparison_html", "headline_html", "render_html"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1400px;padding:0 1em;
color:#222;line-height:1.4}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}h3{margin-top:1.5em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:right;vertical-align:top}
th{background:#f3f3f3;position:sticky;top:0}td.text,th.text{text-align:left}
td.best{background:#e3f4e1;font-weight:bold}td.best::after{content:" \\2605";color:#2e7d32}
tr.failed td{color:#999}tr.regression td{background:#fde2e1}tr.improvement td{background:#e3f4e1}
.note{color:#666;font-size:.9em}.warn{color:#b71c1c}
.headline{font-size:1.1em;background:#eef4fb;border-left:4px solid #4c72b0;padding:.4em .8em;margin:.4em 0}
.contended{background:#fff3e0;color:#e65100;font-size:.8em;padding:0 .3em;border-radius:3px;margin-left:.3em}
tr.contended td{background:#fff8ee}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:.85em}code{font-size:.9em}
dl.stamp{display:grid;grid-template-columns:max-content auto;gap:.1em 1em}dl.stamp dt{font-weight:bold}
dl.stamp dd{margin:0}
"""

_SCRIPT = """
(function(){
  var errors = [];
  window.addEventListener('error', function(e){
    var t = e.target;
    errors.push(t && t !== window && t.tagName ? 'failed to load ' + t.tagName + (t.id ? ' #' + t.id : '')
                                               : String(e.message));
  }, true);
  window.addEventListener('load', function(){
    var out = [];
    document.querySelectorAll('img.figure').forEach(function(img){
      var r = img.getBoundingClientRect();
      var ok = img.complete && img.naturalWidth > 0 && img.naturalHeight > 0 && r.width > 0 && r.height > 0;
      img.setAttribute('data-rendered', ok ? 'yes' : 'no');
      out.push({id: img.id, naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight,
                width: r.width, height: r.height, rendered: ok});
    });
    document.body.setAttribute('data-figures', JSON.stringify(out));
    document.body.setAttribute('data-errors', JSON.stringify(errors));
  });
})();
"""


class Section:
    """A titled block of already-escaped HTML."""

    def __init__(self, title: str, body: str, *, anchor: str = "") -> None:
        self.title, self.body, self.anchor = title, body, anchor or _anchor(title)


def _anchor(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def esc(value: Any) -> str:
    """HTML-escaped text of a value ('' for None/NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return html.escape(str(value))


def figure_html(plot: Plot) -> str:
    """An ``<img>`` with the PNG inlined, and its caption."""
    data = base64.b64encode(plot.png).decode("ascii")
    return (f'<figure><img class="figure" id="fig-{esc(_anchor(plot.key))}" alt="{esc(plot.title)}" '
            f'src="data:image/png;base64,{data}"><figcaption><b>{esc(plot.title)}.</b> {esc(plot.caption)}'
            f"</figcaption></figure>")


def simple_table(frame: pd.DataFrame, *, text_columns: Iterable[str] = (), row_class: Sequence[str] | None = None,
                 digits: int = 3) -> str:
    """A plain HTML table of ``frame`` (no index); numbers formatted to ``digits`` significant digits."""
    text = set(text_columns)
    head = "".join(f'<th class="{"text" if c in text else ""}">{esc(c)}</th>' for c in frame.columns)
    body = []
    for i, (_, row) in enumerate(frame.iterrows()):
        cls = f' class="{esc(row_class[i])}"' if row_class and row_class[i] else ""
        cells = "".join(
            f'<td class="text">{esc(row[c])}</td>' if c in text else f"<td>{esc(format_value(row[c], digits))}</td>"
            for c in frame.columns)
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def workload_table_html(table: WorkloadTable) -> str:
    """The strategy table of one workload with the best value of each column marked."""
    head = ['<th class="text">configuration</th>', '<th class="text">status</th>']
    head += [f"<th>{esc(c.title)}</th>" for c in COLUMNS]
    head.append('<th class="text">ceiling</th>')
    rows = []
    for label, row in table.frame.iterrows():
        tag = '<span class="contended" title="other processes competed for the cores">contended</span>' \
            if label in table.contended else ""
        cells = [f'<td class="text">{esc(label)}{tag}</td>', f'<td class="text">{esc(row["status"])}</td>']
        for col in COLUMNS:
            best = label in table.best.get(col.title, set())
            cells.append(f'<td{" class=best" if best else ""}>{esc(format_value(row[col.title], col.digits))}</td>')
        cells.append(f'<td class="text">{esc(row["ceiling"])}</td>')
        cls = "" if row["status"] == "ok" else ' class="failed"'
        rows.append(f"<tr{cls}>{''.join(cells)}</tr>")
    notes = "".join(f'<p class="note">{esc(n)}</p>' for n in table.notes)
    return f"<table><thead><tr>{''.join(head)}</tr></thead><tbody>{''.join(rows)}</tbody></table>{notes}"


def comparison_html(comp: Comparison, base_name: str) -> str:
    """The run-vs-run table (configuration x metric), regressions first, with the verdict counts above it."""
    counts = ", ".join(f"{n} {v}" for v, n in comp.counts().items()) or "nothing to compare"
    rule = (f"beyond {comp.threshold:.0%} with the whole {comp.level:.0%} interval of the median ratio "
            f"(quantiles where a record has no samples)")
    status = (f'<p class="warn"><b>{len(comp.regressions)} regression(s)</b> {esc(rule)}.</p>' if comp.has_regression
              else f"<p>No regression {esc(rule)}.</p>")
    if comp.problem:
        status = f'<p class="warn">{esc(comp.problem)}.</p>' + status
    t = comp.table.copy()
    for c in ("base", "new"):
        t[c] = [v * 1e3 if m != "1/feature_gbps" else v for v, m in zip(t[c].astype(float), t["metric"])]
    t["interval"] = [f"{lo:.3f}..{hi:.3f}" if lo == lo and hi == hi else "" for lo, hi in
                     zip(t["ci_low"].astype(float), t["ci_high"].astype(float))]
    t = t[["workload", "configuration", "metric", "verdict", "ratio", "interval", "base", "new", "base_n", "new_n",
           "method", "reason"]].rename(columns={"base": "base (ms)", "new": "new (ms)"})
    cls = ["regression" if v in ("regression", "newly failing") else "improvement" if v == "improvement" else
           "contended" if v == "contended" else "" for v in t["verdict"]]
    return (f"<p>Against <code>{esc(base_name)}</code>: {esc(counts)}.</p>{status}"
            + simple_table(t, text_columns=("workload", "configuration", "verdict", "metric", "interval", "method",
                                            "reason"), row_class=cls, digits=4))


def claims_html(claims: dict[str, Any]) -> str:
    """A study's claims: one row each with the published figure, the measured one, the ratio and the verdict."""
    rows = []
    for c in claims.get("claims", []):
        pub = c.get("published") or {}
        value = "ordering" if pub.get("value") is None else f"{pub['value']:.3g} {pub.get('unit', '')}"
        measured = "n/a" if c.get("measured") is None else f"{c['measured']:.3g}"
        ratio = "n/a" if c.get("ratio") is None else f"{c['ratio']:.2f}"
        keys = ", ".join(f"{role} ({key})" for role, key in (c.get("rows") or {}).items()) or "-"
        verdict = str(c.get("verdict", "?"))
        rows.append(f'<tr class="{esc(verdict.replace(" ", "-"))}"><td>{esc(c.get("id"))}</td><td>{esc(c.get("text"))}'
                    f"</td><td>{esc(value)}<br><small>{esc(pub.get('hardware'))}; {esc(pub.get('source'))}</small>"
                    f"</td><td>{esc(measured)}</td><td>{esc(ratio)}</td><td><b>{esc(verdict)}</b></td>"
                    f"<td>{esc(c.get('reason'))}</td><td><small>{esc(keys)}</small></td></tr>")
    head = "".join(f"<th>{h}</th>" for h in ("claim", "what was published", "published", "measured", "ratio",
                                             "verdict", "how judged", "rows (role, config key)"))
    return (f"<p>{esc(claims.get('title', ''))}</p><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}"
            "</tbody></table>")


def headline_html(lines: Sequence[str]) -> str:
    """The headline lines (which configuration wins, by how much, what bounds it), one paragraph each."""
    return "".join(f'<p class="headline">{esc(line)}</p>' for line in lines)


def stamp_html(stamp: dict[str, str]) -> str:
    """The machine and software stamp as a definition list."""
    if not stamp:
        return '<p class="note">The records carry no machine stamp.</p>'
    return '<dl class="stamp">' + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in stamp.items()) + "</dl>"


def render_html(*, title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The whole page: a table of contents, then each section."""
    toc = "".join(f'<li><a href="#{esc(s.anchor)}">{esc(s.title)}</a></li>' for s in sections)
    body = "".join(f'<section id="{esc(s.anchor)}"><h2>{esc(s.title)}</h2>{s.body}</section>' for s in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><link rel=\"icon\" href=\"data:,\">"
        f"<title>{esc(title)}</title><style>{_CSS}</style><script>{_SCRIPT}</script></head>"
        f"<body><h1>{esc(title)}</h1><p class=\"note\">{esc(subtitle)}</p><nav><ul>{toc}</ul></nav>{body}"
        "</body></html>\n"
    )

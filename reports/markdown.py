"""``summary.md``: the report's tables as GitHub-flavoured Markdown, short enough for a CI log."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from .compare import Comparison
from .tables import COLUMNS, WorkloadTable, format_value

__all__ = ["MD_COLUMNS", "render_markdown"]

#: The columns summary.md shows (the HTML and CSV carry all of them).
MD_COLUMNS: tuple[str, ...] = ("time (ms)", "speed-up vs cpu-centric", "GB/s", "% of ceiling", "CPU util (%)",
                               "energy/step (J)", "read amp.", "hit rate")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


def _workload_md(table: WorkloadTable) -> list[str]:
    cols = [c for c in COLUMNS if c.title in MD_COLUMNS]
    shown = [c for c in cols if table.frame[c.title].notna().any()]  # all-empty columns only add width
    rows = []
    for label, row in table.frame.iterrows():
        cells = [str(label), str(row["status"]) + (" (contended)" if label in table.contended else "")]
        for c in shown:
            text = format_value(row[c.title], c.digits)
            cells.append(f"**{text}**" if text and label in table.best.get(c.title, set()) else text)
        rows.append(cells)
    lines = [f"### {table.workload}" + (f" ({table.mode})" if table.mode else ""), ""]
    lines += _table(["configuration", "status", *(c.title for c in shown)], rows)
    hidden = [c.title for c in cols if c not in shown]
    if hidden:
        lines += ["", f"Not measured in this workload: {', '.join(hidden)}."]
    lines += [f"_{n}_" for n in table.notes]
    return lines + [""]


def _comparison_md(comp: Comparison, base_name: str) -> list[str]:
    lines = [f"## Comparison with `{base_name}`", ""]
    counts = ", ".join(f"{n} {v}" for v, n in comp.counts().items()) or "nothing to compare"
    lines.append(f"{counts}. A regression is a {comp.level:.0%} interval of the median ratio wholly above "
                 f"{1 + comp.threshold:.2f} (quantiles where a record has no samples).")
    if comp.problem:
        lines.append(f"**{comp.problem}.**")
    lines.append("")
    shown = comp.table[comp.table["verdict"].isin(("regression", "newly failing", "contended", "improvement"))]
    if shown.empty:
        return lines + ["No configuration changed beyond the threshold.", ""]
    rows = []
    for _, r in shown.iterrows():
        ratio, lo, hi = (float(r[c]) if isinstance(r[c], (int, float)) else math.nan
                         for c in ("ratio", "ci_low", "ci_high"))
        rows.append([str(r["workload"]), str(r["configuration"]), str(r["metric"] or ""), str(r["verdict"]),
                     "" if math.isnan(ratio) else f"{ratio:.3f}", "" if math.isnan(lo) else f"{lo:.3f}..{hi:.3f}",
                     str(r["reason"] or "")])
    return lines + _table(["workload", "configuration", "metric", "verdict", "ratio", "interval", "why"],
                          rows) + [""]


def render_markdown(*, title: str, subtitle: str, tables: Sequence[WorkloadTable], failures: pd.DataFrame,
                    comparison: Comparison | None, base_name: str, notes: Sequence[str],
                    headlines: Sequence[str] = (), missing: Sequence[str] = ()) -> str:
    """The whole ``summary.md``: headlines, comparison, per-workload tables (best in bold), failures, notes."""
    lines = [f"# {title}", ""]
    lines += [f"**{h}**" for h in headlines] + ([""] if headlines else [])
    lines += [subtitle, ""]
    if missing:
        lines += [f"Not shown: {'; '.join(missing)}.", ""]
    if comparison is not None:
        lines += _comparison_md(comparison, base_name)
    if tables:
        lines += ["## Strategies per workload", "", "Best value per column in **bold**.", ""]
        for t in tables:
            lines += _workload_md(t)
    else:
        lines += ["No results yet.", ""]
    if len(failures):
        lines += ["## Failed and skipped", ""]
        lines += _table(["workload", "configuration", "status", "phase", "reason"],
                        [[str(r["workload"]), str(r["label"]), str(r["status"]), str(r.get("failed_phase") or ""),
                          str(r["reason"])] for _, r in failures.iterrows()])
        lines.append("")
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)

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
        cells = [str(label), str(row["status"])]
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
    lines.append(f"{counts}. Threshold {comp.threshold:.0%}, beyond the p10..p90 spread of both runs.")
    lines.append("")
    shown = comp.table[comp.table["verdict"].isin(("regression", "newly failing", "improvement", "within noise"))]
    if shown.empty:
        return lines + ["No configuration changed beyond the threshold.", ""]
    rows = []
    for _, r in shown.iterrows():
        ratio = r["ratio"]
        rows.append([str(r["workload"]), str(r["configuration"]), str(r["verdict"]), str(r["metric"] or ""),
                     format_value(r["base"] * 1e3 if isinstance(r["base"], float) else r["base"], 4),
                     format_value(r["new"] * 1e3 if isinstance(r["new"], float) else r["new"], 4),
                     "" if ratio is None or (isinstance(ratio, float) and math.isnan(ratio)) else f"{ratio:.3f}"])
    return lines + _table(["workload", "configuration", "verdict", "metric", "base (ms)", "new (ms)", "ratio"],
                          rows) + [""]


def render_markdown(*, title: str, subtitle: str, tables: Sequence[WorkloadTable], failures: pd.DataFrame,
                    comparison: Comparison | None, base_name: str, notes: Sequence[str]) -> str:
    """The whole ``summary.md``: per-workload tables (best in bold), comparison, failures, loading notes."""
    lines = [f"# {title}", "", subtitle, ""]
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

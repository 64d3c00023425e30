"""``write_report``: a run directory -> ``report.html``, ``summary.md`` and ``summary.csv`` (plus a comparison)."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from accessbench.reports import html as H
from accessbench.reports import plots

from .ceilings import ceilings_frame, machine_stamp
from .compare import DEFAULT_THRESHOLD, Comparison, compare_results
from .load import RunData, load_run
from .markdown import render_markdown
from .tables import summary_frame, workload_tables

__all__ = ["ReportPaths", "build_report", "failures_frame", "write_report"]


@dataclass(frozen=True)
class ReportPaths:
    """Where the report went, and the comparison's outcome when one was asked for."""

    html: Path
    markdown: Path
    csv: Path
    comparison: Comparison | None = None

    @property
    def regressions(self) -> int:
        """Configurations that regressed against the base run (0 without a comparison)."""
        return len(self.comparison.regressions) if self.comparison is not None else 0


def failures_frame(results: pd.DataFrame) -> pd.DataFrame:
    """Failed and skipped configurations with their reason (the error, else the notes)."""
    bad = results[results["status"] != "ok"]
    reasons = []
    for _, r in bad.iterrows():
        err = r.get("error")
        reasons.append(str(err) if isinstance(err, str) and err else "; ".join(r["notes"]) or "no reason recorded")
    out = bad[["workload", "label", "status", "failed_phase"]].copy()
    out["failed_phase"] = [p if isinstance(p, str) else "" for p in out["failed_phase"]]
    out["reason"] = reasons
    return out.reset_index(drop=True)


def _measurement_notes(results: pd.DataFrame) -> list[str]:
    counts: Counter[str] = Counter()
    for notes in results["notes"]:
        counts.update(dict.fromkeys(notes, 1))
    return [f"{n} ({c} configuration{'s' if c > 1 else ''})" for n, c in counts.most_common()]


def _sibling_paths(out: Path) -> tuple[Path, Path]:
    if out.name == "report.html":
        return out.with_name("summary.md"), out.with_name("summary.csv")
    return out.with_suffix(".md"), out.with_suffix(".csv")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _plot_section(title: str, plot: plots.Plot | None, missing: str) -> H.Section:
    return H.Section(title, H.figure_html(plot) if plot else f'<p class="note">{H.esc(missing)}</p>')


def build_report(run: RunData, *, base: RunData | None = None,
                 threshold: float = DEFAULT_THRESHOLD) -> tuple[str, str, pd.DataFrame, Comparison | None]:
    """The HTML page, the Markdown summary, the summary table and the comparison, for a loaded run."""
    res = run.results
    summary = summary_frame(res, run.probe)
    tables = workload_tables(summary)
    failures = failures_frame(res)
    comparison = compare_results(base.results, res, threshold=threshold) if base is not None else None
    status = res["status"].value_counts().to_dict()
    counts = ", ".join(f"{n} {s}" for s, n in sorted(status.items())) or "no records"
    title = f"accessbench report: {run.run_id}"
    subtitle = f"{run.path} — {len(res)} configuration(s): {counts}."
    if any("incomplete" in n for n in run.notes):
        subtitle += " The run was interrupted: this report covers the records written so far."

    sections = []
    run_body = f"<p>{H.esc(subtitle)}</p>" + "".join(f'<p class="note">{H.esc(n)}</p>' for n in run.notes)
    sections.append(H.Section("Run", run_body))
    ceil = ceilings_frame(run.probe)
    machine = H.stamp_html(machine_stamp(res, run.probe))
    if len(ceil):
        machine += "<h3>Ceilings measured on this machine</h3>" + H.simple_table(
            ceil.drop(columns=["key"]), text_columns=("label", "unit", "method", "reason"), digits=4)
    else:
        machine += '<p class="note">No probe.json in this run: ceilings (and % of ceiling) not shown.</p>'
    sections.append(H.Section("Machine and ceilings", machine))
    if comparison is not None and base is not None:
        sections.append(H.Section("Comparison", H.comparison_html(comparison, str(base.path))))
    body = []
    for t in tables:
        body.append(f"<h3>{H.esc(t.workload)}{f' ({H.esc(t.mode)})' if t.mode else ''}</h3>")
        body.append(H.workload_table_html(t))
        phase = plots.phase_plot(res, t.workload)
        body.append(H.figure_html(phase) if phase else '<p class="note">No phase times measured.</p>')
    sections.append(H.Section("Strategies per workload",
                              "".join(body) or '<p class="note">No results yet.</p>', anchor="workloads"))
    sections.append(_plot_section("Throughput against row width", plots.throughput_plot(res, run.probe),
                                  "No gather-mode results with a row width in this run."))
    energy_reason = "No configuration measured GPU energy (needs NVML and a GPU)."
    sections.append(_plot_section("Energy per step", plots.energy_plot(res), energy_reason))
    sections.append(_plot_section("Hit rate against cache size", plots.hit_rate_plot(res),
                                  "No cached configuration reported a hit rate with a cache size."))
    trace_labels = dict(zip(res["config_key"].astype(str), res["label"]))
    sections.append(_plot_section("Power over time", plots.power_plot(run.power, trace_labels),
                                  "No power trace (power_*.csv) in this run."))
    if len(failures):
        sections.append(H.Section("Failed and skipped", H.simple_table(
            failures.rename(columns={"label": "configuration"}),
            text_columns=("workload", "configuration", "status", "failed_phase", "reason"))))
    mnotes = _measurement_notes(res)
    if mnotes:
        sections.append(H.Section("Measurement notes", "<ul>" + "".join(f"<li>{H.esc(n)}</li>" for n in mnotes)
                                  + "</ul>"))
    page = H.render_html(title=title, subtitle=subtitle, sections=sections)
    md = render_markdown(title=title, subtitle=subtitle, tables=tables, failures=failures, comparison=comparison,
                         base_name=str(base.path) if base is not None else "", notes=[*run.notes, *mnotes])
    return page, md, summary, comparison


def write_report(run_dir: Path, *, compare: Path | None = None, out: Path | None = None,
                 threshold: float = DEFAULT_THRESHOLD) -> ReportPaths:
    """Write ``report.html`` (or ``out``), ``summary.md`` and ``summary.csv`` for the run in ``run_dir``.

    With ``compare``, the page and the summary also compare against that base run. When ``out`` is not named
    ``report.html``, the Markdown and CSV take its stem (``x.html`` -> ``x.md``, ``x.csv``).
    """
    run = load_run(run_dir)
    base = load_run(compare) if compare is not None else None
    page, md, summary, comparison = build_report(run, base=base, threshold=threshold)
    html_path = Path(out) if out is not None else Path(run_dir) / "report.html"
    html_path.parent.mkdir(parents=True, exist_ok=True)
    md_path, csv_path = _sibling_paths(html_path)
    _atomic_write(html_path, page)
    _atomic_write(md_path, md)
    _atomic_write(csv_path, summary.to_csv(index=False))
    return ReportPaths(html_path, md_path, csv_path, comparison)

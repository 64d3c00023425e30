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
from .tables import Headline, headlines, summary_frame, workload_tables

__all__ = ["Report", "ReportPaths", "build_report", "failures_frame", "write_report"]


@dataclass(frozen=True)
class ReportPaths:
    """Where the report went, and the comparison's outcome when one was asked for."""

    html: Path
    markdown: Path
    csv: Path
    comparison: Comparison | None = None
    headlines: tuple[Headline, ...] = ()

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


@dataclass
class Report:
    """Everything ``build_report`` makes for one run: the page, the Markdown, the table, comparison, headlines."""

    html: str
    markdown: str
    summary: pd.DataFrame
    comparison: Comparison | None
    headlines: list[Headline]


def build_report(run: RunData, *, base: RunData | None = None, threshold: float = DEFAULT_THRESHOLD,
                 across_machines: bool = False) -> Report:
    """The HTML page, the Markdown summary, the summary table, the comparison and the headlines of a loaded run."""
    res = run.results
    summary = summary_frame(res, run.probe)
    tables = workload_tables(summary)
    failures = failures_frame(res)
    heads = headlines(res, run.probe)
    comparison = compare_results(base.results, res, threshold=threshold, across_machines=across_machines) \
        if base is not None else None
    status = res["status"].value_counts().to_dict()
    counts = ", ".join(f"{n} {s}" for s, n in sorted(status.items())) or "no records"
    title = f"accessbench report: {run.run_id}"
    subtitle = f"{run.path} — {len(res)} configuration(s): {counts}."
    if any("incomplete" in n for n in run.notes):
        subtitle += " The run was interrupted: this report covers the records written so far."

    sections = []
    optional = [  # (title, plot, why there is nothing to draw): drawn as a section, or named in one line
        ("Throughput against row width", plots.throughput_plot(res, run.probe),
         "no gather-mode results with a row width"),
        ("Energy per step", plots.energy_plot(res), "no configuration measured GPU energy (needs NVML and a GPU)"),
        ("Hit rate against cache size", plots.hit_rate_plot(res), "no cached configuration reported a hit rate "
                                                                  "with a cache size"),
        ("Power over time", plots.power_plot(run.power, dict(zip(res["config_key"].astype(str), res["label"]))),
         "no power trace (power_*.csv) in this run"),
    ]
    missing = [f"{name.lower()} ({why})" for name, plot, why in optional if plot is None]
    run_body = H.headline_html([h.text for h in heads])
    run_body += f"<p>{H.esc(subtitle)}</p>" + "".join(f'<p class="note">{H.esc(n)}</p>' for n in run.notes)
    if missing:
        run_body += f'<p class="note">Not shown: {H.esc("; ".join(missing))}.</p>'
    sections.append(H.Section("Run", run_body))
    if run.claims:
        sections.append(H.Section(f"Study {run.claims.get('study', '')}: published vs measured",
                                  H.claims_html(run.claims), anchor="study"))
    ceil = ceilings_frame(run.probe)
    machine = H.stamp_html(machine_stamp(res, run.probe))
    if len(ceil):
        machine += "<h3>Ceilings measured on this machine</h3>" + H.simple_table(
            ceil.drop(columns=["key"]), text_columns=("label", "unit", "method", "reason"), digits=4)
    else:
        machine += '<p class="note">No probe.json in this run: ceilings (and % of ceiling) not shown.</p>'
    sections.append(H.Section("Machine and ceilings", machine))
    if comparison is not None and base is not None:
        comp_body = H.comparison_html(comparison, str(base.path))
        comp_plot = plots.comparison_plot(comparison.table, comparison.threshold)
        sections.append(H.Section("Comparison", (H.figure_html(comp_plot) if comp_plot else "") + comp_body))
    body = []
    for t in tables:
        body.append(f"<h3>{H.esc(t.workload)}{f' ({H.esc(t.mode)})' if t.mode else ''}</h3>")
        body.append(H.workload_table_html(t))
        phase = plots.phase_plot(res, t.workload)
        body.append(H.figure_html(phase) if phase else '<p class="note">No phase times measured.</p>')
        dist = plots.distribution_plot(res, t.workload)
        if dist:
            body.append(H.figure_html(dist))
        elif (res.loc[res["workload"] == t.workload, "status"] == "ok").any():
            body.append('<p class="note">No per-step samples in these records (written before samples were '
                        "kept): step-time distribution not shown.</p>")
    sections.append(H.Section("Strategies per workload",
                              "".join(body) or '<p class="note">No results yet.</p>', anchor="workloads"))
    gbps = plots.ceiling_plot(summary)
    if gbps:
        sections.append(H.Section("Delivered GB/s against the ceiling", H.figure_html(gbps)))
    elif (res["status"] == "ok").any():
        missing.append("delivered GB/s against the ceiling (no configuration measured feature GB/s)")
    for name, plot, _ in optional:
        if plot is not None:
            sections.append(H.Section(name, H.figure_html(plot)))
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
                         base_name=str(base.path) if base is not None else "", notes=[*run.notes, *mnotes],
                         headlines=[h.text for h in heads], missing=missing)
    return Report(page, md, summary, comparison, heads)


def write_report(run_dir: Path, *, compare: Path | None = None, out: Path | None = None,
                 threshold: float = DEFAULT_THRESHOLD, across_machines: bool = False) -> ReportPaths:
    """Write ``report.html`` (or ``out``), ``summary.md`` and ``summary.csv`` for the run in ``run_dir``.

    With ``compare``, the page and the summary also compare against that base run. When ``out`` is not named
    ``report.html``, the Markdown and CSV take its stem (``x.html`` -> ``x.md``, ``x.csv``).
    """
    run = load_run(run_dir)
    base = load_run(compare) if compare is not None else None
    rep = build_report(run, base=base, threshold=threshold, across_machines=across_machines)
    page, md, summary, comparison = rep.html, rep.markdown, rep.summary, rep.comparison
    html_path = Path(out) if out is not None else Path(run_dir) / "report.html"
    html_path.parent.mkdir(parents=True, exist_ok=True)
    md_path, csv_path = _sibling_paths(html_path)
    _atomic_write(html_path, page)
    _atomic_write(md_path, md)
    _atomic_write(csv_path, summary.to_csv(index=False))
    return ReportPaths(html_path, md_path, csv_path, comparison, tuple(rep.headlines))

"""The summary table printed at the end of ``accessbench run`` (rich), one row per configuration, then the headline.

The headline (which configuration wins, by how much, what bounds it) is computed by the report module that
``accessbench run`` already calls (``accessbench.reports``: suite/cli -> reports, the same arrow), from the run
directory's files, so the terminal, report.html and summary.md print the same line.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from accessbench.suite.measure.records import Record

__all__ = ["fmt_seconds", "headline_lines", "print_summary"]


def fmt_seconds(value: float | None) -> str:
    """Seconds as a short human string (``-`` for not measured)."""
    if value is None:
        return "-"
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.2f} ms"
    return f"{value * 1e6:.1f} us"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1e3:.3g}"


def print_summary(records: Sequence[Record], run_dir: Path, *, console: Console | None = None) -> None:
    """Print one row per record: phase medians (p10..p90 below), throughput, status."""
    console = console or Console(width=None if Console().is_terminal else 160)
    table = Table(title=f"accessbench results ({run_dir})", show_lines=False)
    cols = ("strategy", "mode", "device", "status", "step ms (p10..p90)", "sample ms", "gather ms", "transfer ms",
            "compute ms", "GB/s", "rows/s")
    for col in cols:
        table.add_column(col, justify="left" if col in cols[:4] else "right")
    for r in records:
        name = r.strategy + (" " + ",".join(f"{k}={v}" for k, v in r.options.items()) if r.options else "")
        status = r.status if r.status == "ok" else f"{r.status}: {r.error}"
        step = "-" if r.step_s is None else f"{_ms(r.step_s)} ({_ms(r.step_s_p10)}..{_ms(r.step_s_p90)})"
        table.add_row(
            name, r.mode, r.device + (f" x{r.ranks} ranks" if r.ranks > 1 else ""), status, step,
            *(_ms(getattr(r, f"{p}_s")) for p in ("sample", "gather", "transfer", "compute")),
            f"{r.feature_gbps:.2f}" if r.feature_gbps is not None else "-",
            f"{r.rows_per_s:.3g}" if r.rows_per_s is not None else "-",
        )
    console.print(table)
    console.print(f"results: {run_dir / 'results.jsonl'}  (medians over measured steps; '-' = not measured, see notes)",
                  highlight=False)
    for line in headline_lines(run_dir):
        console.print(line, highlight=False, markup=False)


def headline_lines(run_dir: Path) -> list[str]:
    """The report's headline lines for the run in ``run_dir`` ([] when there is nothing to say or it cannot load)."""
    from accessbench.reports import ReportError, load_run
    from accessbench.reports.tables import headlines

    try:
        run = load_run(run_dir)
    except (ReportError, OSError):
        return []
    return [h.text for h in headlines(run.results, run.probe)]

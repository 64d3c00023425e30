"""accessbench reports: result files -> tables, plots, one self-contained HTML page, run-vs-run comparison.

Reads only files (``results.jsonl``, ``probe.json``, ``power_*.csv``); imports pandas and matplotlib, nothing of
``kernels``, ``workloads`` or ``suite``.
"""

from .compare import DEFAULT_THRESHOLD, Comparison, compare_results
from .load import ReportError, RunData, load_run, records_frame
from .tables import summary_frame, workload_tables
from .write import ReportPaths, build_report, write_report

__all__ = [
    "DEFAULT_THRESHOLD",
    "Comparison",
    "ReportError",
    "ReportPaths",
    "RunData",
    "build_report",
    "compare_results",
    "load_run",
    "records_frame",
    "summary_frame",
    "workload_tables",
    "write_report",
]

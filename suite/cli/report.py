"""Write a run's report: one self-contained HTML page, summary.md and summary.csv; optionally compare two runs.

Exit status: 0, or 1 with --fail-on-regression when a configuration regressed against the base run (the whole
interval of its median ratio beyond the threshold, by the quantiles for records without samples, or newly
failing); 2 for bad input, and with --fail-on-regression when the comparison cannot gate anything (the base run has
no valid records, or the two runs share no configuration), with the reason in one line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from accessbench.reports import DEFAULT_THRESHOLD, write_report

__all__ = ["EXIT_BAD_INPUT", "EXIT_REGRESSION", "HELP", "NAME", "ORDER", "add_arguments", "run"]

NAME = "report"
HELP = "write report.html, summary.md and summary.csv for a run (optionally compared with a base run)"
ORDER = 40
EXIT_REGRESSION = 1
EXIT_BAD_INPUT = 2


def _fraction(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100.0 if text.endswith("%") else 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r} (e.g. 0.05 or 5%)") from None
    if not 0.0 <= value < 10.0:
        raise argparse.ArgumentTypeError(f"threshold {text!r} out of range; give e.g. 0.05 or 5%")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``RUN_DIR [--compare BASE_DIR] [-o FILE] [--threshold T] [--fail-on-regression]``."""
    parser.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="a directory `accessbench run` wrote")
    parser.add_argument("--compare", metavar="BASE_DIR", type=Path, default=None,
                        help="compare with this earlier run, configuration by configuration")
    parser.add_argument("-o", "--output", metavar="FILE", type=Path, default=None,
                        help="HTML file to write (default RUN_DIR/report.html; summary .md/.csv go beside it)")
    parser.add_argument("--threshold", type=_fraction, default=DEFAULT_THRESHOLD,
                        help=f"relative slowdown that counts as a regression (default {DEFAULT_THRESHOLD:.0%}%)")
    parser.add_argument("--fail-on-regression", action="store_true",
                        help=f"exit {EXIT_REGRESSION} when a configuration regressed against BASE_DIR")
    parser.add_argument("--across-machines", action="store_true",
                        help="compare runs from different machines (hostname, CPU or GPU differ) and label them")


def run(args: argparse.Namespace) -> int:
    """Write the report, print where it went and the comparison verdict."""
    if args.fail_on_regression and args.compare is None:
        raise ValueError("--fail-on-regression needs --compare BASE_DIR")
    paths = write_report(args.run_dir, compare=args.compare, out=args.output, threshold=args.threshold,
                         across_machines=args.across_machines)
    for h in paths.headlines:
        print(h.text)
    print(f"report: {paths.html}")
    print(f"summary: {paths.markdown}, {paths.csv}")
    comp = paths.comparison
    if comp is None:
        return 0
    counts = ", ".join(f"{n} {v}" for v, n in comp.counts().items()) or "nothing to compare"
    print(f"compared with {args.compare}: {counts}")
    for _, r in comp.regressions.iterrows():
        if r["verdict"] == "regression":
            change = f"{r['change_pct']:+.1f}% {r['metric']} ({r['method']}: {r['reason']})"
        else:
            change = f"{r['new_status']}: {r['reason']}"
        print(f"  REGRESSION {r['workload']} / {r['configuration']}: {change}", file=sys.stderr)
    for _, r in comp.table[comp.table["verdict"] == "contended"].iterrows():
        print(f"  not judged {r['workload']} / {r['configuration']} {r['metric']}: {r['reason']}", file=sys.stderr)
    if comp.problem and args.fail_on_regression:
        print(f"error: cannot gate on this comparison: {comp.problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if comp.has_regression and args.fail_on_regression:
        return EXIT_REGRESSION
    return 0

"""Studies: each published claim the suite reproduces, as one command run through the one runner.

    accessbench study list                          every study with its claims
    accessbench study run NAME [--quick] [--out DIR] [--resume] [--device D]
    accessbench study report DIR                     judge the rows again; rewrite study.md, claims.json, report.html

A study's rows are ordinary records (results.jsonl, isolation, fsync, resume); study.md holds the published-vs-
measured table with the machine stamp and the command that made it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from accessbench.kernels.device import resolve_device
from accessbench.reports import ReportError, write_report
from accessbench.suite import studies
from accessbench.suite.measure.memcap import memory_cap_available
from accessbench.suite.runner.isolation import DEFAULT_TIMEOUT_S
from accessbench.suite.runner.sweep import prepare_run_dir
from accessbench.suite.studies.base import Context
from accessbench.suite.studies.report import STUDY_MD
from accessbench.suite.studies.runner import judge, read_plan, run_study

__all__ = ["HELP", "NAME", "add_arguments", "run"]

NAME = "study"
HELP = "list, run or report the studies that reproduce published claims"
ORDER = 25


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="study_command", metavar="list|run|report", parser_class=type(parser))
    sub.add_parser("list", help="every study with its claims")
    r = sub.add_parser("run", help="run a study into a run directory and judge its claims")
    r.add_argument("name", help="the study (see `accessbench study list`)")
    r.add_argument("--quick", action="store_true", help="the small version (minutes on 2 CPU cores)")
    r.add_argument("--out", type=Path, default=None, help="run directory (default: results/<time>-study-<name>)")
    r.add_argument("--resume", action="store_true", help="continue a killed run in --out (failed rows run again)")
    r.add_argument("--device", "-d", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    r.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                   help=f"per-configuration limit in seconds (default: {DEFAULT_TIMEOUT_S:g})")
    p = sub.add_parser("report", help="judge a study run directory again and rewrite its table")
    p.add_argument("run_dir", type=Path, help="a directory written by `accessbench study run`")


def _list() -> int:
    for study in studies.all_studies().values():
        gpu = " (needs a CUDA device)" if study.needs_cuda else ""
        print(f"{study.name}{gpu}: {study.title}")
        for claim in study.claims:
            pub = claim.published
            value = "an ordering" if pub.value is None else f"{pub.value:.3g} {pub.unit}"
            print(f"  - {claim.id}: {claim.text} [published: {value}; {pub.hardware}; {pub.source}]")
    return 0


def _print_claims(judged: list, run_dir: Path) -> None:
    for j in judged:
        o = j.outcome
        measured = "" if o.measured is None else f" measured {o.measured:.3g};"
        print(f"{j.claim_id}: {o.verdict.upper()} -{measured} {o.reason}")
    print(f"table: {run_dir / STUDY_MD}")
    try:
        paths = write_report(run_dir)
        print(f"report: {paths.html}")
    except ReportError as exc:  # e.g. nothing measured yet: the table above still stands
        print(f"report not written: {exc}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    cmd = getattr(args, "study_command", None)
    if cmd is None or cmd == "list":
        return _list()
    if cmd == "report":
        plan = read_plan(args.run_dir)
        judged = judge(studies.get(plan["study"]), args.run_dir)
        _print_claims(judged, args.run_dir)
        return 0
    study = studies.get(args.name)
    device = resolve_device(args.device)
    ctx = Context(quick=args.quick, device=str(device), memory_cap=memory_cap_available())
    if args.resume and args.out is None:
        raise studies.StudyError("--resume needs --out (the run directory to continue)")
    default = Path("results") / f"{time.strftime('%Y%m%d-%H%M%S')}-study-{study.name}"
    run_dir = prepare_run_dir(args.out if args.out is not None else default, workload=study.name)
    print(f"study {study.name}{' (quick)' if args.quick else ''} on {device} -> {run_dir}", file=sys.stderr)

    def on_start(i: int, total: int, cfg) -> None:
        print(f"[{i}/{total}] {cfg.strategy} {cfg.mode} {cfg.workload.name} {cfg.options or ''}", file=sys.stderr,
              flush=True)

    judged = run_study(study, ctx, run_dir, resume=args.resume, timeout_s=args.timeout or None, on_start=on_start)
    _print_claims(judged, run_dir)
    return 0

"""Run a sweep of strategies over a workload and write results.jsonl (one row per configuration) to a run directory.

With no arguments: the `default` preset, every registered strategy (those unavailable here are recorded as
skipped with the reason), into a new directory under results/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from kernels import registry
from kernels.device import resolve_device
from kernels.errors import StrategyUnavailable
from suite.records import Record
from suite.runner import Sweep, expand_matrix, parse_option_sweeps, prepare_run_dir, run_sweep, split_available
from suite.summary import print_summary
from workloads.config import MODES, load_workload

NAME = "run"
HELP = "run strategies over a workload and record one result row per configuration"
ORDER = 10


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workload", "-w", default="default", help="preset name or workload .toml file (default: default)")
    p.add_argument("--strategies", "-s", default=None,
                   help="comma-separated strategy names (default: every registered one; unavailable ones are skipped)")
    p.add_argument("--mode", "-m", choices=MODES, default=None, help="gather, sample or train (default: the preset's)")
    p.add_argument("--device", "-d", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--steps", type=int, default=None, help="measured steps per configuration")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps per configuration")
    p.add_argument("--gather-ids", type=int, default=None, help="ids per step in gather mode")
    p.add_argument("--batch-size", type=int, default=None, help="seeds per batch in sample/train mode")
    p.add_argument("--fanouts", default=None, help="comma-separated fanout per hop, e.g. 15,10,5")
    p.add_argument("--option", "-o", action="append", default=[], metavar="STRATEGY:KEY=V1[,V2]",
                   help="strategy option; several values sweep it (repeatable)")
    p.add_argument("--out", type=Path, default=None, help="run directory (default: results/<time>-<workload>)")
    p.add_argument("--resume", action="store_true", help="skip configurations already finished in --out")
    p.add_argument("--no-report", action="store_true", help="do not write report.html/summary.md at the end")


def _positive(name: str, value: int | None) -> int | None:
    if value is not None and value < (0 if name == "--warmup" else 1):
        raise ValueError(f"{name} must be {'>= 0' if name == '--warmup' else '>= 1'}, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    wl = load_workload(args.workload)
    fanouts = None
    if args.fanouts is not None:
        try:
            fanouts = tuple(int(f) for f in args.fanouts.split(","))
        except ValueError:
            raise ValueError(f"--fanouts {args.fanouts!r}: expected comma-separated integers") from None
        if any(f == 0 or f < -1 for f in fanouts):
            raise ValueError(f"--fanouts {args.fanouts!r}: each fanout must be positive (or -1 for all)")
    wl = wl.with_overrides(steps=_positive("--steps", args.steps), warmup_steps=_positive("--warmup", args.warmup),
                           gather_ids=_positive("--gather-ids", args.gather_ids),
                           batch_size=_positive("--batch-size", args.batch_size), fanouts=fanouts)
    resolve_device(args.device)  # a device that is not here -> one clear line
    if args.resume and args.out is None:
        raise ValueError("--resume needs --out DIR (the run directory to continue)")
    if args.strategies:
        names = [s.strip() for s in args.strategies.split(",") if s.strip()]
        for n in names:
            registry.get(n)
        ok, missing = split_available(names)
        if missing:
            n, reason = missing[0]
            raise StrategyUnavailable(f"strategy {n!r} is unavailable here: {reason}")
    else:
        ok, missing = split_available(registry.names())
    sweeps = parse_option_sweeps(args.option)
    for strategy in sweeps:
        if strategy not in ok:
            raise ValueError(f"--option names strategy {strategy!r}, which is not in this run")
    run_dir = prepare_run_dir(args.out, workload=wl.name)
    configs = expand_matrix(ok, [wl], [args.mode], args.device, sweeps)
    skipped = [(c, reason) for n, reason in missing
               for c in expand_matrix([n], [wl], [args.mode], args.device)]
    sweep = Sweep(configs=configs, run_dir=run_dir, resume=args.resume, skipped=skipped)
    console = Console(stderr=True)
    records = _run_with_progress(sweep, console)
    print_summary(records, run_dir)
    if not args.no_report:
        _write_report(run_dir, console)
    failed = [r for r in records if r.status == "failed"]
    return 1 if failed else 0


def _run_with_progress(sweep: Sweep, console: Console) -> list[Record]:
    interactive = sys.stderr.isatty()
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                        TimeElapsedColumn(), console=console, disable=not interactive, transient=True)
    total = len(sweep.configs) + len(sweep.skipped)
    with progress:
        task = progress.add_task("starting", total=total)

        def on_start(i: int, n: int, cfg: object) -> None:
            progress.update(task, description=f"{cfg.strategy} · {cfg.workload.name} · {cfg.mode}")  # type: ignore[attr-defined]

        def on_done(i: int, n: int, rec: Record) -> None:
            progress.update(task, completed=i)
            if not interactive:
                status = rec.status if rec.status == "ok" else f"{rec.status}: {rec.error}"
                console.print(f"[{i}/{n}] {rec.strategy} {rec.workload} {rec.mode} {rec.options or ''} -> {status}",
                              highlight=False, markup=False)

        return run_sweep(sweep, on_start=on_start, on_done=on_done)


def _write_report(run_dir: Path, console: Console) -> None:
    """Write report.html, summary.md and summary.csv when the reports package provides them."""
    try:
        import reports
    except ImportError:
        return
    write = getattr(reports, "write_report", None)
    if write is None:
        return
    paths = write(run_dir)
    console.print(f"report: {getattr(paths, 'html', paths)}", highlight=False)

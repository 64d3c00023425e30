"""Run a sweep of strategies over a workload and write results.jsonl (one row per configuration) to a run directory.

With no arguments: the `default` preset, every registered strategy (those unavailable here are recorded as
skipped with the reason), into a new directory under results/. Launched by torchrun (several ranks), strategies that
support several ranks run on every rank in lockstep and rank 0 writes one row per configuration (docs/RUNNER.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from accessbench.kernels import registry
from accessbench.kernels.device import resolve_device
from accessbench.reports import write_report
from accessbench.suite.measure.distributed import RankSession, launched
from accessbench.suite.measure.lifecycle import Config
from accessbench.suite.measure.records import RESULTS_FILE, Record, read_records
from accessbench.suite.probe.busy import busy_warning
from accessbench.suite.probe.ceilings import ensure_probe_isolated
from accessbench.suite.runner.isolation import DEFAULT_TIMEOUT_S
from accessbench.suite.runner.plugins import load_plugins
from accessbench.suite.runner.ranks import RankLeader, follow, for_ranks, shared_run_dir
from accessbench.suite.runner.rundir import RunLock, check_run_info, write_run_info
from accessbench.suite.runner.sweep import (
    PROFILE_FIRST,
    Sweep,
    expand_matrix,
    parse_option_sweeps,
    prepare_run_dir,
    run_sweep,
    split_available,
)
from accessbench.suite.telemetry.settings import TelemetrySettings
from accessbench.workloads.config import MODES, Workload, load_workload
from accessbench.workloads.graphs import graph_path

from .summary import print_summary

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
    p.add_argument("--processes", type=int, default=1,
                   help="worker processes per configuration, in rounds over the sweep, merged into one record whose samples "
                        "keep each process's steps apart (default: 1); --compare then resamples processes too")
    p.add_argument("--cores", type=int, default=None,
                   help="pin each worker to this many CPUs with one intra-op thread each (default: the workload's "
                        "[run] cores, else one thread per free core, unpinned)")
    p.add_argument("--gather-ids", type=int, default=None, help="ids per step in gather mode")
    p.add_argument("--batch-size", type=int, default=None, help="seeds per batch in sample/train mode")
    p.add_argument("--fanouts", default=None, help="comma-separated fanout per hop, e.g. 15,10,5")
    p.add_argument("--option", "-o", action="append", default=[], metavar="STRATEGY:KEY=V1[,V2]",
                   help="strategy option; several values sweep it (repeatable)")
    p.add_argument("--out", type=Path, default=None, help="run directory (default: results/<time>-<workload>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out: finished rows are kept, failed ones run again")
    p.add_argument("--keep-failed", action="store_true", help="with --resume: keep failed rows (do not re-run them)")
    p.add_argument("--no-report", action="store_true", help="do not write report.html/summary.md at the end")
    p.add_argument("--reprobe", action="store_true", help="measure this machine's ceilings again (probe.json)")
    p.add_argument("--no-probe", action="store_true", help="do not probe the machine's ceilings for the report")
    p.add_argument("--disk", type=Path, default=None,
                   help="filesystem path whose IOPS and sequential bandwidth the probe measures (default: the store's)")
    g = p.add_argument_group("isolation and telemetry")
    g.add_argument("--no-isolate", action="store_true",
                   help="run configurations in this process (debugging; a crash then ends the sweep)")
    g.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                   help=f"per-configuration limit in seconds for isolated workers, 0 for none "
                        f"(default: {DEFAULT_TIMEOUT_S:g})")
    g.add_argument("--no-nvtx", action="store_true", help="emit no NVTX ranges")
    g.add_argument("--power-interval", type=float, default=0.1, metavar="S",
                   help="GPU power sampling period in seconds, 0 for no power trace (default: 0.1)")
    g.add_argument("--min-energy-window", type=float, default=TelemetrySettings().min_energy_window_s, metavar="S",
                   help="repeat the measured steps until the GPU energy window is this long (default: %(default)s; "
                        "the H100's power sensor samples part of the time, so short windows alias)")
    g.add_argument("--idle-baseline", action="store_true",
                   help="after each measurement, meter the idle machine as long and report energy above idle")
    g.add_argument("--profile", nargs="?", const=PROFILE_FIRST, default=None, metavar="STRATEGY",
                   help="write a torch.profiler trace for one configuration (the first, or the first of STRATEGY)")
    g.add_argument("--plugins", default=None, metavar="MODULES",
                   help="comma-separated modules or .py files registering extra strategies (also "
                        "$ACCESSBENCH_PLUGINS)")


def _positive(name: str, value: int | None) -> int | None:
    if value is not None and value < (0 if name == "--warmup" else 1):
        raise ValueError(f"{name} must be {'>= 0' if name == '--warmup' else '>= 1'}, got {value}")
    return value


def _settings(args: argparse.Namespace) -> TelemetrySettings:
    if args.timeout < 0:
        raise ValueError(f"--timeout must be >= 0 (0: none), got {args.timeout:g}")
    return TelemetrySettings(nvtx=not args.no_nvtx, power_interval_s=args.power_interval,
                             min_energy_window_s=args.min_energy_window, idle_baseline=args.idle_baseline)


def run(args: argparse.Namespace) -> int:
    if not launched():
        return _run(args, None)
    # torchrun started several ranks: one process group for the sweep (see docs/RUNNER.md, "Several ranks")
    if args.profile is not None:
        raise ValueError("--profile is not supported with several ranks (torchrun) yet; profile a one-rank run")
    if args.processes != 1:
        raise ValueError("--processes is not supported with several ranks (torchrun) yet; use it in a one-rank run")
    with RankSession.start(args.device, timeout_s=args.timeout or None) as session:
        return _run(args, session)


def _run(args: argparse.Namespace, session: RankSession | None) -> int:
    load_plugins([s.strip() for s in (args.plugins or "").split(",") if s.strip()])
    processes = _positive("--processes", args.processes) or 1
    if processes > 1 and args.no_isolate:
        raise ValueError("--processes needs worker processes; drop --no-isolate")
    settings = _settings(args)
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
                           batch_size=_positive("--batch-size", args.batch_size), fanouts=fanouts,
                           cores=_positive("--cores", args.cores))
    resolve_device(args.device)  # a device that is not here -> one clear line
    if args.resume and args.out is None:
        raise ValueError("--resume needs --out DIR (the run directory to continue)")
    sweeps = parse_option_sweeps(args.option)
    if args.strategies:
        names = [s.strip() for s in args.strategies.split(",") if s.strip()]
    elif sweeps:  # -o alone: only the strategies it names
        names = list(sweeps)
    else:
        names = registry.names()
    for n in names:
        registry.get(n)  # an unknown name -> one line listing the valid ones
    ok, missing = split_available(names)  # unavailable here: skipped rows with the reason, as in a bare run
    for strategy in sweeps:
        if strategy not in names:
            raise ValueError(f"--option names strategy {strategy!r}, which is not in this run")
    configs = expand_matrix(ok, [wl], [args.mode], args.device, sweeps)
    skipped = [(c, reason) for n, reason in missing
               for c in expand_matrix([n], [wl], [args.mode], args.device)]
    if session is None:
        run_dir = prepare_run_dir(args.out, workload=wl.name)
    else:
        run_dir = shared_run_dir(session, lambda: prepare_run_dir(args.out, workload=wl.name))
        configs, skipped = for_ranks(configs, skipped, session.world)
    if args.profile not in (None, PROFILE_FIRST) and args.profile not in ok:
        raise ValueError(f"--profile names strategy {args.profile!r}, which is not run here; run: {', '.join(ok)}")
    sweep = Sweep(configs=configs, run_dir=run_dir, resume=args.resume, skipped=skipped,
                  isolate=not args.no_isolate and session is None, timeout_s=args.timeout or None, telemetry=settings,
                  profile=args.profile, rerun_failed=not args.keep_failed, processes=processes)
    if session is not None and not session.leader:
        return follow(session, sweep)
    with RunLock(run_dir):
        return _lead(args, sweep, wl, names, session)


def _lead(args: argparse.Namespace, sweep: Sweep, wl: Workload, names: list[str],
          session: RankSession | None) -> int:
    """The sweep itself, with the run directory locked: run.json, probe, rows, summary, report."""
    run_dir = sweep.run_dir
    info = {"workloads": [wl.name, wl.identity()], "mode": args.mode, "device": args.device, "strategies": names,
            "options": args.option, "argv": sys.argv[1:], "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if args.resume:
        check_run_info(run_dir, info)
        _say_resume(run_dir, sweep)
    write_run_info(run_dir, info)
    console = Console(stderr=True)
    busy = busy_warning()
    if busy:
        console.print(busy, highlight=False, markup=False)
    if not args.no_probe:
        disk = args.disk if args.disk is not None else graph_path(wl).parent
        disk.mkdir(parents=True, exist_ok=True)
        # in a child process, like the workers: a CUDA context made here would outlive the probe (issue 11)
        _, problem = ensure_probe_isolated(run_dir, reprobe=args.reprobe, disk_path=disk)
        if problem:
            console.print(f"warning: {problem}; the report shows no ceilings", highlight=False, markup=False)
    leader = RankLeader(session, sweep) if session is not None else None
    try:
        records = _run_with_progress(sweep, console, leader)
    finally:
        if leader is not None:
            leader.finish()
    print_summary(records, run_dir)
    if not args.no_report:
        paths = write_report(run_dir)
        console.print(f"report: {paths.html}", highlight=False)
    failed = [r for r in records if r.status == "failed"]
    return 1 if failed else 0


def _say_resume(run_dir: Path, sweep: Sweep) -> None:
    """One line: what --resume keeps and what it runs again."""
    rows, _ = read_records(run_dir / RESULTS_FILE)
    last = {r.get("config_key"): r.get("status") for r in rows}
    keys = [c.key for c in sweep.configs] + [c.key for c, _ in sweep.skipped]
    kept = sum(1 for k in keys if last.get(k) in ("ok", "skipped") or (last.get(k) == "failed" and
                                                                          not sweep.rerun_failed))
    rerun = sum(1 for k in keys if last.get(k) == "failed" and sweep.rerun_failed)
    new = sum(1 for k in keys if k not in last)
    sys.stderr.write(f"resume: {kept} configuration(s) already finished and kept, {rerun} failed one(s) run again, "
                     f"{new} not run yet\n")


def _label(cfg: Config) -> str:
    opts = ",".join(f"{k}={v}" for k, v in cfg.options.items())
    return f"{cfg.strategy}{' ' + opts if opts else ''} · {cfg.workload.name} · {cfg.mode}"


def _run_with_progress(sweep: Sweep, console: Console, executor: RankLeader | None = None) -> list[Record]:
    """A bar (configuration i of n, the current one, elapsed) on a terminal; one line per configuration otherwise."""
    interactive = sys.stderr.isatty()
    progress = Progress(TextColumn("[bold]{task.fields[index]}"), TextColumn("{task.description}"), BarColumn(),
                        TimeElapsedColumn(), console=console, disable=not interactive, transient=True)
    total = len(sweep.configs) + len(sweep.skipped)
    with progress:
        task = progress.add_task("starting", total=total, index=f"0/{total}")

        def on_start(i: int, n: int, cfg: Config) -> None:
            progress.update(task, completed=i - 1, index=f"{i}/{n}", description=_label(cfg))

        def on_done(i: int, n: int, rec: Record) -> None:
            progress.update(task, completed=i)
            if not interactive:
                status = rec.status if rec.status == "ok" else f"{rec.status}: {rec.error}"
                console.print(f"[{i}/{n}] {rec.strategy} {rec.workload} {rec.mode} {rec.options or ''} -> {status}",
                              highlight=False, markup=False)

        return run_sweep(sweep, executor=executor, on_start=on_start, on_done=on_done)

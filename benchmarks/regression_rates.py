"""How often the run-vs-run gate fires: false alarms on same-code pairs, detection of planted slowdowns.

Measured, not assumed. For each of ``--pairs`` pairs, two real runs of the same code are made back to back with
``accessbench run`` (``--no-report --no-probe``, a few CPU strategies, ``--steps`` measured steps). Then, with
``accessbench.reports.compare.compare_results`` at ``--threshold`` (default: the report's default):

- *false alarm*: the gate (any regression) fires on the pair (A, B) of the same code;
- *detection* of a planted x1.1 and x1.2 slowdown: B's per-step samples and every median/p10/p90 time are multiplied
  by the factor, and the gate fires on (A, slowed B).

A pair counts once (the gate's yes/no for the whole run, as ``--fail-on-regression`` sees it); the per-row counts
(configuration x metric) and how many rows were contended are printed too. Runs are kept in ``--out`` so the
analysis can be repeated without measuring again (``--analyse-only``).

    python benchmarks/regression_rates.py --pairs 10 --workload tiny --out /tmp/rates-tiny
    python benchmarks/regression_rates.py --analyse-only --out /tmp/rates-tiny --json rates.json

This is a benchmark, not a test: it takes minutes, and its numbers depend on the machine and how busy it is.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["analyse", "main", "make_pairs", "plant"]

TIME_SUFFIXES = ("_s", "_s_p10", "_s_p90")
FACTORS = (1.1, 1.2)


def make_pairs(out: Path, *, pairs: int, workload: str, strategies: str, steps: int, device: str, processes: int = 1,
               budget_s: float | None = None) -> list[tuple[Path, Path]]:
    """Run ``pairs`` pairs of real runs into ``out/pair-NN/{a,b}`` (existing complete pairs are reused)."""
    done: list[tuple[Path, Path]] = []
    t0 = time.monotonic()
    for i in range(pairs):
        pair = out / f"pair-{i:02d}"
        runs = (pair / "a", pair / "b")
        for run_dir in runs:
            if (run_dir / "results.jsonl").is_file():
                continue
            cmd = [sys.executable, "-m", "accessbench", "run", "-w", workload, "-s", strategies, "--steps", str(steps),
                   "--processes", str(processes),
                   "--device", device, "--no-report", "--no-probe", "--out", str(run_dir)]
            print(f"[pair {i}] {' '.join(cmd[2:])}", file=sys.stderr, flush=True)
            subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL)
        if all((r / "results.jsonl").is_file() for r in runs):
            done.append(runs)
        if budget_s is not None and time.monotonic() - t0 > budget_s:
            print(f"time budget of {budget_s:.0f} s spent after {i + 1} pair(s)", file=sys.stderr)
            break
    return done


def plant(record: dict[str, Any], factor: float) -> dict[str, Any]:
    """A copy of ``record`` slowed by ``factor``: every time median/p10/p90 and every per-step sample."""
    rec = copy.deepcopy(record)
    for key, value in list(rec.items()):
        if key.endswith(TIME_SUFFIXES) and isinstance(value, (int, float)) and not isinstance(value, bool):
            rec[key] = value * factor
    for rate in ("feature_gbps", "rows_per_s", "edges_per_s"):
        for key in (rate, f"{rate}_p10", f"{rate}_p90"):
            if isinstance(rec.get(key), (int, float)):
                rec[key] = rec[key] / factor
    samples = rec.get("samples")
    if isinstance(samples, dict):
        rec["samples"] = {p: [v * factor for v in vs] for p, vs in samples.items() if isinstance(vs, list)}
    return rec


def _records(run_dir: Path) -> list[dict[str, Any]]:
    from accessbench import schema

    return schema.read_results(run_dir / schema.RESULTS_FILE).rows


def sweep(pairs: list[tuple[Path, Path]], thresholds: tuple[float, ...]) -> list[dict[str, Any]]:
    """Pairs on which the gate fires, per threshold, with the contention rule and with contended rows judged too."""
    from accessbench.reports.compare import compare_results
    from accessbench.reports.load import records_frame

    loaded = [(_records(a), _records(b)) for a, b in pairs]
    out = []
    for ignore in (False, True):
        for t in thresholds:
            row: dict[str, Any] = {"threshold": t, "contended_judged": ignore}
            for name, factor in {"same code": 1.0, **{f"planted x{f:g}": f for f in FACTORS}}.items():
                fired = 0
                for base, new in loaded:
                    if ignore:
                        base = [{**r, "contended": False} for r in base]
                        new = [{**r, "contended": False} for r in new]
                    new = [plant(r, factor) if factor != 1.0 else r for r in new]
                    fired += compare_results(records_frame(base), records_frame(new), threshold=t).has_regression
                row[name] = fired
            out.append(row)
    return out


def analyse(pairs: list[tuple[Path, Path]], *, threshold: float) -> dict[str, Any]:
    """Gate outcomes over ``pairs``: same code, and B slowed by each of ``FACTORS``."""
    from accessbench.reports.compare import compare_results
    from accessbench.reports.load import records_frame

    out: dict[str, Any] = {"pairs": len(pairs), "threshold": threshold, "cases": {}}
    cases = {"same code": 1.0, **{f"planted x{f:g}": f for f in FACTORS}}
    for name, factor in cases.items():
        fired = rows = flagged = contended = 0
        ratios: list[float] = []
        for a, b in pairs:
            base = _records(a)
            new = [plant(r, factor) if factor != 1.0 else r for r in _records(b)]
            comp = compare_results(records_frame(base), records_frame(new), threshold=threshold)
            fired += comp.has_regression
            judged = comp.table[comp.table["metric"].astype(str) != ""]
            rows += len(judged)
            flagged += int((judged["verdict"] == "regression").sum())
            contended += int((judged["verdict"] == "contended").sum())
            head = judged[judged["headline"].astype(bool)]
            ratios += [float(x) for x in head["ratio"].dropna()]
        out["cases"][name] = {"factor": factor, "gate_fired": fired, "rows": rows, "rows_regression": flagged,
                              "rows_contended": contended,
                              "headline_ratio_min": min(ratios, default=None),
                              "headline_ratio_max": max(ratios, default=None)}
    return out


def _contention(pairs: list[tuple[Path, Path]]) -> tuple[int, int, float]:
    n = c = 0
    worst = 0.0
    for pair in pairs:
        for run in pair:
            for r in _records(run):
                if r.get("status") != "ok":
                    continue
                n += 1
                c += bool(r.get("contended"))
                worst = max(worst, float(r.get("cpu_others_cores") or 0.0))
    return n, c, worst


def main(argv: list[str] | None = None) -> int:
    from accessbench.reports.compare import DEFAULT_THRESHOLD

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=10)
    p.add_argument("--workload", default="tiny")
    p.add_argument("--strategies", "-s", default="cpu-centric,device-resident")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--processes", type=int, default=1, help="worker processes per configuration (run --processes)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    p.add_argument("--budget", type=float, default=None, metavar="S", help="stop making pairs after S seconds")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--analyse-only", action="store_true", help="use the pairs already in --out")
    p.add_argument("--json", type=Path, default=None, help="also write the result as JSON here")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    if args.analyse_only:
        pairs = [(d / "a", d / "b") for d in sorted(args.out.glob("pair-*"))
                 if (d / "a" / "results.jsonl").is_file() and (d / "b" / "results.jsonl").is_file()]
    else:
        pairs = make_pairs(args.out, pairs=args.pairs, workload=args.workload, strategies=args.strategies,
                           steps=args.steps, device=args.device, processes=args.processes,
                           budget_s=args.budget)
    result = analyse(pairs, threshold=args.threshold)
    n, c, worst = _contention(pairs)
    result.update(machine=f"{socket.gethostname()} ({platform.processor() or platform.machine()}, "
                          f"{os.cpu_count()} cores)",
                  date=dt.date.today().isoformat(), workload=args.workload, strategies=args.strategies,
                  steps=args.steps, processes=args.processes, ok_records=n, contended_records=c, worst_others_cores=worst,
                  seconds=round(time.monotonic() - t0, 1))
    print(f"{len(pairs)} pair(s) of {args.workload} ({args.strategies}, {args.steps} steps, {args.processes} "
          "process(es) per configuration), threshold "
          f"{args.threshold:.0%}; {c} of {n} ok records contended (worst: others used {worst:.2f} cores)")
    print("| case | gate fired (pairs) | rows flagged regression | rows contended (not judged) | headline ratio range |")
    print("|---|---|---|---|---|")
    for name, case in result["cases"].items():
        lo, hi = case["headline_ratio_min"], case["headline_ratio_max"]
        rng = f"{lo:.3f}..{hi:.3f}" if lo is not None else "-"
        print(f"| {name} | {case['gate_fired']} / {len(pairs)} | {case['rows_regression']} / {case['rows']} | "
              f"{case['rows_contended']} | {rng} |")
    thresholds = tuple(sorted({args.threshold, 0.10, 0.20, 0.30, 0.50}))
    result["sweep"] = sweep(pairs, thresholds)
    print()
    print("| threshold | contended rows | same code: gate fired | x1.1 detected | x1.2 detected |")
    print("|---|---|---|---|---|")
    for row in result["sweep"]:
        how = "judged too" if row["contended_judged"] else "not judged (default)"
        print(f"| {row['threshold']:.0%} | {how} | {row['same code']} / {len(pairs)} | {row['planted x1.1']} / "
              f"{len(pairs)} | {row['planted x1.2']} / {len(pairs)} |")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The one command for a CUDA machine: the GPU tests and the GPU studies in priority order within a time budget.

    accessbench check --gpu [--budget SECONDS] [--out DIR] [--full] [--dry-run]

Parts (highest priority first): environment and driver facts, the pytorch-direct study (zero-copy gather grid
against pinned memcpy, train mode, energy), the GPU tests of pinning and the UVA kernel, the caches study, the other
GPU tests, the out-of-core study. Each runs in its own process with an allowance derived from the budget; a part
that overruns is killed (the rows it finished are kept); check.json and check.md list what ran, what failed and what
was skipped for time. The output directory defaults to a new run directory under results/, never the checkout's docs/.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from accessbench.kernels.device import cuda_available
from accessbench.suite.runner.sweep import prepare_run_dir
from accessbench.suite.studies.check import MIN_PART_S, RESERVE_S, allowances, default_parts, run_parts, write_summary

__all__ = ["HELP", "NAME", "add_arguments", "run"]

NAME = "check"
HELP = "on a CUDA machine: the GPU tests and GPU studies within a time budget (--gpu)"
ORDER = 40
DEFAULT_BUDGET_S = 480.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gpu", action="store_true", required=True, help="run the GPU checks (needs CUDA)")
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, metavar="SECONDS",
                   help=f"total time for every part (default: {DEFAULT_BUDGET_S:g})")
    p.add_argument("--out", type=Path, default=None, help="output directory (default: results/<time>-check-gpu)")
    p.add_argument("--full", action="store_true", help="the studies' full grids instead of --quick")
    p.add_argument("--dry-run", action="store_true", help="print the parts and their allowances, run nothing")
    p.add_argument("--environment-only", action="store_true", help=argparse.SUPPRESS)


def _environment(out: Path) -> int:
    import torch

    from accessbench.suite.telemetry.envstamp import environment

    device = torch.device("cuda", torch.cuda.current_device())
    env = environment(device)
    (out / "environment.json").write_text(json.dumps(env, indent=1, default=str) + "\n")
    print(json.dumps(env, indent=1, default=str))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.budget < MIN_PART_S + RESERVE_S:
        raise ValueError(f"--budget must be at least {MIN_PART_S + RESERVE_S:g} s, got {args.budget:g}")
    parts = default_parts(quick=not args.full)
    if args.dry_run:
        planned = allowances(parts, args.budget)
        for part, secs in zip(parts, planned):
            print(f"{part.name:22s} {secs:6.0f} s  {part.what}")
        print(f"{'total':22s} {sum(planned):6.0f} s of a {args.budget:g} s budget ({RESERVE_S:g} s reserved); "
              "time a part leaves unused goes to the next")
        return 0
    if not cuda_available():
        sys.stderr.write("accessbench: error: check --gpu needs a CUDA device; torch sees none on this machine\n")
        return 3
    out = prepare_run_dir(args.out if args.out is not None else
                          Path("results") / f"{time.strftime('%Y%m%d-%H%M%S')}-check-gpu", workload="check-gpu")
    if args.environment_only:
        return _environment(out)
    device = "cuda"
    results = run_parts(parts, args.budget, out,
                        on_result=lambda rs: write_summary(out, rs, budget_s=args.budget, device=device))
    for r in results:
        detail = f" - {r.detail}" if r.detail else ""
        print(f"[check] {r.name}: {r.status} ({r.seconds:.0f} of {r.allowance_s:.0f} s){detail}", file=sys.stderr)
    print(f"summary: {out / 'check.md'}", file=sys.stderr)
    return 0 if all(r.status == "ok" for r in results) else 1

"""``accessbench trace``: record a workload's id trace once, for ``accessbench simulate`` to replay (``sim.trace``).

Draws ``ranks x steps`` batches of seeds (the workload's seeded shuffle of its training ids), gives global batch ``j``
to rank ``j % ranks`` (each rank trains on its own seeds), samples each with the suite's sampler (rank ``r`` uses a
generator seeded ``seed + r``) and keeps each batch's unique node ids in order, seeds first. The file also carries
the static importance scores the cache policies need (in-degree, and the frequency over K pre-sampled batches), so
the simulator never needs the graph.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from accessbench.suite.sim.trace import record_trace
from accessbench.workloads.config import load_workload
from accessbench.workloads.graphs import graph_path

__all__ = ["HELP", "NAME", "add_arguments", "run"]

NAME = "trace"
HELP = "record a workload's per-batch id trace for the cache simulator"
ORDER = 60


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workload", default="default", help="preset name or workload TOML (default: default)")
    parser.add_argument("--steps", type=int, default=None,
                        help="batches per rank (default: the workload's warm-up + measured steps)")
    parser.add_argument("--ranks", type=int, default=1, help="ranks whose seeds are recorded (default: 1)")
    parser.add_argument("--presample-batches", type=int, default=0,
                        help="K for the presample score (default 0: one epoch of training ids)")
    parser.add_argument("--presample-seed", type=int, default=1234, help="seed of the pre-sampled batches")
    parser.add_argument("-o", "--output", required=True, type=Path, help="trace file to write (.pt; a .json "
                        "header is written next to it)")




def _check_writable(path: Path) -> None:
    """Fail now, with the path, if the trace (and its .json header) cannot be written: not after all the sampling."""
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe = parent / f".{path.name}.write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write the trace ({exc.strerror})", str(path)) from None


def run(args: argparse.Namespace) -> int:
    _check_writable(args.output)
    workload = load_workload(args.workload)
    steps = args.steps if args.steps is not None else workload.warmup_steps + workload.steps
    print(f"recording {args.ranks} rank(s) x {steps} batches of {workload.name} "
          f"(graph at {graph_path(workload)})", flush=True)
    trace = record_trace(workload, steps=steps, ranks=args.ranks, presample_batches=args.presample_batches,
                         presample_seed=args.presample_seed)
    path = trace.save(args.output)
    h = trace.header
    print(f"wrote {path} and {path.with_suffix('.json')}: {h['rows']:,} row requests over "
          f"{h['ranks'] * h['steps']} batches, {h['num_nodes']:,} nodes, {h['row_bytes']} B rows")
    return 0

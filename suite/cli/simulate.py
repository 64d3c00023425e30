"""Replay a recorded trace through the ``cached`` strategy's policies for N GPUs x cache sizes x policies x
placements: hit rates, bytes per link and, with link bandwidths (``--hardware`` profile or ``--probe``), a projected
data-access time per epoch. Every row is labelled simulated.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import torch

from accessbench.kernels.strategies.cached.policies import POLICIES, PolicyConfig
from accessbench.suite.sim.hardware import BACKING_MODELS, links_from_probe, load_profile, profile_names
from accessbench.suite.sim.simulator import SimConfig, Trace, as_record_fields, sim_record, simulate
from accessbench.suite.studies.report import markdown_table

__all__ = ["HELP", "NAME", "add_arguments", "grid", "run", "sim_record"]

NAME = "simulate"
HELP = "replay a trace for N GPUs x cache sizes x policies x placements (simulated hit rates, bytes, time)"
ORDER = 61


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated integers, e.g. 1,2,4,8") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: values must be >= 1")
    return values


def _fractions(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated fractions, e.g. 0.05,0.1,0.2") from None
    if not values or not all(0.0 <= v <= 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: fractions must be in [0, 1]")
    return values


def _choices(valid: tuple[str, ...]):
    def parse(text: str) -> list[str]:
        values = [v.strip() for v in text.split(",") if v.strip()]
        bad = [v for v in values if v not in valid]
        if bad or not values:
            raise argparse.ArgumentTypeError(f"{text!r}: valid: {', '.join(valid)}")
        return values
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trace", type=Path, help="trace file from `accessbench trace`")
    parser.add_argument("--gpus", type=_ints, default=[1], help="GPU counts, e.g. 1,2,4,8 (default 1)")
    parser.add_argument("--cache-fraction", type=_fractions, default=[0.05, 0.1, 0.2],
                        help="cache size per GPU as a fraction of the feature table (default 0.05,0.1,0.2)")
    parser.add_argument("--policies", type=_choices(POLICIES), default=list(POLICIES),
                        help=f"policies (default all: {','.join(POLICIES)})")
    parser.add_argument("--placement", type=_choices(("replicate", "partition")), default=["replicate", "partition"],
                        help="placements for GPU counts > 1 (default replicate,partition)")
    parser.add_argument("--victim-buffer", choices=("off", "on", "both"), default="off",
                        help="simulate the victim buffer (replicate placement only; default off)")
    parser.add_argument("--victim-fraction", type=float, default=0.05, help="victim ring, fraction of the rows")
    parser.add_argument("--backing", choices=BACKING_MODELS, default="zero-copy",
                        help="how misses are served, for bytes per link (default zero-copy)")
    parser.add_argument("--superbatch", type=int, default=0, help="belady look-ahead in batches (0: whole trace)")
    parser.add_argument("--hybrid-importance", choices=("presample", "degree"), default="presample")
    parser.add_argument("--hybrid-prior", type=float, default=PolicyConfig.hybrid_prior)
    parser.add_argument("--hybrid-recency", type=float, default=PolicyConfig.hybrid_recency)
    parser.add_argument("--hybrid-lookahead", type=int, default=PolicyConfig.hybrid_lookahead,
                        help="batches hybrid sees ahead (the strategy's load() samples them ahead)")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--hardware", help=f"hardware profile name or TOML ({', '.join(profile_names())})")
    src.add_argument("--probe", type=Path, help="probe.json with this machine's measured links")
    parser.add_argument("-o", "--output", type=Path, help="write records: .jsonl (default), .csv or .md")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: the replay's tensors are small; more threads mostly contend)")


def grid(args: argparse.Namespace, trace: Trace) -> list[SimConfig]:
    """The configurations the arguments ask for (partition only where GPUs > 1)."""
    cfg = PolicyConfig(hybrid_importance=args.hybrid_importance, hybrid_prior=args.hybrid_prior,
                       hybrid_recency=args.hybrid_recency, hybrid_lookahead=args.hybrid_lookahead,
                       presample_batches=int(trace.header.get("presample", {}).get("batches", 8)))
    victims = {"off": [False], "on": [True], "both": [False, True]}[args.victim_buffer]
    out = []
    for gpus, frac, policy, placement, victim in itertools.product(
            args.gpus, args.cache_fraction, args.policies, args.placement, victims):
        if gpus == 1 and placement == "partition" and "replicate" in args.placement:
            continue  # identical to replicate on one GPU
        if victim and placement == "partition" and gpus > 1:
            continue
        out.append(SimConfig(gpus=gpus, cache_fraction=frac, policy=policy, placement=placement,
                             victim_buffer=victim, victim_fraction=args.victim_fraction, backing=args.backing,
                             superbatch=args.superbatch, policy_config=cfg))
    return out


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "-"
    if pct:
        return f"{100 * v:.1f}%"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def _table(records: list[dict[str, Any]]) -> str:
    head = ["gpus", "placement", "policy", "cache/GPU", "hit", "device", "peer", "victim", "GB h2d", "GB peer",
            "epoch s (serial)", "epoch s (overlap)"]
    rows = [[r["ranks"], r["placement"], r["policy"] + (" +victim" if r["options"]["victim_buffer"] else ""),
             _fmt(r["cache_fraction"], True), _fmt(r["hit_rate"], True), _fmt(r["hit_rate_device"], True),
             _fmt(r["hit_rate_peer"], True), _fmt(r["hit_rate_victim"], True),
             f"{r['bytes_h2d'] / 1e9:.3f}", f"{r['bytes_peer'] / 1e9:.3f}",
             _fmt(r["projected_epoch_s"]), _fmt(r["projected_epoch_s_overlap"])] for r in records]
    return markdown_table(head, rows)


def write_records(records: list[dict[str, Any]], path: Path) -> None:
    """``.csv`` (flat columns), ``.md`` (the printed table) or JSON lines of schema records (``simulated``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        import pandas as pd

        flat = [{**{k: v for k, v in r.items() if k not in ("options", "notes")},
                 "notes": "; ".join(r["notes"])} for r in records]
        pd.DataFrame(flat).to_csv(path, index=False)
    elif path.suffix == ".md":
        path.write_text("SIMULATED (trace replay, not measured)\n\n" + _table(records) + "\n")
    else:
        with open(path, "w") as f:  # records of the suite's schema, labelled simulated
            f.writelines(json.dumps(as_record_fields(r)) + "\n" for r in records)


def run(args: argparse.Namespace) -> int:
    if args.threads < 1:
        raise ValueError("--threads must be >= 1")
    saved = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(saved)


def _run(args: argparse.Namespace) -> int:
    trace = Trace.load(args.trace)
    links = load_profile(args.hardware) if args.hardware else links_from_probe(args.probe) if args.probe else None
    configs = grid(args, trace)
    records = []
    for i, cfg in enumerate(configs, 1):
        print(f"\r[{i}/{len(configs)}] simulating {cfg.gpus} GPU(s) {cfg.placement} {cfg.policy} "
              f"{cfg.cache_fraction:g}".ljust(70), end="", file=sys.stderr, flush=True)
        records.append(sim_record(simulate(trace, cfg), trace, links))
    print(file=sys.stderr)
    h = trace.header
    print(f"SIMULATED: {h.get('workload')} trace ({h['num_nodes']:,} nodes, {h['row_bytes']} B rows, "
          f"{h['ranks']}x{h['steps']} batches), misses via {args.backing}"
          + (f", links from {links.name}" if links else ", no link bandwidths (no projected time)"))
    print(_table(records))
    if args.output:
        write_records(records, args.output)
        print(f"wrote {len(records)} simulated record(s) to {args.output}")
    return 0

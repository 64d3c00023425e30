"""Check a graph store completely: exact sizes, the full digest of every array, finite features (unless the
manifest allows NaN/inf) and the CSR's structure. Prints one line: ok, or what is wrong (exit 2)."""

from __future__ import annotations

import argparse
from pathlib import Path

from accessbench.workloads.store import verify_store

NAME = "verify"
HELP = "fully check a graph store (sizes, digests, finite features, CSR); one line: ok or what is wrong"
ORDER = 31


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", type=Path, help="store directory (the one holding manifest.json)")


def run(args: argparse.Namespace) -> int:
    m = verify_store(args.store)
    print(f"ok: store {args.store}: {m['num_nodes']} nodes, {m['num_edges']} edges, {m['feat_dim']} x {m['dtype']} "
          f"features; {len(m['arrays'])} arrays match their digests")
    return 0

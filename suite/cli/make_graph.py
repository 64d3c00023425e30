"""Generate a synthetic power-law graph store, or import a local dataset into one."""

from __future__ import annotations

import argparse
from pathlib import Path

from accessbench.workloads.generate import FEATURE_DTYPES, GraphSpec, generate
from accessbench.workloads.store import read_manifest

NAME = "make-graph"
HELP = "generate a synthetic graph store, or import OGB/IGB files into one"
ORDER = 30


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.ArgumentDefaultsHelpFormatter  # --help shows every default
    p.add_argument("out", type=Path, help="store directory to write (new or empty, unless --overwrite)")
    p.add_argument("--from", dest="source", choices=("synthetic", "ogb", "igb"), default="synthetic",
                   help="generate a synthetic graph, or import a local dataset")
    p.add_argument("--src", type=Path, default=None, help="dataset directory to import (with --from ogb|igb)")
    p.add_argument("--nodes", type=int, default=100_000, help="number of nodes (synthetic)")
    p.add_argument("--avg-degree", type=float, default=15.0, help="mean out-degree (synthetic)")
    p.add_argument("--feat-dim", type=int, default=128, help="feature elements per row (synthetic)")
    p.add_argument("--dtype", default="float32", choices=FEATURE_DTYPES, help="feature dtype (synthetic)")
    p.add_argument("--alpha", type=float, default=2.1, help="power-law exponent (> 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (synthetic)")
    p.add_argument("--name", default=None, help="the store's name in its manifest")
    p.add_argument("--overwrite", action="store_true", help="replace an existing store or files in OUT")
    p.add_argument("--import-option", "-x", action="append", default=[], metavar="KEY=VALUE",
                   help="importer option, e.g. split=sales_ranking, symmetrize=false, size=small, num_nodes=N, "
                        "allow_nonfinite=true, allow_empty_edges=true (see docs/IMPORTERS.md)")


def _coerce(value: str, default: object) -> object:
    """A CLI string as the type of the option's default (bool, int, or str; None defaults take the string)."""
    if isinstance(default, bool):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected true or false, got {value!r}")
    if isinstance(default, int):
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"expected an integer, got {value!r}") from None
    if default is None and value.isdigit():
        return int(value)
    return value


def run(args: argparse.Namespace) -> int:
    if args.source == "synthetic":
        spec = GraphSpec(num_nodes=args.nodes, avg_degree=args.avg_degree, feat_dim=args.feat_dim,
                         dtype=args.dtype, alpha=args.alpha, seed=args.seed)
        path = generate(spec, args.out, name=args.name, overwrite=args.overwrite)
    else:
        if args.src is None:
            raise ValueError(f"--from {args.source} needs --src DIR (the unpacked dataset)")
        from accessbench.workloads.importers import import_dataset, importer_options

        defaults = importer_options(args.source)
        opts = {}
        for item in args.import_option:
            key, sep, value = item.partition("=")
            if not sep or key not in defaults or key in ("name", "overwrite"):
                valid = ", ".join(k for k in defaults if k not in ("name", "overwrite"))
                raise ValueError(f"bad --import-option {item!r}; valid keys for {args.source}: {valid}")
            try:
                opts[key] = _coerce(value, defaults[key])
            except ValueError as exc:
                raise ValueError(f"--import-option {key}: {exc}") from None
        path = import_dataset(args.source, args.src, args.out, name=args.name, overwrite=args.overwrite, **opts)
    m = read_manifest(path)
    print(f"store {path}: {m['num_nodes']} nodes, {m['num_edges']} edges, {m['feat_dim']} x {m['dtype']} features")
    return 0

"""List the registered strategies with their availability on this machine, their options, and the presets."""

from __future__ import annotations

import argparse
import dataclasses

from rich.console import Console
from rich.table import Table

from accessbench.kernels import registry
from accessbench.suite.runner.plugins import load_plugins
from accessbench.workloads.config import load_workload, preset_names

NAME = "list"
HELP = "show strategies (with availability and reason, options) and workload presets"
ORDER = 20


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("strategy", nargs="?", default=None,
                   help="show this strategy's options: type or allowed values, default and meaning")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--plugins", default=None, metavar="MODULES",
                   help="comma-separated modules registering extra strategies (also $ACCESSBENCH_PLUGINS)")


def _options(name: str) -> str:
    fields = registry.option_fields(name)
    parts = []
    for f in fields.values():
        default = f.default if f.default is not dataclasses.MISSING else "?"
        parts.append(f"{f.name}={default}")
    return ", ".join(parts) or "-"


def _one(name: str, *, as_json: bool) -> int:
    docs = registry.option_docs(name)
    ok, reason = registry.availability()[name]
    if as_json:
        import json

        print(json.dumps({"name": name, "available": ok, "reason": reason, "options": docs}, indent=2))
        return 0
    t = Table(title=f"{name}: {'available' if ok else 'unavailable: ' + reason}")
    for col in ("option", "type or values", "default", "meaning"):
        t.add_column(col, overflow="fold")
    for opt, d in docs.items():
        t.add_row(opt, d["type"], d["default"], d["meaning"] or "-")
    Console().print(t)
    print(f"set with: accessbench run -s {name} -o {name}:OPTION=VALUE[,VALUE2] (values sweep)")
    return 0


def run(args: argparse.Namespace) -> int:
    load_plugins([m.strip() for m in (args.plugins or "").split(",") if m.strip()])
    if args.strategy is not None:
        return _one(args.strategy, as_json=args.json)
    avail = registry.availability()
    presets = {n: load_workload(n) for n in preset_names()}
    if args.json:
        import json

        print(json.dumps({
            "strategies": {n: {"available": ok, "reason": reason, "options": _options(n)}
                           for n, (ok, reason) in avail.items()},
            "presets": {n: {"mode": w.mode, "description": w.description} for n, w in presets.items()},
        }, indent=2))
        return 0
    console = Console()
    t = Table(title="strategies")
    for col in ("name", "available", "reason", "options"):
        t.add_column(col)
    for n, (ok, reason) in avail.items():
        t.add_row(n, "yes" if ok else "no", "" if ok else reason, _options(n))
    console.print(t)
    p = Table(title="presets")
    for col in ("name", "mode", "description"):
        p.add_column(col)
    for n, w in presets.items():
        p.add_row(n, w.mode, w.description)
    console.print(p)
    print("options of one strategy, with their meaning: accessbench list STRATEGY")
    return 0

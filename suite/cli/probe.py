"""Measure this machine's ceilings (memory, PCIe, device, peer and disk bandwidth, disk IOPS), each with its method.

The result is cached per machine (hostname, GPUs, torch, filesystem probed) so `accessbench run` reuses it, and
written as probe.json into RUN_DIR when one is given.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from accessbench.suite.probe.ceilings import PROBE_FILE, ensure_probe

__all__ = ["HELP", "NAME", "ORDER", "add_arguments", "format_value", "run"]

NAME = "probe"
HELP = "measure this machine's bandwidth and IOPS ceilings (cached per machine; saved into a run directory)"
ORDER = 60


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``[RUN_DIR] [--disk PATH] [--quick] [--cached] [--json]``."""
    parser.add_argument("run_dir", metavar="RUN_DIR", nargs="?", type=Path, default=None,
                        help=f"also write {PROBE_FILE} into this run directory")
    parser.add_argument("--disk", metavar="PATH", type=Path, default=None,
                        help="directory whose filesystem to probe for IOPS and sequential reads "
                             "(default: the graph cache, $ACCESSBENCH_CACHE or ~/.cache/accessbench)")
    parser.add_argument("--quick", action="store_true", help="smaller buffers and shorter runs (a few seconds)")
    parser.add_argument("--cached", action="store_true",
                        help="reuse this machine's cached probe when there is one instead of measuring again")
    parser.add_argument("--json", action="store_true", help="print the probe as JSON instead of a table")


def format_value(value: Any, unit: str) -> str:
    """``12.3 GB/s`` / ``45,600 IOPS``, or ``not measured``."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return "not measured"
    return f"{value:,.0f} {unit}" if unit == "IOPS" else f"{value:.3g} {unit}"


def run(args: argparse.Namespace) -> int:
    """Probe (or reuse the cached probe), then print it."""
    if args.disk is not None and not args.disk.is_dir():
        raise ValueError(f"--disk {args.disk}: not a directory")
    data = ensure_probe(args.run_dir, reprobe=not args.cached, disk_path=args.disk, quick=args.quick)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    meta = data.get("meta", {})
    machine = meta.get("machine", {})
    title = (f"{machine.get('hostname')}: {machine.get('cpu')}, {machine.get('cores')} cores"
             + (f", {machine.get('gpu')}" if machine.get("gpu") else ", no GPU"))
    table = Table(title=title, show_lines=False)
    table.add_column("ceiling")
    table.add_column("value", justify="right")
    table.add_column("method / reason", overflow="fold")
    for key, entry in data.items():
        if key == "meta" or not isinstance(entry, dict):
            continue
        value = format_value(entry.get("value"), str(entry.get("unit", "")))
        how = entry.get("method", "") if entry.get("value") is not None else f"{entry.get('reason')} [{entry.get('method')}]"
        table.add_row(key, value, str(how))
    console = Console()
    console.print(table)
    state = "reused from" if meta.get("reused") else "measured and cached in"
    console.print(f"{state} {meta.get('cache_file')} ({meta.get('time')}, {meta.get('duration_s')} s)")
    if args.run_dir is not None:
        console.print(f"written to {args.run_dir / PROBE_FILE}")
    return 0

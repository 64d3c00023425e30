"""What every example shares: the command line, a small graph written as a store, and the timing line.

Not an example itself: each script next to this file shows one strategy's create, prepare, gather and check.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch

from accessbench.kernels.base import AccessStrategy
from accessbench.kernels.types import GraphData
from accessbench.stats import spread
from accessbench.timing import time_calls
from accessbench.workloads.generate import GraphSpec, generate
from accessbench.workloads.store import open_store

__all__ = ["example_graph", "print_timing"]


@contextlib.contextmanager
def example_graph(doc: str) -> Iterator[tuple[str, GraphData]]:
    """``(--device, graph)``: a small synthetic power-law graph (4k nodes, 64 fp32 features each: 256 B rows),
    written as a store to a temporary directory that is removed afterwards."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        yield args.device, open_store(generate(GraphSpec(num_nodes=4000, avg_degree=10, feat_dim=64),
                                               Path(tmp) / "graph"))


def print_timing(strategy: AccessStrategy, ids: torch.Tensor, device: torch.device, graph: GraphData) -> None:
    """Time ``strategy.gather(ids)`` (3 warm-up calls, 20 timed, synchronised) and print median, p10 and p90."""
    s = spread(time_calls(lambda: strategy.gather(ids), device=device, warmup=3, repeats=20))
    print(f"gather {ids.numel()} rows x {graph.row_bytes} B: median {s.median * 1e6:.1f} us "
          f"(p10 {s.p10 * 1e6:.1f}, p90 {s.p90 * 1e6:.1f}, {s.n} calls)")

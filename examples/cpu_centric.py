"""cpu-centric: features stay in host memory; the CPU gathers the rows and copies them to the compute device.

The baseline every other strategy is compared with. Run: ``python examples/cpu_centric.py [--device cpu|cuda]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

from accessbench.kernels import registry
from accessbench.kernels.device import resolve_device
from accessbench.kernels.errors import StrategyUnavailable
from accessbench.stats import spread
from accessbench.timing import time_calls
from accessbench.workloads.generate import GraphSpec, generate
from accessbench.workloads.store import open_store


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        # a small synthetic power-law graph: 4k nodes, 64 fp32 features each (256 B rows)
        graph = open_store(generate(GraphSpec(num_nodes=4000, avg_degree=10, feat_dim=64), Path(tmp) / "graph"))
        try:
            device = resolve_device(args.device)
            strategy = registry.create("cpu-centric", prefetch=0)  # options: see `accessbench list`
            strategy.prepare(graph, device)
        except StrategyUnavailable as exc:  # a missing device or library: say so, never fall back
            print(exc, file=sys.stderr)
            return 2
        with strategy:  # close() releases what prepare() took
            ids = torch.randint(0, graph.num_nodes, (1024,))  # fresh random ids, duplicates and any order
            out = strategy.gather(ids)  # [1024, 64] on the compute device
            assert torch.equal(out.cpu(), graph.features[ids])  # every strategy is exact
            print(f"exact: gather of {ids.numel()} ids on {device} equals features[ids]")
            s = spread(time_calls(lambda: strategy.gather(ids), device=device, warmup=3, repeats=20))
            print(f"gather {ids.numel()} rows x {graph.row_bytes} B: median {s.median * 1e6:.1f} us "
                  f"(p10 {s.p10 * 1e6:.1f}, p90 {s.p90 * 1e6:.1f}, {s.n} calls)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

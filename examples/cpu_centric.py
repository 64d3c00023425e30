"""cpu-centric: features stay in host memory; the CPU gathers the rows and copies them to the compute device.

The baseline every other strategy is compared with. Run: ``python examples/cpu_centric.py [--device cpu|cuda]``.
"""

from __future__ import annotations

import sys

import torch
from _common import example_graph, print_timing  # the shared command line, graph and timing line

from accessbench.kernels import registry
from accessbench.kernels.device import resolve_device
from accessbench.kernels.errors import StrategyUnavailable


def main() -> int:
    with example_graph(__doc__) as (device_name, graph):  # 4k nodes, 64 fp32 features each (256 B rows)
        try:
            device = resolve_device(device_name)
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
            print_timing(strategy, ids, device, graph)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Sampler throughput, new (kernels/sampling.py) vs the pre-issue-12 reference, side by side in one process.

asv: ``SamplingSuite`` times one batch of 1024 seeds with each preset's fanouts (``default`` [10, 5],
``papers100m-like`` [15, 10, 5]) at 1 and 2 torch threads, and tracks edges/s and the new/reference ratio.
Script (the table in docs/results/sampling-cpu-2core.md)::

    python3 -m benchmarks.bench_sampling --presets default,papers100m-like --threads 1,2 --batches 20
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import ClassVar

import torch

from accessbench.kernels import sampling
from accessbench.kernels.types import GraphData
from accessbench.workloads.config import load_workload
from accessbench.workloads.graphs import materialise


def _load_reference() -> ModuleType:
    """The reference sampler (the test oracle, tests/kernels/sampling_reference.py), loaded by path: asv imports
    this module from the benchmark directory, where the checkout's ``tests`` package is not importable."""
    path = Path(__file__).resolve().parents[1] / "tests" / "kernels" / "sampling_reference.py"
    spec = importlib.util.spec_from_file_location("accessbench_sampling_reference", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"the reference sampler is missing: {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sampling_reference = _load_reference()

__all__ = ["SamplingSuite", "compare", "main"]

PRESETS = ["default", "papers100m-like"]
THREADS = [1, 2]
SEEDS_PER_BATCH = 1024


def _batches(graph: GraphData, count: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    train = graph.train_ids if graph.train_ids is not None else torch.arange(graph.num_nodes)
    return [train[torch.randint(0, train.numel(), (SEEDS_PER_BATCH,), generator=g)] for _ in range(count)]


def edges_per_s(sample_blocks: Callable, graph: GraphData, batches: list[torch.Tensor], fanouts: list[int],
                *, rounds: int = 3) -> float:
    """Best-of-``rounds`` sampled edges per second over ``batches`` (units: edges/s)."""
    gen = torch.Generator().manual_seed(0)
    sample_blocks(graph.indptr, graph.indices, batches[0], fanouts, gen)  # warm-up (page cache, tables)
    best = 0.0
    for _ in range(rounds):
        edges = 0
        t0 = time.perf_counter()
        for seeds in batches:
            edges += sample_blocks(graph.indptr, graph.indices, seeds, fanouts, gen).num_edges
        best = max(best, edges / (time.perf_counter() - t0))
    return best


def compare(preset: str, threads: int, *, batches: int = 20, rounds: int = 3) -> dict[str, float]:
    """New and reference edges/s and their ratio on ``preset`` at ``threads`` torch threads (interleaved)."""
    wl = load_workload(preset)
    graph = materialise(wl)
    seeds = _batches(graph, batches)
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        ref = new = 0.0
        for _ in range(rounds):  # interleave so that load from other processes hits both alike
            ref = max(ref, edges_per_s(sampling_reference.sample_blocks, graph, seeds, list(wl.fanouts), rounds=1))
            new = max(new, edges_per_s(sampling.sample_blocks, graph, seeds, list(wl.fanouts), rounds=1))
    finally:
        torch.set_num_threads(saved)
    return {"reference_edges_per_s": ref, "new_edges_per_s": new, "ratio": new / ref}


class SamplingSuite:
    """One batch of 1024 seeds, new vs reference sampler, per preset and thread count."""

    params: ClassVar[list[list]] = [PRESETS, THREADS]
    param_names: ClassVar[list[str]] = ["preset", "threads"]
    timeout = 600

    def setup_cache(self) -> None:
        for preset in PRESETS:
            materialise(load_workload(preset))

    def setup(self, preset: str, threads: int) -> None:
        self.workload = load_workload(preset)
        self.graph = materialise(self.workload)
        self.seeds = _batches(self.graph, 4)
        self.gen = torch.Generator().manual_seed(0)
        self.saved = torch.get_num_threads()
        torch.set_num_threads(threads)

    def teardown(self, preset: str, threads: int) -> None:
        torch.set_num_threads(self.saved)

    def time_sample_new(self, *_: object) -> None:
        sampling.sample_blocks(self.graph.indptr, self.graph.indices, self.seeds[0], self.workload.fanouts, self.gen)

    def time_sample_reference(self, *_: object) -> None:
        sampling_reference.sample_blocks(self.graph.indptr, self.graph.indices, self.seeds[0], self.workload.fanouts,
                                         self.gen)

    def track_new_edges_per_s(self, *_: object) -> float:
        return edges_per_s(sampling.sample_blocks, self.graph, self.seeds, list(self.workload.fanouts))

    track_new_edges_per_s.unit = "edges/s"  # type: ignore[attr-defined]

    def track_reference_edges_per_s(self, *_: object) -> float:
        return edges_per_s(sampling_reference.sample_blocks, self.graph, self.seeds, list(self.workload.fanouts))

    track_reference_edges_per_s.unit = "edges/s"  # type: ignore[attr-defined]

    def track_speedup(self, *_: object) -> float:
        fan = list(self.workload.fanouts)
        return (edges_per_s(sampling.sample_blocks, self.graph, self.seeds, fan)
                / edges_per_s(sampling_reference.sample_blocks, self.graph, self.seeds, fan))

    track_speedup.unit = "x"  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> None:
    """Print new vs reference edges/s and the ratio, side by side, per preset and thread count."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--threads", default=",".join(map(str, THREADS)))
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    print("| preset | fanouts | threads | reference edges/s | new edges/s | ratio |")
    print("|---|---|---|---:|---:|---:|")
    for preset in args.presets.split(","):
        for threads in map(int, args.threads.split(",")):
            r = compare(preset, threads, batches=args.batches, rounds=args.rounds)
            print(f"| {preset} | {list(load_workload(preset).fanouts)} | {threads} | "
                  f"{r['reference_edges_per_s'] / 1e6:.2f} M | {r['new_edges_per_s'] / 1e6:.2f} M | "
                  f"{r['ratio']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()

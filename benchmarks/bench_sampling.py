"""Sampler throughput: the pre-issue-12 reference, the torch backend and the numba backend of kernels/sampling.py,
side by side in one process.

asv: ``SamplingSuite`` times one batch of 1024 seeds with each preset's fanouts (``default`` [10, 5],
``papers100m-like`` [15, 10, 5]) at 1 and 2 torch threads per sampler, and tracks edges/s and the ratio to the
reference (the numba leg is skipped where numba is not installed). Script (the table in
docs/results/sampling-cpu-2core.md)::

    python3 -m benchmarks.bench_sampling --presets default,papers100m-like --threads 1,2 --batches 20

numba's compile time is not timed: every sampler is called once before its timed rounds (and ``cache=True`` keeps
the compiled code on disk between processes).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import time
from collections.abc import Callable, Iterator
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

__all__ = ["SAMPLERS", "SamplingSuite", "compare", "main", "sampler_ready"]

PRESETS = ["default", "papers100m-like"]
THREADS = [1, 2]
#: ``reference``: tests/kernels/sampling_reference.py; ``torch``, ``numba``: kernels/sampling.py's backends.
SAMPLERS = ["reference", "torch", "numba"]
SEEDS_PER_BATCH = 1024


def _batches(graph: GraphData, count: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    train = graph.train_ids if graph.train_ids is not None else torch.arange(graph.num_nodes)
    return [train[torch.randint(0, train.numel(), (SEEDS_PER_BATCH,), generator=g)] for _ in range(count)]


def sampler_ready(name: str) -> bool:
    """Whether sampler ``name`` (one of ``SAMPLERS``) can run here (numba: the package imports)."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; valid: {', '.join(SAMPLERS)}")
    return name != "numba" or sampling.numba_available()


@contextlib.contextmanager
def _running(name: str) -> Iterator[Callable]:
    """``sample_blocks`` of sampler ``name``; the backends are chosen through ``ACCESSBENCH_SAMPLER``."""
    if name == "reference":
        yield sampling_reference.sample_blocks
        return
    saved = os.environ.get("ACCESSBENCH_SAMPLER")
    os.environ["ACCESSBENCH_SAMPLER"] = name
    try:
        assert sampling.sampler_backend(torch.device("cpu")) == name
        yield sampling.sample_blocks
    finally:
        if saved is None:
            del os.environ["ACCESSBENCH_SAMPLER"]
        else:
            os.environ["ACCESSBENCH_SAMPLER"] = saved


def edges_per_s(sample_blocks: Callable, graph: GraphData, batches: list[torch.Tensor], fanouts: list[int],
                *, rounds: int = 3) -> float:
    """Best-of-``rounds`` sampled edges per second over ``batches`` (units: edges/s), after one untimed call
    (page cache, node tables, numba's compilation or cache load)."""
    gen = torch.Generator().manual_seed(0)
    sample_blocks(graph.indptr, graph.indices, batches[0], fanouts, gen)
    best = 0.0
    for _ in range(rounds):
        edges = 0
        t0 = time.perf_counter()
        for seeds in batches:
            edges += sample_blocks(graph.indptr, graph.indices, seeds, fanouts, gen).num_edges
        best = max(best, edges / (time.perf_counter() - t0))
    return best


def compare(preset: str, threads: int, *, batches: int = 20, rounds: int = 3) -> dict[str, float | None]:
    """Edges/s of every sampler on ``preset`` at ``threads`` torch threads, best of ``rounds`` interleaved rounds
    (``<sampler>_edges_per_s``), and each backend's ratio to the reference (``<sampler>_ratio``); None for a
    sampler that cannot run here."""
    wl = load_workload(preset)
    graph = materialise(wl)
    seeds = _batches(graph, batches)
    ready = [name for name in SAMPLERS if sampler_ready(name)]
    best = dict.fromkeys(ready, 0.0)
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for _ in range(rounds):  # interleave so that load from other processes hits all alike
            for name in ready:
                with _running(name) as fn:
                    best[name] = max(best[name], edges_per_s(fn, graph, seeds, list(wl.fanouts), rounds=1))
    finally:
        torch.set_num_threads(saved)
    out: dict[str, float | None] = {}
    for name in SAMPLERS:
        out[f"{name}_edges_per_s"] = best.get(name)
    for name in SAMPLERS[1:]:
        out[f"{name}_ratio"] = best[name] / best["reference"] if name in best else None
    return out


class SamplingSuite:
    """One batch of 1024 seeds per preset, thread count and sampler (reference, torch backend, numba backend)."""

    params: ClassVar[list[list]] = [PRESETS, THREADS, SAMPLERS]
    param_names: ClassVar[list[str]] = ["preset", "threads", "sampler"]
    timeout = 600

    def setup_cache(self) -> None:
        for preset in PRESETS:
            materialise(load_workload(preset))

    def setup(self, preset: str, threads: int, sampler: str) -> None:
        if not sampler_ready(sampler):
            raise NotImplementedError(f"sampler {sampler!r} cannot run here (numba is not installed)")  # asv: skip
        self.workload = load_workload(preset)
        self.graph = materialise(self.workload)
        self.seeds = _batches(self.graph, 4)
        self.gen = torch.Generator().manual_seed(0)
        self.saved = torch.get_num_threads()
        torch.set_num_threads(threads)
        self.stack = contextlib.ExitStack()
        self.sample = self.stack.enter_context(_running(sampler))
        self.sample(self.graph.indptr, self.graph.indices, self.seeds[0], self.workload.fanouts, self.gen)  # compile

    def teardown(self, preset: str, threads: int, sampler: str) -> None:
        self.stack.close()
        torch.set_num_threads(self.saved)

    def time_sample(self, *_: object) -> None:
        self.sample(self.graph.indptr, self.graph.indices, self.seeds[0], self.workload.fanouts, self.gen)

    def track_edges_per_s(self, *_: object) -> float:
        return edges_per_s(self.sample, self.graph, self.seeds, list(self.workload.fanouts))

    track_edges_per_s.unit = "edges/s"  # type: ignore[attr-defined]

    def track_speedup(self, preset: str, threads: int, sampler: str) -> float:
        """This sampler's edges/s over the reference's, measured one after the other (units: x; the reference's own
        entry is 1 by definition, not measured)."""
        if sampler == "reference":
            return 1.0
        fan = list(self.workload.fanouts)
        mine = edges_per_s(self.sample, self.graph, self.seeds, fan)
        ref = edges_per_s(sampling_reference.sample_blocks, self.graph, self.seeds, fan)
        return mine / ref

    track_speedup.unit = "x"  # type: ignore[attr-defined]


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 1e6:.2f} M"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def main(argv: list[str] | None = None) -> None:
    """Print every sampler's edges/s and each backend's ratio to the reference, per preset and thread count."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--threads", default=",".join(map(str, THREADS)))
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    print("| preset | fanouts | threads | reference edges/s | torch edges/s | numba edges/s | torch / ref "
          "| numba / ref |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for preset in args.presets.split(","):
        for threads in map(int, args.threads.split(",")):
            r = compare(preset, threads, batches=args.batches, rounds=args.rounds)
            print(f"| {preset} | {list(load_workload(preset).fanouts)} | {threads} | "
                  f"{_rate(r['reference_edges_per_s'])} | {_rate(r['torch_edges_per_s'])} | "
                  f"{_rate(r['numba_edges_per_s'])} | {_ratio(r['torch_ratio'])} | {_ratio(r['numba_ratio'])} |",
                  flush=True)


if __name__ == "__main__":
    main()

"""Baseline section: pinned/pageable memcpy ceilings, then cpu-centric and device-resident gather, sampling and a
short train run on the default preset's graph."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from accessbench.kernels import registry
from accessbench.suite.gpu_checks import CheckRow, GpuCheckContext
from accessbench.suite.measure.lifecycle import Config, execute
from accessbench.workloads.batches import random_ids, seed_batches
from accessbench.workloads.config import load_workload
from accessbench.workloads.graphs import materialise

from ._timing import memcpy_h2d_seconds, spread, time_cuda

SECTION = "Baseline: memcpy ceilings, cpu-centric and device-resident"
ORDER = 10
STRATEGIES = ("cpu-centric", "device-resident")


def _cycling(fn: Callable[[Any], Any], inputs: list[Any]) -> Callable[[], Any]:
    """A no-argument call of ``fn`` on the next of ``inputs`` (round robin), for repeated timing."""
    state = {"i": 0}

    def call() -> Any:
        x = inputs[state["i"] % len(inputs)]
        state["i"] += 1
        return fn(x)

    return call


def run(ctx: GpuCheckContext) -> list[CheckRow]:
    wl = load_workload("default")
    graph = materialise(wl)
    rows: list[CheckRow] = []
    id_counts = (100_000,) if ctx.quick else (100_000, 1_000_000)
    ceilings: dict[int, float] = {}
    for n in id_counts:
        nbytes = n * graph.row_bytes
        for pinned in (True, False):
            med, p10, p90 = spread(memcpy_h2d_seconds(nbytes, ctx.device, pinned=pinned))
            name = "memcpy-h2d-pinned" if pinned else "memcpy-h2d-pageable"
            gbps = nbytes / med / 1e9
            if pinned:
                ceilings[n] = gbps
            rows.append(CheckRow(SECTION, f"copy {nbytes / 2**20:.0f} MiB", name, "GB/s", gbps,
                                 nbytes / p90 / 1e9, nbytes / p10 / 1e9))
    ctx.shared["memcpy_h2d_pinned_gbps"] = ceilings
    gen = torch.Generator().manual_seed(0)
    for name in STRATEGIES:
        with registry.create(name) as strategy:
            strategy.prepare(graph, ctx.device)
            for n in id_counts:
                ids_list = [random_ids(graph.num_nodes, n, generator=gen) for _ in range(4)]
                sec = time_cuda(_cycling(strategy.gather, ids_list), repeats=10)
                med, p10, p90 = spread(sec)
                nbytes = n * graph.row_bytes
                rows.append(CheckRow(SECTION, f"gather {graph.row_bytes} B rows x {n} ids", name, "GB/s",
                                     nbytes / med / 1e9, nbytes / p90 / 1e9, nbytes / p10 / 1e9,
                                     reference=ceilings[n], reference_name="pinned memcpy"))
            sgen = torch.Generator(device=strategy.sample_device).manual_seed(0)
            batches = list(seed_batches(graph, wl.batch_size, seed=0, steps=13))
            edges: list[int] = []
            sample = _cycling(lambda seeds, s=strategy, g=sgen: s.sample(seeds, wl.fanouts, generator=g), batches)
            sec = time_cuda(lambda sample=sample, edges=edges: edges.append(sample().num_edges), repeats=10)
            med, p10, p90 = spread(sec)
            e = sum(edges[-10:]) / 10
            rows.append(CheckRow(SECTION, f"sample fanouts {list(wl.fanouts)} x {wl.batch_size} seeds", name,
                                 "edges/s", e / med, e / p90, e / p10))
    steps = 5 if ctx.quick else 20
    for name in STRATEGIES:
        rec = execute(Config(name, wl.with_overrides(steps=steps), "train", str(ctx.device)), run_id="check")
        rows.append(CheckRow(SECTION, f"train step, default preset ({steps} steps)", name, "ms/step",
                             rec.step_s * 1e3 if rec.step_s is not None else None,
                             rec.step_s_p10 * 1e3 if rec.step_s_p10 is not None else None,
                             rec.step_s_p90 * 1e3 if rec.step_s_p90 is not None else None,
                             note=rec.error or ""))
    return rows

"""Sample mode: neighbour sampling only, over the strategy's own placement of the topology."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from accessbench.kernels.base import AccessStrategy
from accessbench.kernels.types import GraphData
from accessbench.suite.telemetry import Telemetry
from accessbench.workloads.batches import seed_batches

from .config import Config
from .distributed import rank_and_world, rank_batches, rank_seed
from .phases import (
    ENDLESS,
    fill_phases,
    in_phase,
    profile,
    warmup,
)
from .records import Record
from .window import measure

__all__ = ["run"]


def run(rec: Record, cfg: Config, strategy: AccessStrategy, graph: GraphData, device: torch.device,
                telemetry: Telemetry, verify: bool, profile_path: Path | None = None) -> None:
    """Neighbour sampling only, over the strategy's own placement of the topology."""
    wl = cfg.workload
    rec.batch_size, rec.fanouts = wl.batch_size, list(wl.fanouts)
    rank, world = rank_and_world(cfg.ranks)
    gen = torch.Generator(device=strategy.sample_device).manual_seed(rank_seed(wl.seed, rank))
    batches = rank_batches(seed_batches(graph, wl.batch_size, seed=wl.seed, steps=ENDLESS), rank, world)
    edges = [0]

    def one(_: int) -> dict[str, float]:
        seeds = next(batches)
        t0 = time.perf_counter()
        with strategy.collect_phases() as ph, strategy.phase("sample"):
            batch = strategy.sample(seeds, wl.fanouts, generator=gen)
        ph["step"] = time.perf_counter() - t0
        edges[0] += batch.num_edges
        return ph

    warmup(telemetry, "sample", wl.warmup_steps, one)
    edges[0] = 0
    strategy.reset_stats()
    strategy.before_measure()
    per_step = in_phase("sample", lambda: measure(rec, telemetry, wl.steps, one))
    rec.notes.extend(strategy.measure_notes())
    fill_phases(rec, per_step, strategy)
    total = sum(s["sample"] for s in per_step)
    rec.edges_per_s = edges[0] / total if total > 0 else None
    profile(rec, telemetry, "sample", one, profile_path)


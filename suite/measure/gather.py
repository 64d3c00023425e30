"""Gather mode: fresh uniform random ids every step, the PyTorch-Direct microbenchmark."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from accessbench.kernels.base import AccessStrategy
from accessbench.kernels.device import synchronize
from accessbench.kernels.errors import AccessBenchError
from accessbench.kernels.exact import same_bits
from accessbench.kernels.types import GraphData
from accessbench.suite.telemetry import Telemetry
from accessbench.workloads.batches import random_ids

from .config import Config
from .distributed import rank_and_world, rank_seed
from .phases import (
    ROWS_KEY,
    PhaseFailure,
    fill_phases,
    fill_rates,
    fill_stats,
    in_phase,
    profile,
    warmup,
)
from .records import Record
from .window import measure

__all__ = ["run"]


def run(rec: Record, cfg: Config, strategy: AccessStrategy, graph: GraphData, device: torch.device,
                telemetry: Telemetry, verify: bool, profile_path: Path | None = None) -> None:
    """Fresh uniform random ids each step (with repeats, unsorted): the PyTorch-Direct microbenchmark."""
    wl = cfg.workload
    rec.gather_ids = wl.gather_ids
    rank, world = rank_and_world(cfg.ranks)
    gen = torch.Generator().manual_seed(rank_seed(wl.seed, rank))

    def one(_: int) -> dict[str, float]:
        ids = random_ids(graph.num_nodes, wl.gather_ids, generator=gen)
        t0 = time.perf_counter()
        with strategy.collect_phases() as ph:
            out = strategy.gather(ids)
            synchronize(device)
        ph["step"] = time.perf_counter() - t0
        ph[ROWS_KEY] = float(out.shape[0])
        return ph

    warmup(telemetry, "gather", wl.warmup_steps, one)
    if verify:
        telemetry.stage("verify")
        # seed + 1 with one rank; with several, past every rank's measurement seed (rank_seed(seed, 0..world-1))
        verify_gen = torch.Generator().manual_seed(rank_seed(wl.seed, rank) + world)
        ids = random_ids(graph.num_nodes, min(wl.gather_ids, 4096), generator=verify_gen)
        got = in_phase("gather", lambda: strategy.gather(ids))
        rec.exact = same_bits(got, graph.features[ids])
        if not rec.exact:
            raise PhaseFailure("verify", AccessBenchError("gathered rows differ from features[ids]"))
    strategy.reset_stats()
    strategy.before_measure()
    per_step = in_phase("gather", lambda: measure(rec, telemetry, wl.steps, one))
    rec.notes.extend(strategy.measure_notes())
    fill_phases(rec, per_step, strategy)
    data = [s.get("gather", 0.0) + s.get("transfer", 0.0) for s in per_step]
    fill_stats(rec, strategy, sum(data))
    fill_rates(rec, per_step, graph.row_bytes)
    profile(rec, telemetry, "gather", one, profile_path)


"""Train mode: sample, gather, transfer, forward, backward, optimiser step."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import torch

from accessbench.kernels.base import AccessStrategy
from accessbench.kernels.errors import AccessBenchError
from accessbench.kernels.exact import same_bits
from accessbench.kernels.types import GraphData
from accessbench.suite.telemetry import Telemetry
from accessbench.workloads.batches import seed_batches
from accessbench.workloads.models import build_model, train_step

from .config import Config
from .distributed import rank_and_world, rank_batches, rank_seed, wrap_model
from .phases import (
    ENDLESS,
    ROWS_KEY,
    PhaseFailure,
    fill_phases,
    fill_rates,
    fill_stats,
    in_phase,
    profile,
    sync_current_stream,
    warmup,
)
from .records import Record
from .window import finish_idle, measure

__all__ = ["run"]


def run(rec: Record, cfg: Config, strategy: AccessStrategy, graph: GraphData, device: torch.device,
               telemetry: Telemetry, verify: bool, profile_path: Path | None = None) -> None:
    """Sample, gather, transfer, forward, backward, optimiser step; ``step_s`` is the wall time per iteration."""
    wl = cfg.workload
    rec.batch_size, rec.fanouts = wl.batch_size, list(wl.fanouts)
    if graph.labels is None:
        raise PhaseFailure("setup", AccessBenchError(f"workload {wl.name!r}: train mode needs node labels"))
    num_classes = graph.num_classes or int(graph.labels.max()) + 1
    torch.manual_seed(wl.seed)
    model = build_model(wl.model, in_dim=graph.feat_dim, hidden=wl.hidden, out_dim=num_classes,
                        num_layers=len(wl.fanouts)).to(device)
    model = wrap_model(model, device, cfg.ranks)  # several ranks: gradients all-reduced (DDP), part of compute
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    labels = graph.labels.to(device) if device.type == "cuda" else graph.labels
    rank, world = rank_and_world(cfg.ranks)
    gen = torch.Generator(device=strategy.sample_device).manual_seed(rank_seed(wl.seed, rank))
    loader: Iterator = strategy.load(
        rank_batches(seed_batches(graph, wl.batch_size, seed=wl.seed, steps=ENDLESS), rank, world), wl.fanouts,
        generator=gen)
    edges = [0]
    overlapped = [False]
    checked = [not verify]

    def one(_: int) -> dict[str, float]:
        t0 = time.perf_counter()
        loaded = in_phase("load", lambda: next(loader))
        ph = dict(loaded.phase_s)
        ph[ROWS_KEY] = float(loaded.features.shape[0])
        overlapped[0] |= loaded.overlapped
        if not checked[0]:
            rec.exact = same_bits(loaded.features, graph.features[loaded.batch.node_ids.cpu()])
            checked[0] = True
            if not rec.exact:
                raise PhaseFailure("verify", AccessBenchError("gathered rows differ from features[ids]"))
        with strategy.phase_hook("compute"):
            sync_current_stream(device)  # not the device: a side stream may be loading the next batch
            tc = time.perf_counter()
            train_step(model, opt, loaded.features, loaded.batch, labels)
            sync_current_stream(device)
        end = time.perf_counter()
        ph["compute"] = end - tc
        ph["step"] = end - t0
        edges[0] += loaded.batch.num_edges
        return ph

    try:
        warm = wl.warmup_steps
        if verify and warm == 0:  # the exactness check (and first-call compiles) must not land in a measured step
            warm = 1
            rec.notes.append("one unmeasured step ran first to verify exactness (warmup_steps = 0)")
        warmup(telemetry, "train", warm, one)
        strategy.reset_stats()
        edges[0] = 0
        strategy.before_measure()
        per_step = in_phase("train", lambda: measure(rec, telemetry, wl.steps, one, defer_idle=True))
        rec.notes.extend(strategy.measure_notes())
        rec.overlapped = overlapped[0]
        if overlapped[0]:
            rec.notes.append("sample/gather/transfer ran in the background: their times overlap compute; step_s is"
                             " the wall time per iteration")
        fill_phases(rec, per_step, strategy)
        data = [s.get("gather", 0.0) + s.get("transfer", 0.0) for s in per_step]
        fill_stats(rec, strategy, sum(data))
        fill_rates(rec, per_step, graph.row_bytes)
        sample_total = sum(s.get("sample", 0.0) for s in per_step)
        rec.edges_per_s = edges[0] / sample_total if sample_total > 0 else None
        profile(rec, telemetry, "train", one, profile_path)
    finally:
        close = getattr(loader, "close", None)
        if close is not None:
            close()
    finish_idle(rec, telemetry)  # after the loader stopped: no prefetch or pipeline work in the idle window


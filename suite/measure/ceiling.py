"""Ceiling rows: what the hardware allows for the same work a strategy does, measured as configurations.

A ceiling is a configuration whose strategy is ``ceiling:<kind>`` (no strategy object; the runner measures it
like any other row, isolated, resumable, with telemetry). Each uses the same ids as gather mode (same seeds):

- ``host-gather``: ``torch.index_select`` of the step's rows into a reusable buffer (pinned where CUDA is present),
  the host random-gather ceiling for cpu-centric;
- ``pinned-memcpy``: one host-to-device copy of the step's bytes from pinned memory (CUDA only), the PCIe ceiling
  zero-copy is compared with (PyTorch-Direct's baseline);
- ``odirect-reader``: a plain O_DIRECT reader, ``depth`` threads of 4 KiB reads of the pages holding the step's
  rows in the store's feature file, the disk ceiling for out-of-core (``iops``);
- ``probe``: the machine probe (``accessbench probe``), its figures in ``access_extras`` (the ceilings study).
"""

from __future__ import annotations

import mmap
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import torch

from accessbench.kernels.errors import AccessBenchError, StrategyUnavailable
from accessbench.kernels.types import GraphData
from accessbench.suite.telemetry import Telemetry
from accessbench.workloads.batches import random_ids

from .config import Config
from .distributed import rank_and_world, rank_seed
from .phases import ROWS_KEY, fill_phases, fill_rates, in_phase, warmup
from .records import Record
from .window import measure

__all__ = ["CEILINGS", "PREFIX", "is_ceiling", "read_pages_odirect", "run"]

PREFIX = "ceiling:"
PAGE = 4096
CEILINGS = ("host-gather", "pinned-memcpy", "odirect-reader", "probe")


def is_ceiling(strategy: str) -> bool:
    """Whether a configuration's strategy names a ceiling."""
    return strategy.startswith(PREFIX)


def _kind(cfg: Config) -> str:
    kind = cfg.strategy[len(PREFIX):]
    if kind not in CEILINGS:
        raise AccessBenchError(f"unknown ceiling {kind!r}; valid: {', '.join(CEILINGS)}")
    return kind


def _host_gather(graph: GraphData, device: torch.device) -> Callable[[torch.Tensor], dict[str, float]]:
    out: list[torch.Tensor] = []
    pin = device.type == "cuda"

    def step(ids: torch.Tensor) -> dict[str, float]:
        if not out or out[0].shape[0] < ids.numel():
            out[:] = [torch.empty((ids.numel(), *graph.features.shape[1:]), dtype=graph.features.dtype,
                                  pin_memory=pin)]
        t0 = time.perf_counter()
        torch.index_select(graph.features, 0, ids, out=out[0][: ids.numel()])
        return {"gather": time.perf_counter() - t0}

    return step


def _pinned_memcpy(graph: GraphData, device: torch.device) -> Callable[[torch.Tensor], dict[str, float]]:
    if device.type != "cuda":
        raise StrategyUnavailable("the pinned-memcpy ceiling needs a CUDA device")
    bufs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def step(ids: torch.Tensor) -> dict[str, float]:
        nbytes = ids.numel() * graph.row_bytes
        if nbytes not in bufs:
            bufs[nbytes] = (torch.empty(nbytes, dtype=torch.uint8, pin_memory=True),
                            torch.empty(nbytes, dtype=torch.uint8, device=device))
        src, dst = bufs[nbytes]
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        dst.copy_(src, non_blocking=True)
        end.record()
        end.synchronize()
        return {"transfer": start.elapsed_time(end) / 1e3}

    return step


def read_pages_odirect(fd: int, pages: list[int], depth: int) -> None:
    """Read 4 KiB ``pages`` of an O_DIRECT ``fd`` with ``depth`` threads, each into its own aligned page buffer
    (``depth`` reads in flight): the plain reader the out-of-core strategy is measured against."""
    shares = [pages[i::depth] for i in range(depth)]

    def worker(share: list[int]) -> None:
        buf = mmap.mmap(-1, PAGE)
        for p in share:
            os.preadv(fd, [buf], p * PAGE)
        buf.close()

    threads = [threading.Thread(target=worker, args=(s,)) for s in shares if s]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _odirect_reader(graph: GraphData, depth: int, ops: list[int]) -> Callable[[torch.Tensor], dict[str, float]]:
    ff = graph.feature_file
    if ff is None:
        raise StrategyUnavailable("the odirect-reader ceiling needs a store on disk (the workload has none)")
    try:
        fd = os.open(ff.path, os.O_RDONLY | os.O_DIRECT)
    except OSError as exc:
        raise StrategyUnavailable(f"{ff.path}: the filesystem refuses O_DIRECT ({exc.strerror})") from None

    def step(ids: torch.Tensor) -> dict[str, float]:
        first = (ff.offset + ids.to(torch.int64) * ff.row_stride) // PAGE
        last = (ff.offset + ids.to(torch.int64) * ff.row_stride + graph.row_bytes - 1) // PAGE
        pages = torch.unique(torch.cat([first, last])).tolist()
        t0 = time.perf_counter()
        read_pages_odirect(fd, pages, depth)
        ops[0] += len(pages)
        return {"gather": time.perf_counter() - t0}

    return step


def _probe(rec: Record, cfg: Config) -> None:
    from accessbench.suite.probe.ceilings import run_probe

    data = run_probe(quick=bool(cfg.options.get("quick", True)))
    extras: dict[str, Any] = {}
    for key, entry in data.items():
        if isinstance(entry, dict) and "value" in entry:
            extras[key] = entry.get("value")
            if entry.get("value") is None and entry.get("reason"):
                rec.notes.append(f"{key} not measured: {entry['reason']}")
    rec.access_extras = extras


def run(rec: Record, cfg: Config, graph: GraphData, device: torch.device, telemetry: Telemetry) -> None:
    """Measure the ceiling ``cfg`` names on the workload's ids, filling ``rec`` like a gather-mode row."""
    kind = _kind(cfg)
    if kind == "probe":
        _probe(rec, cfg)
        return
    wl = cfg.workload
    rec.gather_ids = wl.gather_ids
    rank, _ = rank_and_world(cfg.ranks)
    gen = torch.Generator().manual_seed(rank_seed(wl.seed, rank))
    ops = [0]
    if kind == "host-gather":
        body = _host_gather(graph, device)
    elif kind == "pinned-memcpy":
        body = _pinned_memcpy(graph, device)
    else:
        body = _odirect_reader(graph, int(cfg.options.get("depth", 32)), ops)

    def one(_: int) -> dict[str, float]:
        ids = random_ids(graph.num_nodes, wl.gather_ids, generator=gen)
        t0 = time.perf_counter()
        ph = body(ids)
        ph["step"] = time.perf_counter() - t0
        ph[ROWS_KEY] = float(ids.numel())
        return ph

    warmup(telemetry, "gather", wl.warmup_steps, one)
    ops[0] = 0
    per_step = in_phase("gather", lambda: measure(rec, telemetry, wl.steps, one))
    fill_phases(rec, per_step, None)
    fill_rates(rec, per_step, graph.row_bytes)
    rows = int(sum(s[ROWS_KEY] for s in per_step))
    rec.rows, rec.bytes_needed = rows, rows * graph.row_bytes
    data_s = sum(s.get("gather", 0.0) + s.get("transfer", 0.0) for s in per_step)
    if kind == "odirect-reader":
        rec.bytes_disk = ops[0] * PAGE
        rec.read_amplification = rec.bytes_disk / rec.bytes_needed if rec.bytes_needed else None
        rec.iops = ops[0] / data_s if data_s > 0 else None
    elif kind == "pinned-memcpy":
        rec.bytes_h2d = rec.bytes_needed
    else:
        rec.bytes_host = 2 * rec.bytes_needed  # read the table, write the buffer
    rec.notes.append(f"ceiling: {kind} on the same ids as gather mode (no strategy; an upper bound)")

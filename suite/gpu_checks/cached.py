"""GPU check section for the ``cached`` strategy: hit rate of every policy at a 20% cache, and cached gather GB/s
against ``cpu-centric`` and ``zero-copy`` on the same ids (the torch-quiver comparison); with two or more GPUs, the
partitioned placement across two ranks (NCCL).

Everything is measured here: CUDA events around each gather after warm-up, the median and p10/p90 over repeats, and
bytes counted as rows delivered x row bytes. A figure that cannot be measured is None with the reason; a part that
fails becomes a row saying why, and the rows measured before it are kept.
"""

from __future__ import annotations

import os
import socket
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from accessbench.kernels import registry
from accessbench.kernels.sampling import sample_blocks
from accessbench.kernels.strategies.cached.policies import POLICIES, BeladyPolicy, HybridPolicy
from accessbench.kernels.types import GraphData
from accessbench.suite.gpu_checks import CheckRow, GpuCheckContext

from ._timing import spread

__all__ = ["ORDER", "SECTION", "measure", "run"]

SECTION = "cached strategy"
ORDER = 60
FRACTION = 0.2
TARGET_SPEEDUP = 10.0  # issue target: cached >= 10x cpu-centric at a 20% cache (torch-quiver published 11.7x)


def _graph(ctx: GpuCheckContext) -> tuple[GraphData, Any]:
    from accessbench.workloads.config import load_workload
    from accessbench.workloads.generate import GraphSpec
    from accessbench.workloads.graphs import materialise

    key = "cached:graph"
    if key not in ctx.shared:
        wl = load_workload("default")
        if ctx.quick:
            wl = wl.with_overrides(name="default-200k", graph=GraphSpec(num_nodes=200_000, avg_degree=15,
                                                                        feat_dim=128, seed=0))
        ctx.shared[key] = (materialise(wl), wl)
    return ctx.shared[key]


def _batches(graph: GraphData, batch_size: int, fanouts: Sequence[int], count: int, seed: int) -> list[torch.Tensor]:
    """``count`` sampled batches' node ids (CPU, unique, seeds first) from seeds drawn with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    train = graph.train_ids if graph.train_ids is not None and graph.train_ids.numel() else torch.arange(graph.num_nodes)
    out = []
    for _ in range(count):
        seeds = train[torch.randint(0, train.numel(), (batch_size,), generator=g)]
        out.append(sample_blocks(graph.indptr, graph.indices, seeds, fanouts, g).node_ids)
    return out


def _timed(fn: Callable[[], object], device: torch.device, *, warmup: int, repeat: int) -> list[float]:
    """Seconds per call of ``fn``: CUDA events on a GPU, perf_counter on the CPU."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(device)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return times


def _drive(strategy, batches: list[torch.Tensor], device: torch.device) -> None:
    """Gather every batch in order, handing look-ahead policies their plan or hints first."""
    policy = strategy.policy
    if isinstance(policy, BeladyPolicy):
        strategy.plan(batches)
    elif isinstance(policy, HybridPolicy) and policy.lookahead:
        for b in batches:
            strategy.hint(b)
    for b in batches:
        strategy.gather(b.to(device))


def measure(graph: GraphData, batches: list[torch.Tensor], device: torch.device, *, fanouts: Sequence[int],
            batch_size: int, warmup: int = 2, repeat: int = 5) -> list[CheckRow]:
    """Hit rates per policy and gather GB/s of cached vs the backings on ``batches`` (also runs on the CPU)."""
    rows: list[CheckRow] = []
    case = f"{graph.num_nodes:,} nodes, {graph.row_bytes} B rows, {len(batches)} sampled batches, cache {FRACTION:.0%}"
    pre = {"presample_fanouts": ",".join(map(str, fanouts)), "presample_batch_size": batch_size}
    rates: dict[str, float | None] = {}
    failed: dict[str, str] = {}
    for policy in POLICIES:
        s = None
        try:
            s = registry.create("cached", policy=policy, cache_fraction=FRACTION, **pre)
            s.prepare(graph, device)
            _drive(s, batches, device)
            rates[policy] = s.stats().hit_rate()
        except Exception as exc:  # noqa: BLE001 - one policy failing must not hide the others' rates
            rates[policy], failed[policy] = None, f"failed: {_reason(exc)}"
        finally:
            if s is not None:
                s.close()
    for policy in POLICIES:
        rows.append(CheckRow(SECTION, case, f"cached/{policy}", "hit rate", rates[policy],
                             reference=rates["belady"], reference_name="belady (look-ahead optimum)",
                             note=failed.get(policy, "")))
    nbytes = sum(b.numel() for b in batches) * graph.row_bytes
    gbps: dict[str, tuple[float, float, float] | None] = {}
    notes: dict[str, str] = {}
    candidates = {"cpu-centric": ("cpu-centric", {}), "zero-copy": ("zero-copy", {}),
                  "cached/degree+cpu-centric": ("cached", {"policy": "degree", "backing": "cpu-centric"}),
                  "cached/degree+zero-copy": ("cached", {"policy": "degree", "backing": "zero-copy"})}
    for label, (name, opts) in candidates.items():
        if name == "cached":
            opts = {**opts, "cache_fraction": FRACTION, **pre}
        try:
            s = registry.create(name, **opts)
            s.prepare(graph, device)
        except Exception as exc:  # noqa: BLE001 - an unavailable path is reported, not fatal
            gbps[label], notes[label] = None, f"not measured: {exc}"
            continue
        try:
            dev_batches = [b.to(device) for b in batches]
            secs = _timed(lambda s=s, bs=dev_batches: [s.gather(b) for b in bs], device, warmup=warmup,
                          repeat=repeat)
            med, p10, p90 = spread(secs)
            gbps[label] = (nbytes / med / 1e9, nbytes / p90 / 1e9, nbytes / p10 / 1e9)
        except Exception as exc:  # noqa: BLE001 - keep the other paths' numbers
            gbps[label], notes[label] = None, f"failed: {_reason(exc)}"
        finally:
            s.close()
    base = gbps.get("cpu-centric")
    for label, value in gbps.items():
        ref = base[0] if base is not None and label.startswith("cached") else None
        note = notes.get(label, "")
        if ref is not None and value is not None:
            note = f"{value[0] / ref:.1f}x cpu-centric (target >= {TARGET_SPEEDUP:g}x)"
        rows.append(CheckRow(SECTION, f"gather, {case}", label, "GB/s", value[0] if value else None,
                             value[1] if value else None, value[2] if value else None, reference=ref,
                             reference_name="cpu-centric, same ids" if ref is not None else "", note=note))
    return rows


def _partition_worker(rank: int, world: int, port: int, out: str, graph_path: str, batch_size: int,
                      fanouts: list[int], count: int) -> None:
    import torch.distributed as dist

    from accessbench.workloads.store import open_store

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", rank=rank, world_size=world)
    try:
        device = torch.device("cuda", rank)
        graph = open_store(Path(graph_path))
        batches = _batches(graph, batch_size, fanouts, count, seed=100 + rank)  # each rank its own seeds
        result: dict[str, Any] = {}
        for placement in ("replicate", "partition"):
            s = registry.create("cached", policy="degree", placement=placement, cache_fraction=FRACTION)
            s.prepare(graph, device)
            dev_batches = [b.to(device) for b in batches]
            secs = _timed(lambda s=s, bs=dev_batches: [s.gather(b) for b in bs], device, warmup=1, repeat=5)
            dist.barrier()
            st = s.stats()
            nbytes = sum(b.numel() for b in batches) * graph.row_bytes
            med, p10, p90 = spread(secs)
            result[placement] = {"hit_rate": st.hit_rate(), "peer_hits": st.hits.get("peer", 0), "rows": st.rows,
                                 "gbps": [nbytes / med / 1e9, nbytes / p90 / 1e9, nbytes / p10 / 1e9]}
            s.close()
        torch.save(result, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _partition_rows(ctx: GpuCheckContext, graph: GraphData, wl: Any) -> list[CheckRow]:
    import torch.multiprocessing as mp

    from accessbench.workloads.graphs import graph_path

    case = f"2 ranks (NCCL), degree cache {FRACTION:.0%} per GPU, {graph.num_nodes:,} nodes"
    if torch.cuda.device_count() < 2:
        return [CheckRow(SECTION, case, "cached/partition", "hit rate", None,
                         note=f"needs 2 GPUs; {torch.cuda.device_count()} visible")]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(_partition_worker, args=(2, port, out, str(graph_path(wl)), wl.batch_size, list(wl.fanouts), 8),
                 nprocs=2, join=True)
        results = [torch.load(Path(out) / f"rank{r}.pt") for r in range(2)]
    rows = []
    for placement in ("replicate", "partition"):
        rate = sum(r[placement]["hit_rate"] * r[placement]["rows"] for r in results) / \
            sum(r[placement]["rows"] for r in results)
        rows.append(CheckRow(SECTION, case, f"cached/{placement}", "hit rate", rate,
                             note=f"peer hits {sum(r[placement]['peer_hits'] for r in results):,}"))
        per_rank = [r[placement]["gbps"] for r in results]
        rows.append(CheckRow(SECTION, case, f"cached/{placement}", "GB/s per GPU",
                             statistics.mean(g[0] for g in per_rank), min(g[1] for g in per_rank),
                             max(g[2] for g in per_rank)))
    return rows


def _reason(exc: BaseException) -> str:
    """One line: the exception type and its message's last line (a spawned rank's error ends its traceback)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}".rstrip(": ")


def run(ctx: GpuCheckContext) -> list[CheckRow]:
    """Hit rates and gather throughput on one GPU; the partitioned placement where two GPUs exist.

    A part that fails (the 2-GPU NCCL part above all: spawned processes, rendezvous, a second device) becomes one row
    saying why; the rows measured before it are returned with it.
    """
    graph, wl = _graph(ctx)
    batches = _batches(graph, wl.batch_size, wl.fanouts, 6 if ctx.quick else 16, seed=7)
    rows = measure(graph, batches, ctx.device, fanouts=wl.fanouts, batch_size=wl.batch_size,
                   repeat=3 if ctx.quick else 7)
    if ctx.device.type == "cuda":
        torch.cuda.empty_cache()  # the spawned ranks need the memory the single-GPU part cached
    try:
        rows += _partition_rows(ctx, graph, wl)
    except Exception as exc:  # noqa: BLE001 - keep the single-GPU rows already measured
        rows.append(CheckRow(SECTION, f"2 ranks (NCCL), degree cache {FRACTION:.0%} per GPU: failed",
                             "cached/partition", "-", None, note=_reason(exc)))
    return rows

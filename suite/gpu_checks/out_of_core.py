"""``accessbench check --gpu``: the out-of-core runs that use the GPU: features read from disk into device memory
through the pinned host path with a device hot-cache tier (rowwise direct, packed), and through kvikio/GPUDirect
Storage where present. Each row is feature GB/s delivered to the device over a sequence of batches, timed with CUDA
events around the whole ``load`` loop (cold page cache, warm-up run first), median of repeats."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

import torch

from kernels import create
from kernels.ooc.kvikio_io import kvikio_status
from kernels.types import GraphData
from suite.gpu_checks import CheckRow, GpuCheckContext

SECTION = "out-of-core (disk -> GPU)"
ORDER = 60

_CONFIGS: dict[str, dict[str, Any]] = {
    "direct rowwise, device+pinned hot cache": {"io": "direct", "device_cache_bytes": 0.25, "host_cache_bytes": 0.25},
    "direct + look-ahead (Ginex-like), device cache": {"io": "direct", "device_cache_bytes": 0.25,
                                                        "lookahead_bytes": 0.25},
    "packed, device+pinned hot cache (DiskGNN-like)": {"io": "direct", "layout": "packed",
                                                       "device_cache_bytes": 0.25, "host_cache_bytes": 0.25},
    "kvikio packed, device cache (GDS)": {"io": "kvikio", "layout": "packed", "device_cache_bytes": 0.25},
}


def _graph(ctx: GpuCheckContext) -> GraphData:
    from workloads.generate import GraphSpec, generate
    from workloads.store import open_store

    if "ooc_graph" not in ctx.shared:
        n = 200_000 if ctx.quick else 1_000_000
        root = Path(tempfile.mkdtemp(prefix="accessbench-ooc-check-"))
        ctx.shared["ooc_graph"] = open_store(generate(GraphSpec(num_nodes=n, avg_degree=12, feat_dim=128, seed=9),
                                                      root / "store"))
    return ctx.shared["ooc_graph"]


def _options(spec: dict[str, Any], store_bytes: int, batches: int) -> dict[str, Any]:
    out: dict[str, Any] = {"superbatch": batches}
    for k, v in spec.items():
        out[k] = int(v * store_bytes) if isinstance(v, float) else v
    if spec.get("io") == "kvikio":
        out["kvikio_compat"] = False
    return out


def _run_once(g: GraphData, opts: dict[str, Any], seeds: list[torch.Tensor], device: torch.device) -> tuple[float, int]:
    with create("out-of-core", **opts) as s:
        s.prepare(g, device)
        gen = torch.Generator().manual_seed(0)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        nbytes = 0
        it = s.load(seeds, [10, 5], generator=gen)
        next(it)  # planning (and packing) happen before the first batch: excluded from the timed window
        start.record()
        for lb in it:
            nbytes += lb.features.numel() * lb.features.element_size()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3, nbytes


def run(ctx: GpuCheckContext) -> list[CheckRow]:
    """One row per configuration: feature GB/s into device memory (median of repeats, p10/p90)."""
    g = _graph(ctx)
    batches = 6 if ctx.quick else 16
    repeats = 2 if ctx.quick else 4
    seeds = [torch.randperm(g.num_nodes, generator=torch.Generator().manual_seed(i))[:1024] for i in range(batches)]
    rows: list[CheckRow] = []
    baseline: float | None = None
    for case, spec in _CONFIGS.items():
        opts = _options(spec, g.feature_bytes, batches)
        if spec["io"] == "kvikio":
            ok, reason = kvikio_status(False)
            if not ok:
                rows.append(CheckRow(SECTION, case, "out-of-core", "GB/s", None, note=f"not measured: {reason}"))
                continue
        try:
            _run_once(g, opts, seeds, ctx.device)  # warm-up (allocators, CUDA context, thread pools)
            samples = []
            for _ in range(repeats):
                seconds, nbytes = _run_once(g, opts, seeds, ctx.device)
                samples.append(nbytes / seconds / 1e9)
        except Exception as exc:
            rows.append(CheckRow(SECTION, case, "out-of-core", "GB/s", None, note=f"failed: {type(exc).__name__}: {exc}"))
            continue
        q = statistics.quantiles(samples, n=10) if len(samples) > 1 else [samples[0]] * 9
        value = statistics.median(samples)
        if baseline is None:
            baseline = value
        opts_text = ", ".join(f"{k}={v}" for k, v in opts.items())
        rows.append(CheckRow(SECTION, f"{case} ({g.num_nodes:,} x {g.row_bytes} B rows, {batches - 1} batches)",
                             "out-of-core", "GB/s", value, q[0], q[-1], reference=baseline,
                             reference_name="direct rowwise", note=opts_text))
    return rows

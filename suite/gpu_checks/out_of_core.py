"""``accessbench check --gpu``: the out-of-core runs that use the GPU: features read from disk into device memory
through the pinned host path with a device hot-cache tier (rowwise direct, packed), and through kvikio/GPUDirect
Storage where present. Each row is feature GB/s delivered to the device over a sequence of batches: the window opens
before the first batch is requested and closes when the last one is on the device (the device synchronised at both
edges), so it holds every batch it counts; the offline pass the strategy reports (sampling, planning, packing, the
page-cache drop after packing), which runs before the first batch is read, is taken out of it. Cold page cache,
warm-up run first, median and p10/p90 of repeats.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from accessbench.kernels import create
from accessbench.kernels.strategies.out_of_core.kvikio_io import kvikio_status
from accessbench.kernels.types import GraphData
from accessbench.suite.gpu_checks import CheckRow, GpuCheckContext

from ._timing import spread

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
    """The check's store, generated once into the graph cache (``$ACCESSBENCH_CACHE``): a disk filesystem, where
    ``O_DIRECT`` works, unlike /tmp, which is often tmpfs or overlay."""
    from accessbench.workloads.config import cache_dir, spec_key
    from accessbench.workloads.generate import GraphSpec
    from accessbench.workloads.graphs import ensure_store
    from accessbench.workloads.store import open_store

    if "ooc_graph" not in ctx.shared:
        spec = GraphSpec(num_nodes=200_000 if ctx.quick else 1_000_000, avg_degree=12, feat_dim=128, seed=9)
        path = ensure_store(spec, cache_dir() / "graphs" / spec_key(spec), name="ooc-check")
        ctx.shared["ooc_graph"] = open_store(path)
    return ctx.shared["ooc_graph"]


def _options(spec: dict[str, Any], store_bytes: int, batches: int) -> dict[str, Any]:
    out: dict[str, Any] = {"superbatch": batches}
    for k, v in spec.items():
        out[k] = int(v * store_bytes) if isinstance(v, float) else v
    if spec.get("io") == "kvikio":
        out["kvikio_compat"] = False
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_once(g: GraphData, opts: dict[str, Any], seeds: list[torch.Tensor], device: torch.device,
                 fanouts: tuple[int, ...] = (10, 5)) -> tuple[float, float, int]:
    """One cold run of ``load`` over ``seeds``: (seconds serving the batches, offline seconds taken out of the
    window, feature bytes delivered). The window runs from before the first batch is requested until every batch
    is on ``device``, so it contains all the work of the bytes it counts; offline seconds are what the strategy
    reports for the pass before the first read (``preprocess_s``, ``page_cache_drop_s``, sampling). That pass runs
    before any batch is read only when one superbatch holds every batch, so ``opts["superbatch"]`` must."""
    if int(opts.get("superbatch", 0)) < len(seeds):
        raise ValueError(f"superbatch={opts.get('superbatch')} plans fewer than the {len(seeds)} batches: later "
                         "planning would overlap serving and could not be taken out of the window")
    with create("out-of-core", **opts) as s:
        s.prepare(g, device)
        gen = torch.Generator().manual_seed(0)
        before = s.stats().extras
        nbytes, sample_s = 0, 0.0
        _sync(device)
        start = time.perf_counter()
        for lb in s.load(seeds, list(fanouts), generator=gen):
            nbytes += lb.features.numel() * lb.features.element_size()
            sample_s += lb.phase_s.get("sample", 0.0)
        _sync(device)
        window = time.perf_counter() - start
        after = s.stats().extras
    offline = sample_s + sum(after.get(k, 0.0) - before.get(k, 0.0) for k in ("preprocess_s", "page_cache_drop_s"))
    return window - offline, offline, nbytes


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
            measure_once(g, opts, seeds, ctx.device)  # warm-up (allocators, CUDA context, thread pools)
            samples, offline = [], []
            for _ in range(repeats):
                seconds, off_s, nbytes = measure_once(g, opts, seeds, ctx.device)
                samples.append(nbytes / seconds / 1e9)
                offline.append(off_s)
        except Exception as exc:
            rows.append(CheckRow(SECTION, case, "out-of-core", "GB/s", None, note=f"failed: {type(exc).__name__}: {exc}"))
            continue
        value, p10, p90 = spread(samples)
        if baseline is None:
            baseline = value
        opts_text = ", ".join(f"{k}={v}" for k, v in opts.items())
        rows.append(CheckRow(SECTION, f"{case} ({g.num_nodes:,} x {g.row_bytes} B rows, {batches} batches)",
                             "out-of-core", "GB/s", value, p10, p90, reference=baseline,
                             reference_name="direct rowwise",
                             note=f"{opts_text}; offline pass before the first read (not in the window): median "
                                  f"{spread(offline)[0]:.2f} s"))
    return rows

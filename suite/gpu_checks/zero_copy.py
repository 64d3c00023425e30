"""Zero-copy section of ``accessbench check --gpu``: the PyTorch-Direct microbenchmark grid and its targets.

- gather: row bytes 4 B .. 4 KiB x 1k .. 1M uniformly random ids (repeats, unsorted) x fp32/fp16, zero-copy (the
  whole ``gather`` call, and the kernel alone from its CUDA events) against pinned host-to-device memcpy of the same
  bytes (the ceiling), cpu-centric and device-resident on the same ids;
- ablations at 128 B / 512 B rows: alignment off, sorting off, the program cap;
- sampling over the pinned CSR against the CPU sampler (and device-resident sampling as the ceiling);
- training steps on papers100m-like, zero-copy against cpu-centric (sequential, and with prefetch).
Every figure is a median over repeats timed with CUDA events after warm-up, with p10..p90; inputs rotate.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch

from accessbench.kernels import registry
from accessbench.kernels.base import AccessStrategy
from accessbench.kernels.types import GraphData
from accessbench.suite.gpu_checks import CheckRow, GpuCheckContext
from accessbench.workloads.batches import random_ids

from ._timing import spread, time_cuda

SECTION = "Zero-copy: UVA gather and sampling vs pinned memcpy, cpu-centric, device-resident"
ORDER = 20
GIB = 1 << 30
MAX_ROWS = 1 << 24  # rows per benchmark table (its empty CSR costs 8 B per row)


def _grid(quick: bool) -> tuple[tuple[int, ...], tuple[int, ...], tuple[torch.dtype, ...], int]:
    if quick:
        return (4, 128, 512, 4096), (1_000, 100_000), (torch.float32,), GIB // 4
    return (4, 16, 64, 128, 512, 1024, 4096), (1_000, 10_000, 100_000, 1_000_000), (torch.float32, torch.float16), 2 * GIB


def _reps(nbytes: int) -> tuple[int, int]:
    """(warm-up, repeats): fewer for transfers that take long (cpu-centric at 4 GiB takes about a second)."""
    if nbytes > 1 << 28:
        return 1, 5
    if nbytes > 1 << 24:
        return 2, 10
    return 3, 20


def _table(rows: int, width: int, dtype: torch.dtype) -> torch.Tensor:
    """A host table whose row ``i`` holds ``i mod 2039`` plus a per-column ramp (distinct rows, cheap to fill)."""
    out = torch.empty(rows, width, dtype=dtype)
    torch.add((torch.arange(rows) % 2039).to(dtype).unsqueeze(1), (torch.arange(width) * 0.25).to(dtype), out=out)
    return out


def _graph(features: torch.Tensor) -> GraphData:
    n = features.shape[0]
    return GraphData(n, torch.zeros(n + 1, dtype=torch.int64), torch.empty(0, dtype=torch.int32), features,
                     name="zero-copy-check")


def _gbps(nbytes: int, seconds: list[float]) -> tuple[float, float, float]:
    med, p10, p90 = spread(seconds)
    return nbytes / med / 1e9, nbytes / p90 / 1e9, nbytes / p10 / 1e9


class _Memcpy:
    """Pinned host-to-device copies of a given size, from one pinned buffer (the ceiling per transfer size)."""

    def __init__(self, device: torch.device, max_bytes: int) -> None:
        self.src = torch.empty(max_bytes, dtype=torch.uint8, pin_memory=True)
        self.dst = torch.empty(max_bytes, dtype=torch.uint8, device=device)
        self.cache: dict[int, tuple[float, float, float]] = {}

    def gbps(self, nbytes: int) -> tuple[float, float, float]:
        if nbytes not in self.cache:
            src, dst = self.src[:nbytes], self.dst[:nbytes]
            warm, reps = _reps(nbytes)
            self.cache[nbytes] = _gbps(nbytes, time_cuda(lambda: dst.copy_(src, non_blocking=True),
                                                         warmup=max(warm, 3), repeats=max(reps, 10)))
        return self.cache[nbytes]


def _target(row_bytes: int, n: int) -> str:
    if n >= 100_000 and row_bytes >= 512:
        return "target >= 95% of memcpy"
    if n >= 100_000 and row_bytes == 128:
        return "target >= 60% of memcpy"
    return ""


def _time_gather(strategy: AccessStrategy, ids: list[torch.Tensor], nbytes: int) -> tuple[float, float, float]:
    turn = itertools.cycle(range(len(ids)))
    warm, reps = _reps(nbytes)
    return _gbps(nbytes, time_cuda(lambda: strategy.gather(ids[next(turn)]), warmup=warm, repeats=reps))


def _gather_grid(ctx: GpuCheckContext, rows_out: list[CheckRow]) -> None:
    row_sizes, counts, dtypes, table_bytes = _grid(ctx.quick)
    memcpy = _Memcpy(ctx.device, max(row_sizes) * max(counts))
    gen = torch.Generator().manual_seed(0)
    for dtype, row_bytes in itertools.product(dtypes, row_sizes):
        elem = torch.empty(0, dtype=dtype).element_size()
        width = row_bytes // elem
        features = _table(min(MAX_ROWS, table_bytes // row_bytes), width, dtype)
        graph = _graph(features)
        name = "fp32" if dtype == torch.float32 else "fp16"
        with registry.create("zero-copy") as zc, registry.create("device-resident") as dr, \
                registry.create("cpu-centric") as cc:
            for s in (zc, dr, cc):
                s.prepare(graph, ctx.device)
            probe = random_ids(graph.num_nodes, 10_000, generator=gen)
            exact = torch.equal(zc.gather(probe.to(ctx.device)).cpu(), features[probe])
            for n in counts:
                ids_cpu = [random_ids(graph.num_nodes, n, generator=gen) for _ in range(4)]
                ids_dev = [i.to(ctx.device) for i in ids_cpu]
                nbytes = n * row_bytes
                ceiling = memcpy.gbps(nbytes)[0]
                case = f"gather {row_bytes} B {name} rows x {n} ids"
                ref = {"reference": ceiling, "reference_name": "pinned memcpy (same bytes)"}
                rows_out.append(CheckRow(SECTION, case, "memcpy-h2d-pinned", "GB/s", *memcpy.gbps(nbytes)))
                zc.reset_stats()
                z = _time_gather(zc, ids_dev, nbytes)
                kernel = zc.stats().extras.get("kernel_gbps")
                rows_out.append(CheckRow(SECTION, case, "zero-copy", "GB/s", *z, **ref,
                                         note="; ".join(x for x in (_target(row_bytes, n),
                                                                    "" if exact else "NOT EXACT") if x)))
                rows_out.append(CheckRow(SECTION, case, "zero-copy (kernel only)", "GB/s", kernel, **ref,
                                         note="bytes / summed kernel time over warm-up and repeats"))
                c = _time_gather(cc, ids_cpu, nbytes)
                rows_out.append(CheckRow(SECTION, case, "cpu-centric", "GB/s", *c, **ref))
                rows_out.append(CheckRow(SECTION, case, "device-resident", "GB/s", *_time_gather(dr, ids_dev, nbytes),
                                         **ref))
                rows_out.append(CheckRow(SECTION, case, "zero-copy / cpu-centric", "x", z[0] / c[0],
                                         note="target >= 5x" if n >= 100_000 else ""))
        del features, graph
        torch.cuda.empty_cache()


def _ablations(ctx: GpuCheckContext, rows_out: list[CheckRow]) -> None:
    n = 100_000 if ctx.quick else 1_000_000
    sms = torch.cuda.get_device_properties(ctx.device).multi_processor_count
    gen = torch.Generator().manual_seed(1)
    for row_bytes in (128, 512):
        graph = _graph(_table(min(MAX_ROWS, GIB // row_bytes), row_bytes // 4, torch.float32))
        ids = [random_ids(graph.num_nodes, n, generator=gen).to(ctx.device) for _ in range(4)]
        nbytes = n * row_bytes
        variants: list[tuple[str, dict]] = [("default", {}), ("align_bytes=1", {"align_bytes": 1}),
                                            ("sort_ids=false", {"sort_ids": False})]
        variants += [(f"max_programs={p}", {"max_programs": p}) for p in (sms // 4, sms, 4 * sms)]
        for label, opts in variants:
            with registry.create("zero-copy", **opts) as zc:
                zc.prepare(graph, ctx.device)
                rows_out.append(CheckRow(SECTION, f"ablation: gather {row_bytes} B fp32 rows x {n} ids",
                                         f"zero-copy ({label})", "GB/s", *_time_gather(zc, ids, nbytes),
                                         note=f"{sms} SMs" if label.startswith("max_programs") else ""))


def _random_csr(num_nodes: int, max_degree: int, seed: int) -> GraphData:
    g = torch.Generator().manual_seed(seed)
    deg = torch.randint(0, max_degree + 1, (num_nodes,), generator=g)
    indptr = torch.zeros(num_nodes + 1, dtype=torch.int64)
    indptr[1:] = torch.cumsum(deg, 0)
    indices = torch.randint(0, num_nodes, (int(indptr[-1]),), generator=g, dtype=torch.int32)
    return GraphData(num_nodes, indptr, indices, torch.zeros(num_nodes, 1), name="zero-copy-check-csr")


def _sampling(ctx: GpuCheckContext, rows_out: list[CheckRow]) -> None:
    graph = _random_csr(500_000 if ctx.quick else 4_000_000, 30, seed=2)  # average degree 15
    fanouts, batch = [15, 10, 5], 1024
    gen = torch.Generator().manual_seed(3)
    seeds = [random_ids(graph.num_nodes, batch, generator=gen) for _ in range(8)]
    case = f"sample fanouts {fanouts} x {batch} seeds, {graph.num_nodes} nodes, {graph.num_edges} edges"
    results: dict[str, tuple[float, float, float]] = {}
    for name in ("cpu-centric", "zero-copy", "device-resident"):
        with registry.create(name) as s:
            s.prepare(graph, ctx.device)
            sgen = torch.Generator(device=s.sample_device).manual_seed(0)
            turn = itertools.cycle(range(len(seeds)))
            edges: list[int] = []

            def once(s: AccessStrategy = s, sgen: torch.Generator = sgen, turn: itertools.cycle = turn,
                     edges: list[int] = edges) -> None:
                edges.append(s.sample(seeds[next(turn)], fanouts, generator=sgen).num_edges)

            sec = time_cuda(once, warmup=3, repeats=16)
            e = sum(edges[-16:]) / 16
            med, p10, p90 = spread(sec)
            results[name] = (e / med, e / p90, e / p10)
    cpu = results["cpu-centric"][0]
    for name, vals in results.items():
        rows_out.append(CheckRow(SECTION, case, name, "edges/s", *vals, reference=cpu, reference_name="CPU sampler",
                                 note="target >= 10x the CPU sampler" if name == "zero-copy" else ""))


def _ms(seconds: float | None) -> float | None:
    return seconds * 1e3 if seconds is not None else None


def _train(ctx: GpuCheckContext, rows_out: list[CheckRow]) -> None:
    from accessbench.suite.measure.lifecycle import Config, execute
    from accessbench.workloads.config import load_workload

    wl = load_workload("default" if ctx.quick else "papers100m-like")
    wl = wl.with_overrides(steps=10 if ctx.quick else 30)
    configs: list[tuple[str, str, dict]] = [("cpu-centric", "cpu-centric", {}),
                                            ("cpu-centric (prefetch=2)", "cpu-centric", {"prefetch": 2}),
                                            ("zero-copy", "zero-copy", {})]
    steps: dict[str, float | None] = {}
    for label, name, opts in configs:
        rec = execute(Config(name, wl, "train", str(ctx.device), options=opts), run_id="check-zero-copy")
        steps[label] = _ms(rec.step_s)
        rows_out.append(CheckRow(SECTION, f"train step, {wl.name} ({wl.steps} steps)", label, "ms/step",
                                 _ms(rec.step_s), _ms(rec.step_s_p10), _ms(rec.step_s_p90), note=rec.error or ""))
    for base in ("cpu-centric", "cpu-centric (prefetch=2)"):
        a, b = steps.get(base), steps.get("zero-copy")
        rows_out.append(CheckRow(SECTION, f"train step, {wl.name}", f"{base} / zero-copy", "x",
                                 a / b if a and b else None, note="target >= 1.6x"))


def run(ctx: GpuCheckContext) -> list[CheckRow]:
    """All zero-copy measurements; a part that fails becomes one row saying why, the others still run."""
    rows: list[CheckRow] = []
    parts: list[tuple[str, Callable[[GpuCheckContext, list[CheckRow]], None]]] = [
        ("gather grid", _gather_grid), ("ablations", _ablations), ("sampling", _sampling), ("train", _train)]
    for label, part in parts:
        try:
            part(ctx, rows)
        except Exception as exc:  # keep the other parts' numbers
            rows.append(CheckRow(SECTION, f"{label} failed", "zero-copy", "-", None, note=f"{type(exc).__name__}: {exc}"))
        torch.cuda.empty_cache()
    return rows

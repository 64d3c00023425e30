"""Memory and interconnect ceilings: host copy and gather, host<->device copies, device copy and gather, peer copies.

Every function returns ``{key: entry}`` where an entry is ``{value, unit, method, p10, p90, repeats}`` or, when it
cannot be measured here, ``{value: None, unit, method, reason}``. GB/s are 1e9 bytes per second of payload moved
(a copy of N bytes counts N, although memory sees N read and N written). Values are medians over repeats, after
warm-up; GPU times come from CUDA events, host times from ``perf_counter``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from accessbench.kernels.device import cuda_available
from accessbench.stats import spread

__all__ = ["GPU_METHODS", "Sizes", "entry", "gpu_probes", "host_probes", "missing"]

MiB = 1 << 20
GATHER_ROW_BYTES = 512


@dataclass(frozen=True)
class Sizes:
    """Buffer sizes and repeats: ``full`` for a real probe, ``quick`` for tests and smoke runs."""

    host_bytes: int
    gather_table_bytes: int
    gather_out_bytes: int
    gpu_bytes: int
    device_table_bytes: int
    repeats: int
    warmup: int

    @classmethod
    def pick(cls, quick: bool) -> Sizes:
        if quick:
            return cls(32 * MiB, 64 * MiB, 16 * MiB, 64 * MiB, 256 * MiB, repeats=5, warmup=1)
        return cls(256 * MiB, 512 * MiB, 64 * MiB, 256 * MiB, 1024 * MiB, repeats=10, warmup=2)


def entry(rates: list[float], unit: str, method: str, **extra: Any) -> dict[str, Any]:
    """A measured ceiling: median and p10/p90 of ``rates`` (one per repeat)."""
    s = spread(rates)
    med, p10, p90 = s.median, s.p10, s.p90
    return {"value": med, "unit": unit, "method": method, "p10": p10, "p90": p90, "repeats": len(rates), **extra}


def missing(unit: str, method: str, reason: str) -> dict[str, Any]:
    """A ceiling that could not be measured here, with the reason."""
    return {"value": None, "unit": unit, "method": method, "reason": reason}


def _host_rates(fn: Callable[[], object], nbytes: int, sizes: Sizes) -> list[float]:
    for _ in range(sizes.warmup):
        fn()
    rates = []
    for _ in range(sizes.repeats):
        t0 = time.perf_counter()
        fn()
        rates.append(nbytes / (time.perf_counter() - t0) / 1e9)
    return rates


def _mib(n: int) -> str:
    return f"{n // MiB} MiB"


def _host_copy_rates(sizes: Sizes) -> list[float]:
    src = torch.ones(sizes.host_bytes // 4, dtype=torch.float32)
    dst = torch.empty_like(src)
    return _host_rates(lambda: dst.copy_(src), sizes.host_bytes, sizes)


def host_probes(sizes: Sizes) -> dict[str, dict[str, Any]]:
    """``host_copy_gbps`` (multi-threaded copy) and ``host_gather_gbps`` (random 512 B rows, ``index_select``)."""
    threads = torch.get_num_threads()
    out: dict[str, dict[str, Any]] = {}
    out["host_copy_gbps"] = entry(
        _host_copy_rates(sizes), "GB/s",
        f"torch copy_ of a {_mib(sizes.host_bytes)} fp32 buffer into another, {threads} intra-op threads; "
        f"GB/s of bytes copied, median of {sizes.repeats} after {sizes.warmup} warm-up")
    dim = GATHER_ROW_BYTES // 4
    rows = sizes.gather_table_bytes // GATHER_ROW_BYTES
    n_ids = sizes.gather_out_bytes // GATHER_ROW_BYTES
    table = torch.ones(rows, dim, dtype=torch.float32)
    gen = torch.Generator().manual_seed(0)
    id_sets = [torch.randint(0, rows, (n_ids,), generator=gen) for _ in range(4)]  # rotate: no cache flattery
    out_buf = torch.empty(n_ids, dim, dtype=torch.float32)
    it = iter(range(1 << 30))
    out["host_gather_gbps"] = entry(
        _host_rates(lambda: torch.index_select(table, 0, id_sets[next(it) % 4], out=out_buf), sizes.gather_out_bytes,
                    sizes), "GB/s",
        f"torch.index_select of {n_ids} uniformly random {GATHER_ROW_BYTES} B rows from a {_mib(sizes.gather_table_bytes)}"
        f" host table, {threads} intra-op threads; GB/s of rows delivered, median of {sizes.repeats}")
    return out


#: What each GPU ceiling measures (the method stated also when it cannot be measured here).
GPU_METHODS: dict[str, str] = {
    "h2d_pinned_gbps": "host-to-device copy_ from a pinned host buffer, CUDA events",
    "h2d_pageable_gbps": "host-to-device copy_ from a pageable host buffer, CUDA events",
    "d2h_pinned_gbps": "device-to-host copy_ into a pinned host buffer, CUDA events",
    "d2h_pageable_gbps": "device-to-host copy_ into a pageable host buffer, CUDA events",
    "d2d_gbps": "copy_ between two device buffers, CUDA events",
    "device_gather_gbps": f"index_select of random {GATHER_ROW_BYTES} B rows in device memory, CUDA events",
    "p2p_gbps": "copy_ between two GPUs with peer access",
}


def _event_rates(fn: Callable[[], object], nbytes: int, sizes: Sizes, device: torch.device) -> list[float]:
    with torch.cuda.device(device):
        for _ in range(sizes.warmup):
            fn()
        torch.cuda.synchronize(device)
        rates = []
        for _ in range(sizes.repeats):
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            rates.append(nbytes / (start.elapsed_time(stop) / 1e3) / 1e9)
    return rates


def _copy_probes(sizes: Sizes, dev: torch.device) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    n = sizes.gpu_bytes
    d_buf = torch.empty(n, dtype=torch.uint8, device=dev)
    for kind in ("pinned", "pageable"):
        h_buf = torch.ones(n, dtype=torch.uint8, pin_memory=kind == "pinned")
        how = f"{_mib(n)} {kind} host buffer, CUDA events around copy_ (non_blocking), median of {sizes.repeats}"
        h2d = _event_rates(lambda h=h_buf: d_buf.copy_(h, non_blocking=True), n, sizes, dev)
        d2h = _event_rates(lambda h=h_buf: h.copy_(d_buf, non_blocking=True), n, sizes, dev)
        out[f"h2d_{kind}_gbps"] = entry(h2d, "GB/s", f"host-to-device: {how}")
        out[f"d2h_{kind}_gbps"] = entry(d2h, "GB/s", f"device-to-host: {how}")
        del h_buf
    d_dst = torch.empty_like(d_buf)
    out["d2d_gbps"] = entry(_event_rates(lambda: d_dst.copy_(d_buf), n, sizes, dev), "GB/s",
                            f"copy_ of a {_mib(n)} device buffer into another on {dev}; GB/s of bytes copied "
                            f"(memory traffic is twice that), CUDA events, median of {sizes.repeats}")
    return out


def _device_gather_probe(sizes: Sizes, dev: torch.device) -> dict[str, Any]:
    method = (f"torch.index_select of uniformly random {GATHER_ROW_BYTES} B rows from a "
              f"{_mib(sizes.device_table_bytes)} table in device memory; GB/s of rows delivered, CUDA events")
    free, _ = torch.cuda.mem_get_info(dev)
    if sizes.device_table_bytes + 2 * sizes.gpu_bytes > free:
        return missing("GB/s", method, f"{dev} has {free / 2**30:.1f} GiB free, too little for the test table")
    dim = GATHER_ROW_BYTES // 4
    rows = sizes.device_table_bytes // GATHER_ROW_BYTES
    n_ids = sizes.gpu_bytes // GATHER_ROW_BYTES
    table = torch.ones(rows, dim, dtype=torch.float32, device=dev)
    gen = torch.Generator(device=dev).manual_seed(0)
    id_sets = [torch.randint(0, rows, (n_ids,), generator=gen, device=dev) for _ in range(4)]
    out_buf = torch.empty(n_ids, dim, dtype=torch.float32, device=dev)
    it = iter(range(1 << 30))
    rates = _event_rates(lambda: torch.index_select(table, 0, id_sets[next(it) % 4], out=out_buf),
                         n_ids * GATHER_ROW_BYTES, sizes, dev)
    return entry(rates, "GB/s", f"{method}, {n_ids} ids per call, median of {sizes.repeats}")


def _p2p_probe(sizes: Sizes) -> dict[str, Any]:
    count = torch.cuda.device_count()
    method = (f"copy_ of a {_mib(sizes.gpu_bytes)} buffer from cuda:i to cuda:j for every ordered pair with peer "
              "access, both devices synchronised around the copy; value is the best pair, all pairs in `pairs`")
    if count < 2:
        return missing("GB/s", method, f"{count} CUDA device(s): peer-to-peer needs two or more")
    pairs: dict[str, float] = {}
    no_peer = []
    for i in range(count):
        for j in range(count):
            if i == j:
                continue
            if not torch.cuda.can_device_access_peer(i, j):
                no_peer.append(f"{i}->{j}")
                continue
            src = torch.ones(sizes.gpu_bytes, dtype=torch.uint8, device=f"cuda:{i}")
            dst = torch.empty(sizes.gpu_bytes, dtype=torch.uint8, device=f"cuda:{j}")
            rates = []
            for k in range(sizes.warmup + sizes.repeats):
                torch.cuda.synchronize(i)
                torch.cuda.synchronize(j)
                t0 = time.perf_counter()
                dst.copy_(src)
                torch.cuda.synchronize(i)
                torch.cuda.synchronize(j)
                if k >= sizes.warmup:
                    rates.append(sizes.gpu_bytes / (time.perf_counter() - t0) / 1e9)
            pairs[f"{i}->{j}"] = statistics.median(rates)
            del src, dst
    if not pairs:
        return missing("GB/s", method, f"no pair of the {count} devices has peer access ({', '.join(no_peer)})")
    best = max(pairs, key=pairs.__getitem__)
    return {"value": pairs[best], "unit": "GB/s", "method": method, "pairs": pairs, "best_pair": best,
            "no_peer_access": no_peer}


def gpu_probes(sizes: Sizes) -> dict[str, dict[str, Any]]:
    """Host<->device (pinned, pageable), device copy and gather, peer copies; null with the reason without CUDA."""
    if not cuda_available():
        reason = "torch sees no CUDA device on this machine"
        return {k: missing("GB/s", method, reason) for k, method in GPU_METHODS.items()}
    dev = torch.device("cuda", torch.cuda.current_device())
    out = _copy_probes(sizes, dev)
    torch.cuda.empty_cache()
    out["device_gather_gbps"] = _device_gather_probe(sizes, dev)
    torch.cuda.empty_cache()
    out["p2p_gbps"] = _p2p_probe(sizes)
    torch.cuda.empty_cache()
    return out

"""Timing helpers for GPU check sections: CUDA-event timing with warm-up and repeats, and the memcpy ceiling."""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch

__all__ = ["memcpy_h2d_seconds", "spread", "time_cuda"]


def time_cuda(fn: Callable[[], object], *, warmup: int = 3, repeats: int = 10) -> list[float]:
    """Seconds per call of ``fn`` measured with CUDA events on the current stream (after ``warmup`` calls)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        out.append(start.elapsed_time(end) / 1e3)
    return out


def spread(values: list[float]) -> tuple[float, float, float]:
    """Median, p10, p90 of ``values``."""
    if len(values) == 1:
        return values[0], values[0], values[0]
    q = statistics.quantiles(values, n=10, method="inclusive")
    return statistics.median(values), q[0], q[-1]


def memcpy_h2d_seconds(nbytes: int, device: torch.device, *, pinned: bool = True, repeats: int = 10) -> list[float]:
    """Seconds per host-to-device copy of ``nbytes`` from pinned (or pageable) host memory."""
    src = torch.empty(nbytes, dtype=torch.uint8, pin_memory=pinned)
    dst = torch.empty(nbytes, dtype=torch.uint8, device=device)
    return time_cuda(lambda: dst.copy_(src, non_blocking=pinned), repeats=repeats)

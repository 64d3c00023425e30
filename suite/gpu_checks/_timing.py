"""Timing helpers for GPU check sections: the shared CUDA-event timer and spread, and the memcpy ceiling."""

from __future__ import annotations

from collections.abc import Callable

import torch

from accessbench import stats, timing

__all__ = ["memcpy_h2d_seconds", "spread", "time_cuda"]


def time_cuda(fn: Callable[[], object], *, warmup: int = 3, repeats: int = 10) -> list[float]:
    """Seconds per call of ``fn`` with CUDA events on the current stream (``accessbench.timing.time_calls``)."""
    return timing.time_calls(fn, device=torch.device("cuda", torch.cuda.current_device()), warmup=warmup,
                             repeats=repeats)


def spread(values: list[float]) -> tuple[float, float, float]:
    """Median, p10, p90 of ``values`` (``accessbench.stats.spread``)."""
    s = stats.spread(values)
    return s.median, s.p10, s.p90


def memcpy_h2d_seconds(nbytes: int, device: torch.device, *, pinned: bool = True, repeats: int = 10) -> list[float]:
    """Seconds per host-to-device copy of ``nbytes`` from pinned (or pageable) host memory."""
    src = torch.empty(nbytes, dtype=torch.uint8, pin_memory=pinned)
    dst = torch.empty(nbytes, dtype=torch.uint8, device=device)
    return time_cuda(lambda: dst.copy_(src, non_blocking=pinned), repeats=repeats)

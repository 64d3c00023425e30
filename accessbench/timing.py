"""Timing GPU-or-CPU work honestly, one definition for the whole suite.

Work on a CUDA device is asynchronous: a host clock read right after a launch measures the launch, not the work.
``synchronized_perf_counter`` waits for queued device work first (plain ``perf_counter`` on the CPU);
``time_calls`` runs warm-up calls, then times each repeat with CUDA events on the current stream (on a CUDA device)
or a synchronised perf_counter (elsewhere), and returns every sample in seconds. Used by the runner's phases, the
probe, the GPU check, asv, the pytest-benchmark sessions and the examples. Clocks can be injected for tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

__all__ = ["Clock", "synchronize", "synchronized_perf_counter", "time_calls"]

#: A clock: seconds as a float, monotonic.
Clock = Callable[[], float]


def synchronize(device: torch.device | str | None = None) -> None:
    """Wait for every queued kernel on ``device`` (any initialised CUDA device when None); no-op on the CPU."""
    if device is not None:
        dev = torch.device(device)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def synchronized_perf_counter() -> float:
    """``time.perf_counter()`` after waiting for queued CUDA work (plain on the CPU), in seconds.

    pytest-benchmark reads its timer before and after each round, so both edges of a round are synchronised.
    """
    synchronize()
    return time.perf_counter()


def time_calls(fn: Callable[[], object], *, device: torch.device | str = "cpu", warmup: int = 3, repeats: int = 10,
               clock: Clock | None = None) -> list[float]:
    """Seconds per call of ``fn``: ``warmup`` discarded calls, then ``repeats`` timed ones (every sample returned).

    On a CUDA ``device`` each call is bracketed by CUDA events on the current stream (the device's own clock, no host
    round trip inside the window); elsewhere by ``clock`` (default ``time.perf_counter``) with the device
    synchronised at both edges.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    dev = torch.device(device)
    for _ in range(warmup):
        fn()
    synchronize(dev)
    out: list[float] = []
    if dev.type == "cuda" and clock is None:
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            out.append(start.elapsed_time(end) / 1e3)
        return out
    tick = clock or time.perf_counter
    for _ in range(repeats):
        synchronize(dev)
        t0 = tick()
        fn()
        synchronize(dev)
        out.append(tick() - t0)
    return out

"""A benchmark timer that waits for queued GPU work, so a timed round ends when the device has finished."""

from __future__ import annotations

import time

import torch

__all__ = ["synchronized_perf_counter"]


def synchronized_perf_counter() -> float:
    """``time.perf_counter()`` after ``torch.cuda.synchronize()`` (when CUDA is in use; plain on the CPU).

    pytest-benchmark reads the timer before and after each round, so both edges of the round are synchronised.
    """
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return time.perf_counter()

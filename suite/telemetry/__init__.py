"""Telemetry windows: synchronise the device at both edges and read every meter over the window.

Meters record ``None`` with a reason where they cannot measure (never 0). The runner wraps the measured steps in
one ``window``; strategies' phases go through ``phase_hook`` (NVTX ranges and per-phase meters plug in there).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from kernels.device import synchronize
from suite.telemetry.meters import CpuMeter, Meter, NullGpuMeter

__all__ = ["Telemetry", "Meter", "CpuMeter", "NullGpuMeter", "default_meters"]


def default_meters(device: torch.device) -> list[Meter]:
    """The meters this machine supports for ``device``: CPU utilisation always; GPU energy where measurable."""
    return [CpuMeter(), NullGpuMeter("no GPU energy meter in this build" if device.type == "cuda"
                                     else "device is the CPU: no GPU to meter")]


class Telemetry:
    """Windows over the measured region, with the device synchronised at both edges."""

    def __init__(self, device: torch.device, meters: list[Meter] | None = None) -> None:
        self.device = device
        self.meters = meters if meters is not None else default_meters(device)

    @contextlib.contextmanager
    def window(self, name: str) -> Iterator[dict[str, Any]]:
        """Meter the block; the yielded dict is filled with record fields (and ``notes``) when it exits."""
        result: dict[str, Any] = {"notes": []}
        synchronize(self.device)
        for m in self.meters:
            m.start()
        try:
            yield result
        finally:
            synchronize(self.device)
            for m in reversed(self.meters):
                fields, notes = m.stop()
                result.update(fields)
                result["notes"].extend(notes)

    def phase_hook(self, name: str) -> contextlib.AbstractContextManager[Any]:
        """Wraps one strategy phase (timed by the strategy itself)."""
        return contextlib.nullcontext()

    def step(self, index: int) -> contextlib.AbstractContextManager[Any]:
        """Wraps one measured step."""
        return contextlib.nullcontext()

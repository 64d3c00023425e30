"""Meters read over a telemetry window. ``stop()`` returns (record fields, notes); unmeasured fields are None."""

from __future__ import annotations

import time
from typing import Any, Protocol

import psutil

__all__ = ["Meter", "CpuMeter", "NullGpuMeter"]


class Meter(Protocol):
    """Something read at the start and end of a window."""

    def start(self) -> None: ...

    def stop(self) -> tuple[dict[str, Any], list[str]]: ...


class CpuMeter:
    """CPU utilisation over the window (psutil).

    ``cpu_util_process``: this process's CPU seconds / wall seconds (1.0 = one core busy all the time).
    ``cpu_util_system``: busy fraction of all cores, 0..1.
    """

    def __init__(self) -> None:
        self._proc = psutil.Process()
        self._t0 = 0.0
        self._p0: Any = None
        self._s0: Any = None

    def start(self) -> None:
        self._p0 = self._proc.cpu_times()
        self._s0 = psutil.cpu_times()
        self._t0 = time.perf_counter()

    def stop(self) -> tuple[dict[str, Any], list[str]]:
        wall = time.perf_counter() - self._t0
        p1, s1 = self._proc.cpu_times(), psutil.cpu_times()
        proc = (p1.user - self._p0.user) + (p1.system - self._p0.system)
        busy0 = sum(self._s0) - self._s0.idle - getattr(self._s0, "iowait", 0.0)
        busy1 = sum(s1) - s1.idle - getattr(s1, "iowait", 0.0)
        total = sum(s1) - sum(self._s0)
        fields: dict[str, Any] = {
            "cpu_util_process": proc / wall if wall > 0 else None,
            "cpu_util_system": (busy1 - busy0) / total if total > 0 else None,
        }
        notes = [] if wall > 0.05 else [f"cpu utilisation window only {wall * 1e3:.1f} ms: coarse (10 ms ticks)"]
        return fields, notes


class NullGpuMeter:
    """Stands in where GPU energy cannot be measured: every field None, and the reason as a note."""

    FIELDS = ("gpu_energy_j", "gpu_power_w", "energy_per_step_j")

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def start(self) -> None:
        pass

    def stop(self) -> tuple[dict[str, Any], list[str]]:
        return dict.fromkeys(self.FIELDS), [f"gpu energy not measured: {self.reason}"]

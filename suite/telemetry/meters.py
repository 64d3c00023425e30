"""Meters read over a telemetry window. ``stop()`` returns (record fields, notes); unmeasured fields are None.

Every meter has a null twin (``NullMeter``) that returns None for its fields and the reason as a note, so the runner
never branches on the hardware it has and never reports 0 for something it did not measure.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import psutil

from accessbench import schema

__all__ = ["GPU_FIELDS", "RAPL_FIELDS", "CpuMeter", "Meter", "NullGpuMeter", "NullMeter"]

#: Record fields an NVML meter fills (None from its null twin).
GPU_FIELDS: tuple[str, ...] = schema.by_group("gpu")
#: Record fields a RAPL meter fills.
RAPL_FIELDS: tuple[str, ...] = ("cpu_energy_j", "cpu_dram_energy_j")


class Meter(Protocol):
    """Something read at the start and end of a window (``window`` names it: ``measure``, ``idle``)."""

    def start(self, window: str = "measure") -> None: ...

    def stop(self) -> tuple[dict[str, Any], list[str]]: ...


class CpuMeter:
    """CPU utilisation over the window (psutil).

    ``cpu_util_process``: this process's CPU seconds / wall seconds (1.0 = one core busy all the time).
    ``cpu_util_system``: busy fraction of all cores, 0..1.
    """

    min_window_s = 0.0

    def __init__(self) -> None:
        self._proc = psutil.Process()
        self._t0 = 0.0
        self._p0: Any = None
        self._s0: Any = None

    def start(self, window: str = "measure") -> None:
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


class NullMeter:
    """Stands in for a meter that cannot measure here: its fields None, and ``<what> not measured: <reason>``."""

    min_window_s = 0.0

    def __init__(self, fields: tuple[str, ...], what: str, reason: str) -> None:
        self.fields, self.what, self.reason = fields, what, reason

    def start(self, window: str = "measure") -> None:
        pass

    def stop(self) -> tuple[dict[str, Any], list[str]]:
        return dict.fromkeys(self.fields), [f"{self.what} not measured: {self.reason}"]


class NullGpuMeter(NullMeter):
    """Stands in where GPU energy cannot be measured: every GPU field None, and the reason as a note."""

    FIELDS = GPU_FIELDS

    def __init__(self, reason: str) -> None:
        super().__init__(GPU_FIELDS, "gpu energy", reason)

"""Telemetry windows: synchronise the device at both edges and read every meter over the window.

Meters record ``None`` with a reason where they cannot measure (never 0): NVML (GPU energy, power trace), CPU
utilisation (psutil), RAPL (CPU package and DRAM energy). The runner wraps the measured steps in one ``window``;
``step(i)`` wraps each measured step and strategies' phases go through ``phase_hook`` (NVTX ranges in the domain
``accessbench``, emitted only while a window is open, so warm-up has none; and the worker's heartbeat).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import torch

from accessbench.kernels.device import synchronize
from accessbench.timing import Clock

from .gpu import NvmlEnergyMeter, PowerSampler
from .heartbeat import Heartbeat
from .meters import CpuMeter, Meter, NullGpuMeter, NullMeter
from .nvml import NvmlError, device_ids, load_nvml
from .ranges import NullRanges, RangeBackend, nvtx_ranges
from .rapl import discover_rapl
from .settings import TelemetrySettings

__all__ = [
    "CpuMeter",
    "Meter",
    "NullGpuMeter",
    "NullMeter",
    "Observer",
    "Telemetry",
    "TelemetrySettings",
    "default_meters",
    "gpu_meter",
]

_NULL = contextlib.nullcontext()


def gpu_meter(device: torch.device, settings: TelemetrySettings, *, trace_path: Path | None = None) -> Meter:
    """An NVML energy meter (with a power sampler) for a CUDA ``device``, or a null meter saying why not."""
    if device.type != "cuda":
        return NullGpuMeter("device is the CPU: no GPU to meter")
    try:
        nvml = load_nvml()
        ids = device_ids(device)
        handle = nvml.handle(ids)
    except NvmlError as exc:
        return NullGpuMeter(str(exc))
    sampler = None
    if settings.power_interval_s > 0:
        sampler = PowerSampler(nvml, handle, gpu=ids.index, path=trace_path, interval_s=settings.power_interval_s,
                               energy=True)
    return NvmlEnergyMeter(nvml, handle, min_window_s=settings.min_energy_window_s, sampler=sampler)


def default_meters(device: torch.device, settings: TelemetrySettings | None = None, *,
                   trace_path: Path | None = None) -> list[Meter]:
    """The meters for ``device``: CPU utilisation, GPU energy (NVML) and CPU energy (RAPL), each null where absent."""
    settings = settings or TelemetrySettings()
    return [CpuMeter(), gpu_meter(device, settings, trace_path=trace_path),
            discover_rapl(Path(settings.rapl_root))]


class _Range:
    __slots__ = ("_backend", "_name", "_payload")

    def __init__(self, backend: RangeBackend, name: str, payload: int | None) -> None:
        self._backend, self._name, self._payload = backend, name, payload

    def __enter__(self) -> None:
        self._backend.push(self._name, self._payload)

    def __exit__(self, *exc: object) -> None:
        self._backend.pop()


class Observer(Protocol):
    """Told where a configuration is: lifecycle ``stage``, measured ``step``, strategy ``phase`` (e.g. the worker's
    crash heartbeat). Observers are attached to a ``Telemetry``; none is wired into it."""

    def stage(self, name: str) -> None: ...

    def step(self, index: int) -> None: ...

    def phase(self, name: str) -> None: ...


class Telemetry:
    """Windows over the measured region, with the device synchronised at both edges; ``clock`` (seconds) times
    each window's ``window_s``. ``observers`` (and ``heartbeat``, one of them) are told each stage, step and
    phase."""

    def __init__(self, device: torch.device, meters: list[Meter] | None = None, *,
                 ranges: RangeBackend | None = None, heartbeat: Heartbeat | None = None,
                 settings: TelemetrySettings | None = None, trace_path: Path | None = None,
                 clock: Clock = time.perf_counter, observers: list[Observer] | None = None) -> None:
        self.device = device
        self.clock = clock
        self.settings = settings or TelemetrySettings()
        self.meters = meters if meters is not None else default_meters(device, self.settings, trace_path=trace_path)
        self.ranges: RangeBackend = ranges if ranges is not None else nvtx_ranges(self.settings.nvtx)
        self.observers: list[Observer] = list(observers or [])
        if heartbeat is not None:
            self.observers.append(heartbeat)
        self.trace_path = trace_path
        self._active = False
        self._phase_ranges: dict[str, _Range] = {}  # reusable: a phase range carries no state

    @property
    def heartbeat(self) -> Heartbeat | None:
        """The attached crash heartbeat, if any (one of the observers)."""
        return next((o for o in self.observers if isinstance(o, Heartbeat)), None)

    @heartbeat.setter
    def heartbeat(self, value: Heartbeat | None) -> None:
        self.observers = [o for o in self.observers if not isinstance(o, Heartbeat)]
        if value is not None:
            self.observers.append(value)

    @property
    def min_window_s(self) -> float:
        """The shortest window every meter can measure well (0 when none needs a long one)."""
        return max((float(getattr(m, "min_window_s", 0.0)) for m in self.meters), default=0.0)

    @property
    def ranges_note(self) -> str | None:
        """Why no NVTX ranges are emitted, when they are not."""
        return self.ranges.reason if isinstance(self.ranges, NullRanges) else None

    @contextlib.contextmanager
    def window(self, name: str = "measure", *, ranges: bool = True) -> Iterator[dict[str, Any]]:
        """Meter the block; the yielded dict is filled with record fields, ``window_s`` and ``notes`` on exit.

        With ``ranges`` (the default) the block is an NVTX range ``name`` and phases and steps inside it get ranges.
        """
        result: dict[str, Any] = {"notes": []}
        synchronize(self.device)
        for m in self.meters:
            m.start(name)
        if ranges:
            self.ranges.push(name)
            self._active = True
        t0 = self.clock()
        try:
            yield result
        finally:
            synchronize(self.device)
            result["window_s"] = self.clock() - t0
            if ranges:
                self._active = False
                self.ranges.pop()
            for m in reversed(self.meters):
                fields, notes = m.stop()
                result.update(fields)
                result["notes"].extend(notes)

    def phase_hook(self, name: str) -> contextlib.AbstractContextManager[Any]:
        """Wraps one strategy phase (timed by the strategy itself): heartbeat (the main thread's phases only: see
        ``Heartbeat.phase``), and an NVTX range inside a window."""
        for o in self.observers:
            o.phase(name)
        if not self._active:
            return _NULL
        rng = self._phase_ranges.get(name)
        if rng is None or rng._backend is not self.ranges:
            rng = self._phase_ranges[name] = _Range(self.ranges, name, None)
        return rng

    def step(self, index: int) -> contextlib.AbstractContextManager[Any]:
        """Wraps one measured step: heartbeat, and an NVTX range ``step`` with the step number as payload."""
        for o in self.observers:
            o.step(index)
        return _Range(self.ranges, "step", index) if self._active else _NULL

    def stage(self, name: str) -> None:
        """Tell the observers which lifecycle stage the configuration is in."""
        for o in self.observers:
            o.stage(name)

    @contextlib.contextmanager
    def ranges_to(self, backend: RangeBackend) -> Iterator[None]:
        """Emit phase and step ranges to ``backend`` inside the block (e.g. the torch profiler's labels)."""
        saved, self.ranges = self.ranges, backend
        self._active = True
        try:
            yield
        finally:
            self._active = False
            self.ranges = saved

    def close(self) -> None:
        """Close trace files."""
        for m in self.meters:
            close = getattr(m, "close", None)
            if close is not None:
                close()

"""GPU energy over a window from NVML's total-energy counter, and a background sampler writing a power trace.

The energy counter (millijoules since the driver loaded) is read at both edges of a window, after the caller has
synchronised the device. It advances every ~20-100 ms and, on H100-class GPUs, integrates a power sensor that samples
only about a quarter of the time ("Part-time Power Measurements", SC24), so bursty steps alias: the figure is an
estimate (a note says so), windows shorter than ``min_window_s`` (default ``MIN_ENERGY_WINDOW_S``, 5 s) are flagged
(the runner repeats the measured steps until the window is long enough), the window is cut into several segments
whose powers' spread is reported, and a counter that did not advance gives None, never 0 J. The sampler reads power, utilisation, memory, clocks and PCIe throughput every ``interval_s`` and
appends rows to a CSV (``t_s, power_w, gpu, window, ...``) that the reports read.
"""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path
from typing import IO, Any

from accessbench.timing import Clock

from .meters import GPU_FIELDS
from .nvml import Nvml, NvmlError

__all__ = ["ENERGY_SEGMENTS", "MIN_ENERGY_WINDOW_S", "TRACE_COLUMNS", "NvmlEnergyMeter", "PowerSampler",
           "segment_powers"]

#: The shortest energy window worth reporting (s): several of the sensor's part-time sampling periods, so a step's
#: bursts are seen in proportion (shorter windows are flagged ``energy_window_short``).
MIN_ENERGY_WINDOW_S = 5.0
#: Segments a window is cut into to report the spread of its power (each at least 1 s).
ENERGY_SEGMENTS = 5

TRACE_COLUMNS: tuple[str, ...] = (
    "t_s", "power_w", "gpu", "window", "gpu_util_pct", "mem_util_pct", "mem_used_bytes", "sm_clock_mhz",
    "mem_clock_mhz", "pcie_tx_gbps", "pcie_rx_gbps", "pcie_gen", "pcie_width", "energy_mj",
)
# Sampled counters: trace column -> the Nvml reader that yields it (paired readers return two columns).
_READERS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("power_w",), "power_w"),
    (("gpu_util_pct", "mem_util_pct"), "utilization_pct"),
    (("mem_used_bytes",), "memory_used_bytes"),
    (("sm_clock_mhz", "mem_clock_mhz"), "clocks_mhz"),
    (("pcie_tx_gbps", "pcie_rx_gbps"), "pcie_gbps"),
    (("pcie_gen", "pcie_width"), "pcie_link"),  # during the window: links downtrain at idle
    (("energy_mj",), "energy_mj"),  # only with ``energy=True``: the segments of ``NvmlEnergyMeter``
)


class PowerSampler:
    """Samples one GPU every ``interval_s`` in a daemon thread while a window is open; rows go to ``path``.

    A counter the GPU does not support is dropped after its first failure (its column stays empty, one note).
    PCIe throughput blocks ~20 ms per read in NVML (TX and RX read at once, over the same 20 ms), so it is sampled
    only when ``interval_s >= 0.05``; zero-copy reads of host memory show as RX (traffic into the GPU). The PCIe
    link's generation and width are sampled too (links downtrain at idle). ``energy``: also read the energy counter
    at each sample (for the energy meter's segments).
    ``clock`` (seconds) stamps the rows' ``t_s``; the pacing between samples is real time.
    """

    def __init__(self, nvml: Nvml, handle: Any, *, gpu: int, path: Path | None, interval_s: float = 0.1,
                 clock: Clock = time.perf_counter, energy: bool = False) -> None:
        if interval_s <= 0:
            raise ValueError(f"power sample interval must be > 0 s, got {interval_s}")
        self.nvml, self.handle, self.gpu, self.path, self.interval_s = nvml, handle, gpu, path, interval_s
        self.clock = clock
        self._pcie_skipped = interval_s < 0.05
        self._readers = [r for r in _READERS if (r[1] != "pcie_gbps" or not self._pcie_skipped)
                         and (r[1] != "energy_mj" or energy)]
        self._dropped: dict[str, str] = {}
        self.rows: list[dict[str, Any]] = []  # the last window's rows (``_rows``), for the energy meter
        self._rows: list[dict[str, Any]] = []
        self._file: IO[str] | None = None
        self._origin: float | None = None
        self._window = "measure"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: str | None = None

    def sample_once(self) -> dict[str, Any]:
        """Read every supported counter now; returns one trace row (absent counters are None)."""
        now = self.clock()
        if self._origin is None:
            self._origin = now
        row: dict[str, Any] = dict.fromkeys(TRACE_COLUMNS)
        row.update(t_s=now - self._origin, gpu=self.gpu, window=self._window)
        for cols, reader in list(self._readers):
            try:
                values = getattr(self.nvml, reader)(self.handle)
            except NvmlError as exc:
                self._readers.remove((cols, reader))
                self._dropped[reader] = str(exc)
                continue
            values = values if isinstance(values, tuple) else (values,)
            row.update(zip(cols, values))
        return row

    def _loop(self) -> None:
        start = time.perf_counter()
        k = 0
        try:
            while True:
                self._record(self.sample_once())
                k += 1
                delay = start + k * self.interval_s - time.perf_counter()
                if self._stop.wait(max(delay, 0.0)):
                    return
        except Exception as exc:  # never raise in a thread: reported as a note by stop()
            self._error = f"{type(exc).__name__}: {exc}"

    def _record(self, row: dict[str, Any]) -> None:
        self._rows.append(row)
        if self._file is not None:
            self._file.write(",".join(_cell(row[c]) for c in TRACE_COLUMNS) + "\n")

    def start(self, window: str = "measure") -> None:
        """Begin sampling rows labelled ``window`` (the trace file is created on the first start)."""
        self._window = window
        self._rows = []
        self._error = None
        if self.path is not None and self._file is None:
            self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()
            self._file.write(",".join(TRACE_COLUMNS) + "\n")
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="accessbench-power")
        self._thread.start()

    def stop(self) -> tuple[dict[str, Any], list[str]]:
        """Stop sampling; returns the window's summary fields and notes."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5)
            self._thread = None
        if not self._error:
            try:
                self._record(self.sample_once())  # the closing edge
            except Exception as exc:
                self._error = f"{type(exc).__name__}: {exc}"
        if self._file is not None:
            self._file.flush()
        self.rows = self._rows
        return summarise_trace(self._rows), self._notes()

    def close(self) -> None:
        """Close the trace file."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def _notes(self) -> list[str]:
        notes = [f"power trace: {reader} not sampled ({why})" for reader, why in self._dropped.items()]
        if self._pcie_skipped:
            notes.append(f"power trace: PCIe throughput not sampled (NVML blocks 20 ms per read; interval "
                         f"{self.interval_s * 1e3:.0f} ms < 50 ms)")
        if self._error:
            notes.append(f"power trace stopped early: {self._error}")
        return notes


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def summarise_trace(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Window summary from trace rows: max power, mean utilisation and PCIe rates, max memory, median clocks."""

    def col(name: str) -> list[float]:
        return [r[name] for r in rows if r.get(name) is not None]

    def agg(name: str, fn: Any) -> Any:
        values = col(name)
        return fn(values) if values else None

    return {
        "gpu_power_max_w": agg("power_w", max),
        "gpu_util_pct": agg("gpu_util_pct", statistics.fmean),
        "gpu_mem_util_pct": agg("mem_util_pct", statistics.fmean),
        "gpu_mem_used_bytes": agg("mem_used_bytes", max),
        "gpu_sm_clock_mhz": agg("sm_clock_mhz", statistics.median),
        "gpu_mem_clock_mhz": agg("mem_clock_mhz", statistics.median),
        "pcie_tx_gbps": agg("pcie_tx_gbps", statistics.fmean),
        "pcie_rx_gbps": agg("pcie_rx_gbps", statistics.fmean),
        "_power_mean_w": agg("power_w", statistics.fmean),
        "_pcie_gen_max": agg("pcie_gen", max),
        "_pcie_width_max": agg("pcie_width", max),
    }


def segment_powers(rows: list[dict[str, Any]], *, segments: int = ENERGY_SEGMENTS, min_segment_s: float = 1.0
                   ) -> list[float]:
    """Mean power (W) of consecutive segments of a window, from trace rows with ``t_s`` and ``energy_mj``: up to
    ``segments`` segments of at least ``min_segment_s`` each, each bounded by the counter readings nearest to its
    edges; [] when the rows cannot give two segments."""
    pts = [(float(r["t_s"]), int(r["energy_mj"])) for r in rows
           if r.get("energy_mj") is not None and r.get("t_s") is not None]
    if len(pts) < 3:
        return []
    t0, t1 = pts[0][0], pts[-1][0]
    k = min(segments, int((t1 - t0) // min_segment_s)) if min_segment_s > 0 else segments
    if k < 2:
        return []
    edges = [min(pts, key=lambda p, e=t0 + (t1 - t0) * i / k: abs(p[0] - e)) for i in range(k + 1)]
    out = []
    for (ta, ea), (tb, eb) in zip(edges, edges[1:]):
        if tb > ta and eb >= ea:
            out.append((eb - ea) / 1000.0 / (tb - ta))
    return out if len(out) >= 2 else []


class NvmlEnergyMeter:
    """GPU energy over a window from the total-energy counter (J), plus the sampler's summary when one is given.

    ``gpu_power_w`` is energy / window seconds, an estimate (see the module; a note says so). A counter that went
    backwards (driver reload, GPU reset) or did not advance gives None with the reason. ``energy_window_short`` flags
    windows under ``min_window_s``. With a sampler that reads the energy counter (``energy=True``), the spread of
    the power of the window's segments (``segment_powers``) is a note; so is the PCIe link seen during the window.
    ``clock`` (seconds) times the window.
    """

    def __init__(self, nvml: Nvml, handle: Any, *, min_window_s: float = MIN_ENERGY_WINDOW_S,
                 sampler: PowerSampler | None = None, clock: Clock = time.perf_counter) -> None:
        self.nvml, self.handle, self.min_window_s, self.sampler = nvml, handle, min_window_s, sampler
        self.clock = clock
        self._t0 = 0.0
        self._e0: int | None = None
        self._error: str | None = None

    def start(self, window: str = "measure") -> None:
        self._error = None
        try:
            self._e0 = self.nvml.energy_mj(self.handle)
        except NvmlError as exc:
            self._e0, self._error = None, str(exc)
        if self.sampler is not None:
            self.sampler.start(window)
        self._t0 = self.clock()

    def stop(self) -> tuple[dict[str, Any], list[str]]:
        wall = self.clock() - self._t0
        e1: int | None = None
        if self._e0 is not None:
            try:
                e1 = self.nvml.energy_mj(self.handle)
            except NvmlError as exc:
                self._error = str(exc)
        fields: dict[str, Any] = dict.fromkeys(GPU_FIELDS)
        notes: list[str] = []
        mean_power = None
        if self.sampler is not None:
            summary, sampler_notes = self.sampler.stop()
            mean_power = summary.pop("_power_mean_w", None)
            gen, width = summary.pop("_pcie_gen_max", None), summary.pop("_pcie_width_max", None)
            fields.update(summary)
            notes.extend(sampler_notes)
            if gen is not None:
                notes.append(f"PCIe link during the window: gen{gen} x{width} (the highest sampled; the environment"
                             " stamp's pcie is read at idle, when links downtrain)")
            powers = segment_powers(self.sampler.rows)
            if powers:
                mean = statistics.fmean(powers)
                spread = (max(powers) - min(powers)) / mean * 100 if mean > 0 else 0.0
                notes.append(f"gpu power over {len(powers)} segments of the window: {min(powers):.1f}-"
                             f"{max(powers):.1f} W (spread {spread:.1f}% of the mean {mean:.1f} W)")
        fields["energy_window_short"] = wall < self.min_window_s
        if self._e0 is None or e1 is None:
            notes.append(f"gpu energy not measured: {self._error}")
        elif e1 < self._e0:
            notes.append("gpu energy not measured: the NVML energy counter went backwards during the window "
                         "(driver reloaded or GPU reset)")
        elif e1 == self._e0:
            notes.append(f"gpu energy not measured: the NVML energy counter did not advance in a {wall:.3f} s "
                         "window (it updates every ~20-100 ms); lengthen it with --min-energy-window")
        else:
            fields["gpu_energy_j"] = (e1 - self._e0) / 1000.0
            fields["gpu_power_w"] = fields["gpu_energy_j"] / wall if wall > 0 else None
            notes.append("gpu_energy_j is an estimate: NVML's energy counter integrates a power sensor that samples "
                         "part of the time on H100-class GPUs (about 25%, 'Part-time Power Measurements', SC24), so "
                         f"bursty steps alias; windows of at least {MIN_ENERGY_WINDOW_S:g} s average it out")
        if fields["gpu_power_w"] is None and mean_power is not None:
            fields["gpu_power_w"] = mean_power
            notes.append("gpu_power_w is the mean of the sampled power (no energy counter reading)")
        if fields["energy_window_short"]:
            notes.append(f"gpu energy window {wall:.3f} s is shorter than {self.min_window_s:g} s: the energy "
                         "counter's update period makes it coarse")
        return fields, notes

    def close(self) -> None:
        """Close the power trace."""
        if self.sampler is not None:
            self.sampler.close()

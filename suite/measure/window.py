"""The measured window of one configuration, an optional idle baseline after it, and an optional profiled pass.

The measured steps run inside one telemetry window. When a meter needs a longer window than the steps take (NVML's
energy counter updates every ~20-100 ms), the steps are run again inside the same window until it is long enough:
``energy_repeats`` says how many passes, and every timed step counts in the medians. The idle baseline then meters
an idle device for as long, so energy above idle can be reported. The profiled pass runs a few extra steps under
``torch.profiler`` after everything is measured, so the profiler's overhead never reaches the numbers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import torch

from accessbench import schema
from accessbench.suite.telemetry import Telemetry
from accessbench.suite.telemetry.ranges import TorchProfilerRanges

from .distributed import all_true
from .memcap import ENV as MEMCAP_ENV
from .memcap import MemoryCap, MemoryCapUnavailable
from .records import Record

__all__ = ["StepBody", "mark_contention", "measure", "profile_pass"]

#: One step: takes the step index, returns seconds per phase (``step`` included).
StepBody = Callable[[int], dict[str, float]]


def _apply(rec: Record, win: dict[str, Any], *, prefix_notes: str = "") -> None:
    for note in win.pop("notes", []):
        text = prefix_notes + note
        if text not in rec.notes and note not in rec.notes:
            rec.notes.append(text)
    for k, v in win.items():
        if hasattr(rec, k):
            setattr(rec, k, v)


def measure(rec: Record, telemetry: Telemetry, steps: int, body: StepBody, *,
            defer_idle: bool = False) -> list[dict[str, float]]:
    """Run ``steps`` measured steps in a window (repeated until it is long enough); fill the window's fields.

    With ``defer_idle`` the caller runs ``finish_idle`` itself once background work (prefetch threads, pipelines)
    has stopped, so the idle window really is idle.
    """
    settings = telemetry.settings
    min_window = telemetry.min_window_s
    per_step: list[dict[str, float]] = []
    if rec.memory_cap_bytes:
        apply_memory_cap(rec, rec.memory_cap_bytes)
    telemetry.stage("measure")
    rec.cpu_threads = torch.get_num_threads()
    rec.cpu_affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    passes = 0
    with telemetry.window("measure") as win:
        t0 = time.perf_counter()
        while True:
            base = passes * steps
            for i in range(steps):
                with telemetry.step(base + i):
                    per_step.append(body(base + i))
            passes += 1
            wall = time.perf_counter() - t0
            # with several ranks every rank runs the same passes (their steps may be collectives): stop when all can
            if all_true(wall >= min_window or passes >= settings.max_energy_repeats):
                break
    rec.wall_s = wall
    window_s = win.pop("window_s")
    _apply(rec, win)
    mark_contention(rec)
    rec.energy_window_s = window_s
    rec.energy_repeats = passes
    rec.measured_steps = passes * steps
    if passes > 1:
        rec.notes.append(f"measured steps run {passes} times ({passes * steps} steps, {window_s:.2f} s) so the "
                         f"energy window reaches {min_window:g} s; timings and counters cover all of them")
    if rec.gpu_energy_j is not None:
        rec.energy_per_step_j = rec.gpu_energy_j / rec.measured_steps
    if rec.cpu_energy_j is not None:
        rec.cpu_energy_per_step_j = rec.cpu_energy_j / rec.measured_steps
    if telemetry.trace_path is not None and telemetry.trace_path.exists():
        rec.power_trace = telemetry.trace_path.name
    if not defer_idle:
        finish_idle(rec, telemetry)
    return per_step


def apply_memory_cap(rec: Record, cap_bytes: int) -> None:
    """Tighten this worker's memory cgroup (made by the runner) to its anonymous memory + ``cap_bytes``.

    Done as the measured window opens: the model, the optimiser and a warm-up step's buffers are allocated by then,
    so the cap bounds what file pages (the store, the CSR) may keep resident, as a memory-capped container does.
    """
    cap = MemoryCap.from_env(os.environ.get(MEMCAP_ENV))
    if cap is None:
        return  # in-process, or no cgroup could be made: the runner says so in the record
    try:
        anon = cap.anon_bytes()
        limit = cap.tighten(cap_bytes, base=anon)
    except (OSError, MemoryCapUnavailable) as exc:
        rec.memory_cap_bytes = None
        rec.notes.append(f"memory cap not applied: {cap.path}: {exc}")
        return
    rec.memory_cap_method = cap.method
    rec.notes.append(f"memory capped as the measured window opened: {anon} bytes of anonymous memory + {cap_bytes} "
                     f"for file pages (store and CSR) = {limit} bytes ({cap.method})")


def mark_contention(rec: Record, cores: int | None = None) -> None:
    """Fill ``cpu_others_cores`` (cores other processes used in the window) and flag the row ``contended``."""
    if rec.cpu_util_system is None or rec.cpu_util_process is None:
        return
    cores = cores or psutil.cpu_count() or 1
    rec.cpu_others_cores = max(0.0, rec.cpu_util_system * cores - rec.cpu_util_process)
    rec.contended = rec.cpu_others_cores > schema.CONTENDED_CORES
    if rec.contended:
        rec.notes.append(f"contended: other processes used {rec.cpu_others_cores:.2f} of {cores} cores during the "
                         f"measured window (threshold {schema.CONTENDED_CORES}); timings are suspect")


def finish_idle(rec: Record, telemetry: Telemetry) -> None:
    """The idle baseline after a measurement, when the settings ask for one and something was metered."""
    if not telemetry.settings.idle_baseline:
        return
    if rec.gpu_energy_j is None and rec.cpu_energy_j is None:
        rec.notes.append("idle baseline skipped: no energy was measured to compare it with")
        return
    idle_baseline(rec, telemetry, max(rec.energy_window_s or 0.0, telemetry.min_window_s))


def idle_baseline(rec: Record, telemetry: Telemetry, seconds: float) -> None:
    """Meter the idle machine for ``seconds`` (device synchronised, nothing running) and derive energy above idle."""
    telemetry.stage("idle")
    with telemetry.window("idle", ranges=False) as idle:
        time.sleep(seconds)
    rec.idle_window_s = idle["window_s"]
    for what, energy_field, idle_field, above_field in (
        ("gpu", "gpu_energy_j", "gpu_idle_power_w", "gpu_energy_above_idle_j"),
        ("cpu", "cpu_energy_j", "cpu_idle_power_w", "cpu_energy_above_idle_j"),
    ):
        idle_j = idle.get(energy_field)
        if idle_j is None:
            reason = next((n.split(": ", 1)[1] for n in idle["notes"] if n.startswith(f"{what} energy not measured")),
                          "no meter")
            note = f"{what} idle power not measured: {reason}"
            if note not in rec.notes:
                rec.notes.append(note)
            continue
        power = idle_j / rec.idle_window_s
        setattr(rec, idle_field, power)
        measured = getattr(rec, energy_field)
        if measured is not None and rec.energy_window_s is not None:
            setattr(rec, above_field, measured - power * rec.energy_window_s)


def profile_pass(rec: Record, telemetry: Telemetry, steps: int, body: StepBody, path: Path, *,
                 first_index: int) -> None:
    """Run ``steps`` more steps under torch.profiler (phases labelled) and write a Chrome/Perfetto trace to ``path``."""
    import torch.profiler as tp

    telemetry.stage("profile")
    activities = [tp.ProfilerActivity.CPU]
    if telemetry.device.type == "cuda":
        activities.append(tp.ProfilerActivity.CUDA)
    with tp.profile(activities=activities) as prof, telemetry.ranges_to(TorchProfilerRanges()):
        for i in range(steps):
            with telemetry.step(first_index + i):
                body(first_index + i)
    prof.export_chrome_trace(str(path))
    rec.profile_trace = path.name
    rec.notes.append(f"profile_trace: {steps} extra steps after the measurement, under torch.profiler (not in the "
                     "timings)")

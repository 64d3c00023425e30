"""How a run measures: NVTX on/off, power sampling, energy windows, idle baseline, trace files, profiling."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["TelemetrySettings"]


@dataclass(frozen=True)
class TelemetrySettings:
    """Telemetry options of a run (also sent to each configuration's worker as JSON).

    ``nvtx``: emit NVTX ranges (domain ``accessbench``). ``power_interval_s``: power sampler period (0: no sampler).
    ``min_energy_window_s``: energy windows shorter than this are repeated (up to ``max_energy_repeats`` passes of
    the measured steps) when a meter needs long windows (NVML; 5 s: the H100's power sensor samples only part of
    the time, so shorter windows alias bursty steps). ``idle_baseline``: also measure idle power for the
    same duration. ``trace_dir``: where power traces and profiler traces go (None: none written).
    ``profile``: run ``profile_steps`` extra steps under torch.profiler and write a Chrome/Perfetto trace.
    """

    nvtx: bool = True
    power_interval_s: float = 0.1
    min_energy_window_s: float = 5.0  # suite.telemetry.gpu.MIN_ENERGY_WINDOW_S
    max_energy_repeats: int = 100_000
    idle_baseline: bool = False
    trace_dir: str | None = None
    profile: bool = False
    profile_steps: int = 5
    rapl_root: str = "/sys/class/powercap"

    def __post_init__(self) -> None:
        if self.power_interval_s < 0:
            raise ValueError(f"power sample interval must be >= 0 s (0: off), got {self.power_interval_s}")
        if self.min_energy_window_s < 0:
            raise ValueError(f"minimum energy window must be >= 0 s, got {self.min_energy_window_s}")
        if self.max_energy_repeats < 1:
            raise ValueError(f"max energy repeats must be >= 1, got {self.max_energy_repeats}")
        if self.profile_steps < 1:
            raise ValueError(f"profile steps must be >= 1, got {self.profile_steps}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TelemetrySettings:
        """Inverse of ``to_dict`` (unknown keys are an error)."""
        return cls(**data)

    def replace(self, **changes: Any) -> TelemetrySettings:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

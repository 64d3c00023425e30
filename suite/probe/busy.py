"""How busy the machine is with other work: cores used by other processes over a short window (psutil).

``others_cores`` = (busy CPU seconds of the whole machine - CPU seconds of this process and its waited-for children)
/ wall seconds, the same quantity records carry as ``cpu_others_cores``; above ``schema.CONTENDED_CORES`` the
machine is *contended*. ``accessbench run`` samples it for ~0.5 s before starting (and warns), and the probe records
it over its own measurement (``meta.contention``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psutil

from accessbench.schema import CONTENDED_CORES

__all__ = ["CpuWindow", "busy_warning", "others_cores"]


def _machine_busy_s() -> float:
    t = psutil.cpu_times()
    total = sum(t)
    return total - t.idle - getattr(t, "iowait", 0.0)


def _own_s() -> float:
    t = psutil.Process().cpu_times()
    return t.user + t.system + getattr(t, "children_user", 0.0) + getattr(t, "children_system", 0.0)


@dataclass
class CpuWindow:
    """Open with ``start()``, read ``others_cores()`` any time after: other processes' cores since the start."""

    wall0: float = 0.0
    busy0: float = 0.0
    own0: float = 0.0

    def start(self) -> "CpuWindow":
        self.wall0, self.busy0, self.own0 = time.monotonic(), _machine_busy_s(), _own_s()
        return self

    def others_cores(self) -> float:
        wall = time.monotonic() - self.wall0
        if wall <= 0:
            return 0.0
        return max(0.0, ((_machine_busy_s() - self.busy0) - (_own_s() - self.own0)) / wall)


def others_cores(seconds: float = 0.5) -> float:
    """Cores other processes used, on average, over the next ``seconds`` (this process sleeps meanwhile)."""
    window = CpuWindow().start()
    time.sleep(seconds)
    return window.others_cores()


def busy_warning(seconds: float = 0.5) -> str | None:
    """One line saying the machine is busy (other processes > ``CONTENDED_CORES`` cores), or None when it is not."""
    cores = others_cores(seconds)
    if cores <= CONTENDED_CORES:
        return None
    return (f"warning: this machine is busy: other processes used {cores:.2f} cores over {seconds:g} s "
            f"(> {CONTENDED_CORES}); timings will be noisy and rows measured under contention are marked contended")

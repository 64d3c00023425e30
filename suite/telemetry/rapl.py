"""CPU package and DRAM energy from RAPL through Linux powercap (``/sys/class/powercap/intel-rapl:*``).

Each zone's ``energy_uj`` counter wraps at ``max_energy_range_uj``; the meter reads it at both edges of a window and
every ``poll_interval_s`` in between (a daemon thread), adding deltas with wrap-around, so even windows longer than
one wrap period are right. Where powercap has no RAPL zone, or ``energy_uj`` is root-only (Linux >= 5.10), the
discovery returns a null meter with the reason.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .meters import RAPL_FIELDS, NullMeter

__all__ = ["POWERCAP_ROOT", "RaplMeter", "RaplZone", "discover_rapl"]

POWERCAP_ROOT = Path("/sys/class/powercap")


@dataclass(frozen=True)
class RaplZone:
    """One RAPL counter: ``kind`` is ``package`` or ``dram``; ``max_range_uj`` is where it wraps to 0."""

    name: str
    kind: str
    path: Path
    max_range_uj: int

    def read_uj(self) -> int:
        """The counter now, in microjoules."""
        return int((self.path / "energy_uj").read_text().strip())


def discover_rapl(root: Path = POWERCAP_ROOT, *, poll_interval_s: float = 5.0) -> RaplMeter | NullMeter:
    """A meter over every package and DRAM zone under ``root``, or a null meter saying why there is none."""
    what = "cpu energy"
    if not root.is_dir():
        return NullMeter(RAPL_FIELDS, what, f"no powercap interface ({root} missing: not Linux, or a VM)")
    zones: list[RaplZone] = []
    seen: set[str] = set()
    for zdir in sorted(root.glob("intel-rapl:*")):  # skips intel-rapl-mmio (it mirrors package 0)
        try:
            name = (zdir / "name").read_text().strip()
        except OSError:
            continue
        kind = "package" if name.startswith("package") else "dram" if name == "dram" else None
        key = f"{zdir.resolve()}"
        if kind is None or key in seen:
            continue
        seen.add(key)
        try:
            max_range = int((zdir / "max_energy_range_uj").read_text().strip())
        except (OSError, ValueError):
            max_range = 0
        zones.append(RaplZone(name=f"{zdir.name}:{name}", kind=kind, path=zdir, max_range_uj=max_range))
    if not any(z.kind == "package" for z in zones):
        return NullMeter(RAPL_FIELDS, what, f"no RAPL package zone under {root} (CPU or kernel without RAPL)")
    try:
        for z in zones:
            z.read_uj()
    except PermissionError:
        return NullMeter(RAPL_FIELDS, what, f"RAPL energy_uj under {root} is not readable (root-only since Linux "
                         "5.10: run as root or make energy_uj readable)")
    except (OSError, ValueError) as exc:
        return NullMeter(RAPL_FIELDS, what, f"RAPL energy_uj under {root} unreadable: {exc}")
    return RaplMeter(zones, poll_interval_s=poll_interval_s)


class RaplMeter:
    """``cpu_energy_j`` (all packages) and ``cpu_dram_energy_j`` (all DRAM zones, None where there is none)."""

    min_window_s = 0.0

    def __init__(self, zones: list[RaplZone], *, poll_interval_s: float = 5.0) -> None:
        self.zones = zones
        self.poll_interval_s = poll_interval_s
        self._last: dict[str, int] = {}
        self._acc: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._errors: list[str] = []

    def poll(self) -> None:
        """Add each zone's change since the last read (one wrap-around allowed between reads)."""
        with self._lock:
            for z in self.zones:
                try:
                    now = z.read_uj()
                except (OSError, ValueError) as exc:
                    self._errors.append(f"{z.name}: {exc}")
                    continue
                delta = now - self._last[z.name]
                if delta < 0:
                    delta += z.max_range_uj
                    if z.max_range_uj <= 0 or delta < 0:
                        self._errors.append(f"{z.name}: counter went backwards with no known wrap range")
                        delta = 0
                self._acc[z.name] += delta
                self._last[z.name] = now

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            self.poll()

    def start(self, window: str = "measure") -> None:
        self._errors = []
        self._last, self._acc = {}, {}
        for z in self.zones:
            try:
                self._last[z.name] = z.read_uj()
            except (OSError, ValueError) as exc:
                self._errors.append(f"{z.name}: {exc}")
                self._last[z.name] = 0
            self._acc[z.name] = 0
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="accessbench-rapl")
        self._thread.start()

    def stop(self) -> tuple[dict[str, Any], list[str]]:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5)
            self._thread = None
        self.poll()
        fields: dict[str, Any] = dict.fromkeys(RAPL_FIELDS)
        notes: list[str] = []
        if self._errors:
            notes.append(f"cpu energy not measured: RAPL read failed ({'; '.join(sorted(set(self._errors)))})")
            return fields, notes
        by_kind: dict[str, int] = {}
        for z in self.zones:
            by_kind[z.kind] = by_kind.get(z.kind, 0) + self._acc[z.name]
        fields["cpu_energy_j"] = by_kind["package"] / 1e6
        if "dram" in by_kind:
            fields["cpu_dram_energy_j"] = by_kind["dram"] / 1e6
        else:
            notes.append("cpu dram energy not measured: no RAPL dram zone on this machine")
        return fields, notes

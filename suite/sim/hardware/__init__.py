"""Hardware profiles (the TOML files in this folder) and the link model the simulator projects time with.

A profile names link bandwidths in GB/s (10^9 bytes/s): ``device_gbps`` (GPU memory, per GPU), ``peer_gbps``
(GPU-to-GPU, per GPU and direction), ``pcie_gbps`` (host-to-GPU, per GPU and direction), ``host_memory_gbps``
(the host's memory, shared by all GPUs), ``disk_gbps`` and ``disk_iops`` (all drives together). A missing link
is unknown: a projection that needs it is None with a note, never a guess. ``--probe probe.json`` gives the links
the hardware probe measured on this machine instead.

Bytes per link for a batch (the backing model; ``r`` = row bytes):
- cache hits: ``device`` 2r per row served from a cache (read, write out) plus r per admitted row;
- peer hits: ``peer`` r per row received from another GPU's shard;
- victim hits: ``pcie_h2d`` r and ``host`` r per row; each row evicted into the ring: ``pcie_d2h`` r and ``host`` r;
- misses (and rows fetched only to admit them for other GPUs), by backing path:
  ``zero-copy`` pcie_h2d r, host r; ``cpu-centric`` pcie_h2d r, host 3r (gather, staging write, DMA read);
  ``out-of-core`` one read per row of ceil(r / 4 KiB) pages: disk that many 4 KiB pages and I/Os, pcie_h2d r,
  host 2r (bounce buffer write and read).
A step takes (``serial``) the slowest GPU's device + peer + PCIe time plus the shared host-memory and disk time, or
(``overlap``, a lower bound) the busiest single link's time. An epoch is ceil(train ids / (batch size x GPUs)) steps.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from accessbench.kernels.errors import AccessBenchError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "BACKING_MODELS",
    "PROFILE_DIR",
    "HardwareError",
    "Links",
    "links_from_probe",
    "load_profile",
    "profile_names",
    "project_epoch",
    "step_bytes",
]

PROFILE_DIR = Path(__file__).parent
BACKING_MODELS: tuple[str, ...] = ("zero-copy", "cpu-centric", "out-of-core")
_PAGE = 4096


class HardwareError(AccessBenchError):
    """A hardware profile or probe file that is missing or malformed."""


@dataclass(frozen=True)
class Links:
    """Link bandwidths of a machine (GB/s; IOPS for the disk); None where unknown."""

    name: str
    gpus: int | None = None
    device_gbps: float | None = None
    peer_gbps: float | None = None
    pcie_gbps: float | None = None
    host_memory_gbps: float | None = None
    disk_gbps: float | None = None
    disk_iops: float | None = None
    description: str = ""
    sources: dict[str, str] = field(default_factory=dict)


_LINK_KEYS = tuple(f.name for f in fields(Links) if f.name.endswith(("_gbps", "_iops")))


def profile_names() -> list[str]:
    """Names of the bundled profiles."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


def load_profile(name_or_path: str) -> Links:
    """A bundled profile by name, or a profile TOML by path."""
    path = Path(name_or_path)
    if not path.is_file():
        path = PROFILE_DIR / f"{name_or_path.removesuffix('.toml')}.toml"
        if not path.is_file():
            raise HardwareError(f"unknown hardware profile {name_or_path!r}; valid: {', '.join(profile_names())} "
                                "(or a .toml file)")
    try:
        table = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as exc:
        raise HardwareError(f"{path}: unreadable profile ({exc})") from None
    links = table.get("links", {})
    unknown = sorted(set(links) - set(_LINK_KEYS))
    if unknown:
        raise HardwareError(f"{path}: unknown link(s) {', '.join(unknown)}; valid: {', '.join(_LINK_KEYS)}")
    values: dict[str, Any] = {}
    for key, value in links.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise HardwareError(f"{path}: links.{key} must be a positive number")
        values[key] = float(value)
    gpus = table.get("gpus")
    if gpus is not None and (not isinstance(gpus, int) or gpus < 1):
        raise HardwareError(f"{path}: gpus must be a positive integer")
    return Links(name=str(table.get("name", path.stem)), gpus=gpus, description=str(table.get("description", "")),
                 sources={str(k): str(v) for k, v in table.get("sources", {}).items()}, **values)


def links_from_probe(path: str | Path) -> Links:
    """Links measured by the hardware probe (``probe.json``); peer bandwidth is not probed (None)."""
    path = Path(path)
    try:
        probe = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise HardwareError(f"{path}: unreadable probe file ({exc})") from None

    def value(key: str) -> float | None:
        entry = probe.get(key)
        v = entry.get("value") if isinstance(entry, Mapping) else entry
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else None

    mapping = {"device_gbps": "d2d_gbps", "pcie_gbps": "h2d_pinned_gbps", "host_memory_gbps": "host_copy_gbps",
               "disk_gbps": "disk_seq_gbps", "disk_iops": "disk_iops_qd128", "peer_gbps": "p2p_gbps"}
    values = {ours: value(theirs) for ours, theirs in mapping.items()}
    sources = {ours: f"probe {theirs}" for ours, theirs in mapping.items() if values[ours] is not None}
    return Links(name=f"probe:{path.name}", description="measured by accessbench probe", sources=sources, **values)


def step_bytes(c: Mapping[str, int], row_bytes: int, *, backing: str) -> dict[str, int]:
    """Bytes per link for one rank's step from its counters (see the module docstring)."""
    if backing not in BACKING_MODELS:
        raise ValueError(f"backing={backing!r}; valid: {', '.join(BACKING_MODELS)}")
    r = int(row_bytes)
    fetched = c["rows"] - c["device"] - c["peer"] - c["victim"] + c.get("fetch_extra", 0)
    out = {"device": r * (2 * c["served"] + c["admitted"]), "peer": r * c["peer"],
           "pcie_h2d": r * (c["victim"] + fetched), "pcie_d2h": r * c.get("writeback", 0),
           "host": r * (c["victim"] + c.get("writeback", 0)), "disk": 0, "disk_ios": 0}
    if backing == "zero-copy":
        out["host"] += r * fetched
    elif backing == "cpu-centric":
        out["host"] += 3 * r * fetched
    else:
        pages = math.ceil(r / _PAGE)
        out["disk"] = fetched * pages * _PAGE
        out["disk_ios"] = fetched * pages
        out["host"] += 2 * r * fetched
    return out


def project_epoch(per_link: Sequence[Sequence[Mapping[str, int]]], links: Links, *, num_train: int,
                  batch_size: int, gpus: int, row_bytes: int) -> tuple[float | None, float | None, list[str]]:
    """Seconds of data access per epoch: (serial links, overlapped links, notes). None where a link is unknown."""
    del row_bytes  # bytes already include it
    if links.gpus is not None and gpus > links.gpus:
        return None, None, [f"{links.name} has {links.gpus} GPUs, fewer than {gpus}"]
    steps = min((len(r) for r in per_link), default=0)
    if steps == 0:
        return None, None, ["no steps to project"]
    need: dict[str, float | None] = {"device": links.device_gbps, "peer": links.peer_gbps,
                                     "pcie": links.pcie_gbps, "host": links.host_memory_gbps}
    used = {
        "device": any(s["device"] for r in per_link for s in r), "peer": any(s["peer"] for r in per_link for s in r),
        "pcie": any(s["pcie_h2d"] or s["pcie_d2h"] for r in per_link for s in r),
        "host": any(s["host"] for r in per_link for s in r), "disk": any(s["disk"] for r in per_link for s in r),
    }
    missing = [k for k, bw in need.items() if used[k] and bw is None]
    if used["disk"] and links.disk_gbps is None and links.disk_iops is None:
        missing.append("disk")
    if missing:
        return None, None, [f"{links.name} gives no bandwidth for link(s) {', '.join(missing)}"]

    def secs(nbytes: float, gbps: float | None) -> float:
        return nbytes / (gbps * 1e9) if nbytes else 0.0

    serial_total = overlap_total = 0.0
    for i in range(steps):
        ranks = [r[i] for r in per_link]
        private = [(secs(s["device"], need["device"]), secs(s["peer"], need["peer"]),
                    secs(max(s["pcie_h2d"], s["pcie_d2h"]), need["pcie"])) for s in ranks]
        host = secs(sum(s["host"] for s in ranks), need["host"])
        disk_bytes, disk_ios = sum(s["disk"] for s in ranks), sum(s["disk_ios"] for s in ranks)
        disk = max(secs(disk_bytes, links.disk_gbps), disk_ios / links.disk_iops if links.disk_iops else 0.0)
        serial_total += max(sum(p) for p in private) + host + disk
        overlap_total += max(max(max(p) for p in private), host, disk)
    epoch_steps = math.ceil(num_train / (batch_size * gpus))
    scale = epoch_steps / steps
    notes = [f"{epoch_steps} steps per epoch projected from {steps} simulated steps"]
    return serial_total * scale, overlap_total * scale, notes

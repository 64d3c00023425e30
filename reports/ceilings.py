"""The machine's ceilings from ``probe.json``, and which ceiling bounds a given configuration's feature throughput."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from accessbench import schema

__all__ = ["CEILING_LABELS", "ceiling_value", "ceilings_frame", "machine_stamp", "relevant_ceiling"]

#: probe.json keys in display order, with a human label.
CEILING_LABELS: dict[str, str] = {
    "host_copy_gbps": "host memory copy",
    "host_gather_gbps": "host random gather",
    "h2d_pinned_gbps": "host-to-device, pinned",
    "h2d_pageable_gbps": "host-to-device, pageable",
    "d2h_pinned_gbps": "device-to-host, pinned",
    "d2h_pageable_gbps": "device-to-host, pageable",
    "d2d_gbps": "device-to-device copy",
    "device_gather_gbps": "device random gather",
    "p2p_gbps": "peer-to-peer (best pair)",
    "disk_iops_qd1": "disk 4 KiB random reads, 1 in flight",
    "disk_iops_qd32": "disk 4 KiB random reads, 32 in flight",
    "disk_iops_qd128": "disk 4 KiB random reads, 128 in flight",
    "disk_seq_gbps": "disk 1 MiB sequential reads",
}


def _entries(probe: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in probe.items() if isinstance(v, dict) and ("value" in v or "method" in v)}


def _unit(key: str, entry: dict[str, Any]) -> str:
    if entry.get("unit"):
        return str(entry["unit"])
    return "GB/s" if key.endswith("_gbps") else "IOPS" if "iops" in key else ""


def ceilings_frame(probe: dict[str, Any]) -> pd.DataFrame:
    """One row per ceiling: ``key``, ``label``, ``value`` (NaN when not measured), ``unit``, ``method``, ``reason``."""
    entries = _entries(probe)
    order = [k for k in CEILING_LABELS if k in entries] + sorted(k for k in entries if k not in CEILING_LABELS)
    rows = []
    for key in order:
        e = entries[key]
        value = e.get("value")
        rows.append({
            "key": key,
            "label": CEILING_LABELS.get(key, key),
            "value": float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan,
            "unit": _unit(key, e),
            "method": str(e.get("method") or ""),
            "reason": str(e.get("reason") or ""),
        })
    return pd.DataFrame(rows, columns=["key", "label", "value", "unit", "method", "reason"])


def ceiling_value(probe: dict[str, Any], key: str) -> float | None:
    """The measured value of one ceiling, or None."""
    entry = _entries(probe).get(key)
    if not entry:
        return None
    value = entry.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        return None
    return float(value)


def _num(row: Any, key: str) -> float:
    value = row.get(key) if hasattr(row, "get") else None
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def relevant_ceiling(row: Any) -> str:
    """The probe key that bounds a configuration's feature throughput (the schema's rule, ``schema.relevant_ceiling``)."""
    return schema.relevant_ceiling(
        {k: (row.get(k) if hasattr(row, "get") else None) for k in ("device", "strategy", "bytes_disk", "bytes_h2d")})


def machine_stamp(results: pd.DataFrame, probe: dict[str, Any]) -> dict[str, str]:
    """The machine and software a run measured on: the records' ``env`` (first record wins), then probe metadata.

    Fields that differ between records are shown as ``a | b`` so a mixed run is visible; ``time`` as first .. last.
    """
    stamp: dict[str, list[str]] = {}
    envs = [e for e in results.get("env", pd.Series(dtype=object)) if isinstance(e, dict)]
    meta = probe.get("meta") if isinstance(probe.get("meta"), dict) else {}
    machine = meta.get("machine") if isinstance(meta.get("machine"), dict) else {}
    times = sorted(str(e["time"]) for e in envs if e.get("time") is not None)
    for env in [*envs, machine]:
        for key, value in env.items():
            if value is None or isinstance(value, (dict, list)) or key == "time":
                continue
            seen = stamp.setdefault(str(key), [])
            if str(value) not in seen:
                seen.append(str(value))
    out = {k: " | ".join(v) for k, v in stamp.items()}
    if times:
        out["time"] = times[0] if times[0] == times[-1] else f"{times[0]} .. {times[-1]}"
    return out

"""The report's figures, drawn with matplotlib's Agg canvas (no pyplot, no display) and returned as PNG bytes.

Each function returns ``None`` when the run has nothing to draw (the report then says why instead).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .ceilings import CEILING_LABELS, ceiling_value

__all__ = ["Plot", "energy_plot", "hit_rate_plot", "phase_plot", "power_plot", "throughput_plot"]

_STACK = ("sample", "gather", "transfer", "compute")
_COLOURS = {"sample": "#4c72b0", "gather": "#dd8452", "transfer": "#55a868", "compute": "#c44e52"}
_GATHER_CEILINGS = ("host_gather_gbps", "h2d_pinned_gbps", "device_gather_gbps", "disk_seq_gbps", "p2p_gbps")


@dataclass(frozen=True)
class Plot:
    """One rendered figure: PNG bytes plus what it shows."""

    key: str
    title: str
    caption: str
    png: bytes


def _render(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def _finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _finite_col(col: pd.Series) -> pd.Series:
    """Boolean mask of the finite numbers in ``col`` (NaN, inf and non-numbers are False)."""
    return pd.Series(np.isfinite(pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)), index=col.index)


def phase_plot(results: pd.DataFrame, workload: str) -> Plot | None:
    """Stacked median phase times per configuration of ``workload`` (ms); a dot marks the measured step time."""
    part = results[(results["workload"] == workload) & (results["status"] == "ok")]
    part = part[np.logical_or.reduce([_finite_col(part[f"{p}_s"]) for p in _STACK])]
    if part.empty:
        return None
    part = part.sort_values("label", ascending=False)
    fig = Figure(figsize=(8, 0.45 * len(part) + 1.4))
    ax = fig.add_subplot()
    labels = part["label"].tolist()
    left = [0.0] * len(part)
    for phase in _STACK:
        ms = [float(v) * 1e3 if _finite(v) else 0.0 for v in part[f"{phase}_s"]]
        if any(ms):
            ax.barh(labels, ms, left=left, color=_COLOURS[phase], label=phase)
            left = [a + b for a, b in zip(left, ms)]
    steps = [(lab, float(v) * 1e3) for lab, v in zip(labels, part["step_s"]) if _finite(v)]
    if steps:
        ax.scatter([s for _, s in steps], [lab for lab, _ in steps], color="black", zorder=3, s=18,
                   label="step (measured)")
    ax.set_xlabel("median time per step (ms)")
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(axis="x", alpha=0.3)
    return Plot(f"phases-{workload}", f"Phase times: {workload}",
                "Median seconds per step in each phase, stacked; the dot is the measured step time, shorter than "
                "the stack where phases overlap.", _render(fig))


def throughput_plot(results: pd.DataFrame, probe: dict[str, Any]) -> Plot | None:
    """Feature GB/s against row width (bytes) for gather-mode configurations, with the probe's ceilings drawn."""
    part = results[(results["mode"] == "gather") & (results["status"] == "ok")]
    part = part[_finite_col(part["row_bytes"]) & _finite_col(part["feature_gbps"])]
    if part.empty:
        return None
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    for (strategy, device), grp in part.groupby(["strategy", part["device"].fillna("?")]):
        grp = grp.groupby("row_bytes")["feature_gbps"].max().sort_index()
        ax.plot(grp.index, grp.values, marker="o", label=f"{strategy} ({device})")
    for key in _GATHER_CEILINGS:
        value = ceiling_value(probe, key)
        if value is not None:
            ax.axhline(value, linestyle="--", linewidth=1, color="grey")
            ax.annotate(f"{CEILING_LABELS[key]} {value:.3g}", (0.01, value), xycoords=("axes fraction", "data"),
                        fontsize="x-small", va="bottom", color="dimgrey")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("row width (bytes)")
    ax.set_ylabel("feature GB/s delivered")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return Plot("throughput-row-width", "Throughput against row width (gather mode)",
                "Feature bytes delivered to the compute device per second, best configuration of each strategy per "
                "row width; dashed lines are this machine's measured ceilings.", _render(fig))


def energy_plot(results: pd.DataFrame) -> Plot | None:
    """GPU energy per step (J) per configuration, all workloads; None when no record measured energy."""
    part = results[(results["status"] == "ok") & _finite_col(results["energy_per_step_j"])]
    if part.empty:
        return None
    part = part.sort_values(["workload", "label"], ascending=False)
    labels = [f"{w}: {lab}" for w, lab in zip(part["workload"], part["label"])]
    fig = Figure(figsize=(8, 0.4 * len(part) + 1.2))
    ax = fig.add_subplot()
    ax.barh(labels, part["energy_per_step_j"].astype(float), color="#8172b3")
    ax.set_xlabel("GPU energy per step (J)")
    ax.grid(axis="x", alpha=0.3)
    return Plot("energy", "Energy per step", "GPU energy (NVML counter) over the measured steps divided by the steps.",
                _render(fig))


def hit_rate_plot(results: pd.DataFrame) -> Plot | None:
    """Hit rate against cache size (fraction of the table, else MB) for configurations that report both."""
    part = results[(results["status"] == "ok") & _finite_col(results["hit_rate"])]
    use_fraction = bool(_finite_col(part["cache_fraction"]).any())
    xcol = "cache_fraction" if use_fraction else "cache_bytes"
    part = part[_finite_col(part[xcol])]
    if part.empty:
        return None
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    for (workload, strategy), grp in part.groupby(["workload", "strategy"]):
        grp = grp.groupby(xcol)["hit_rate"].max().sort_index()
        xs = grp.index.astype(float) * (1.0 if use_fraction else 1e-6)
        ax.plot(xs, grp.values, marker="o", label=f"{strategy} ({workload})")
    ax.set_xlabel("cache size (fraction of the feature table)" if use_fraction else "cache size (MB)")
    ax.set_ylabel("hit rate")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return Plot("hit-rate", "Hit rate against cache size",
                "Fraction of requested rows served from a cache, best configuration per cache size.", _render(fig))


def power_plot(power: pd.DataFrame, labels: dict[str, str] | None = None) -> Plot | None:
    """GPU power over time from the ``power_*.csv`` traces (one line per trace and GPU)."""
    if power.empty:
        return None
    labels = labels or {}
    fig = Figure(figsize=(8, 4))
    ax = fig.add_subplot()
    t0 = float(power["t_s"].min()) if float(power["t_s"].min()) > 1e6 else 0.0  # epoch seconds: start the axis at 0
    groups = list(power.groupby(["trace", "gpu"], sort=True))
    for i, ((trace, gpu), grp) in enumerate(groups):
        grp = grp.sort_values("t_s")
        name = f"{labels.get(str(trace), str(trace))} gpu{gpu}"
        ax.plot(grp["t_s"] - t0, grp["power_w"], linewidth=1, label=name if i < 10 else None)
    ax.set_xlabel("time (s)" + (" since the first sample" if t0 else ""))
    ax.set_ylabel("GPU power (W)")
    ax.grid(alpha=0.3)
    if len(groups) <= 10:
        ax.legend(fontsize="x-small")
    return Plot("power", "GPU power over time", f"{len(groups)} trace(s) sampled by the runner (NVML instant power).",
                _render(fig))

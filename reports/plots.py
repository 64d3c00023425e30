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

__all__ = ["Plot", "ceiling_plot", "comparison_plot", "distribution_plot", "energy_plot", "hit_rate_plot", "phase_plot",
           "power_plot", "throughput_plot"]

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


def _samples_of(row: Any) -> tuple[list[float], str]:
    samples = row.get("samples")
    if not isinstance(samples, dict):
        return [], ""
    for phase in ("step", "gather"):
        vals = [float(v) for v in samples.get(phase) or [] if _finite(v)]
        if vals:
            return vals, phase
    return [], ""


def distribution_plot(results: pd.DataFrame, workload: str) -> Plot | None:
    """Box plot of the per-step times (``samples``) of each successful configuration of ``workload`` (ms)."""
    part = results[(results["workload"] == workload) & (results["status"] == "ok")]
    if "samples" not in part:
        return None
    data = []
    for _, r in part.sort_values("label", ascending=False).iterrows():
        vals, phase = _samples_of(r)
        if vals:
            contended = r.get("contended")
            mark = " (contended)" if contended is True or (isinstance(contended, (bool, np.bool_)) and contended) else ""
            data.append((f"{r['label']}{mark}", [v * 1e3 for v in vals], phase))
    if not data:
        return None
    fig = Figure(figsize=(8, 0.45 * len(data) + 1.4))
    ax = fig.add_subplot()
    ax.boxplot([d[1] for d in data], orientation="horizontal", whis=(10, 90), showfliers=True,
               flierprops={"markersize": 3, "alpha": 0.5})
    ax.set_yticks(range(1, len(data) + 1), [d[0] for d in data])
    ax.set_xscale("log")
    phases = sorted({d[2] for d in data})
    ax.set_xlabel(f"{' / '.join(phases)} time per measured step (ms, log scale)")
    ax.grid(axis="x", alpha=0.3, which="both")
    n = max(len(d[1]) for d in data)
    return Plot(f"distribution-{workload}", f"Step-time distribution: {workload}",
                f"Every measured step (up to {n} per configuration): box = p25..p75 with the median, whiskers = "
                "p10..p90, dots beyond. A wide box is a noisy measurement; compare medians only where boxes are "
                "narrow or the report's interval says so.", _render(fig))


def ceiling_plot(summary: pd.DataFrame) -> Plot | None:
    """Delivered feature GB/s per successful configuration, with the ceiling that bounds it as a marker."""
    if summary.empty:
        return None
    part = summary[(summary["status"] == "ok") & _finite_col(summary["feature_gbps"])]
    if part.empty:
        return None
    part = part.sort_values(["workload", "configuration"], ascending=False)
    labels = [f"{w}: {c}" for w, c in zip(part["workload"], part["configuration"])]
    fig = Figure(figsize=(8, 0.45 * len(part) + 1.4))
    ax = fig.add_subplot()
    ax.barh(labels, part["feature_gbps"].astype(float), color="#4c72b0", label="delivered")
    ceil = part["ceiling_gbps"].astype(float)
    have = np.isfinite(ceil.to_numpy())
    if have.any():
        ax.scatter(ceil[have], np.array(labels)[have], marker="|", s=300, color="#c44e52", zorder=3,
                   label="ceiling (probe)")
        for y, (c, key, g) in enumerate(zip(ceil, part["ceiling"], part["feature_gbps"].astype(float))):
            if math.isfinite(c):
                ax.annotate(f"{100 * g / c:.0f}% of {CEILING_LABELS.get(key, key)}", (c, y), fontsize="x-small",
                            xytext=(4, 0), textcoords="offset points", va="center", color="dimgrey")
    ax.set_xlabel("feature GB/s delivered (median per step)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    caption = ("Feature bytes delivered to the compute device per second; the red mark is the measured ceiling of "
               "the data path that bounds the configuration (docs/REPORTS.md, the ceiling rule).")
    if not have.any():
        caption += " No ceiling was measured for these paths (no probe.json, or the probe could not measure them)."
    return Plot("gbps-vs-ceiling", "Delivered GB/s against the ceiling", caption, _render(fig))


def comparison_plot(table: pd.DataFrame, threshold: float) -> Plot | None:
    """Ratio new/base per configuration and metric with its interval; dashed lines at 1 +- threshold."""
    part = table[_finite_col(table["ratio"])] if len(table) else table
    if part.empty:
        return None
    part = part.iloc[::-1]
    labels = [f"{w}: {c} · {m}" for w, c, m in zip(part["workload"], part["configuration"], part["metric"])]
    ratio = part["ratio"].astype(float).to_numpy()
    lo = part["ci_low"].astype(float).to_numpy()
    hi = part["ci_high"].astype(float).to_numpy()
    has = np.isfinite(lo) & np.isfinite(hi)
    colours = {"regression": "#c44e52", "improvement": "#55a868", "contended": "#dd8452"}
    fig = Figure(figsize=(8, 0.35 * len(part) + 1.4))
    ax = fig.add_subplot()
    y = np.arange(len(part))
    for i, verdict in enumerate(part["verdict"]):
        colour = colours.get(str(verdict), "#4c72b0")
        if has[i]:
            ax.errorbar(ratio[i], y[i], xerr=[[ratio[i] - lo[i]], [hi[i] - ratio[i]]], fmt="o", color=colour,
                        capsize=3, markersize=4)
        else:
            ax.plot(ratio[i], y[i], marker="D", color=colour, markersize=4, linestyle="none")
    ax.set_yticks(y, labels, fontsize="small")
    for x in (1.0 - threshold, 1.0 + threshold):
        ax.axvline(x, linestyle="--", color="grey", linewidth=1)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("new / base (median ratio; > 1 is slower)")
    ax.grid(axis="x", alpha=0.3)
    return Plot("comparison", "Comparison: ratio of medians with intervals",
                f"Each point is median(new)/median(base); bars are the 95% bootstrap interval from the per-step "
                f"samples (diamonds: no samples, judged by quantiles). Red: regression (whole interval above "
                f"{1 + threshold:.2f}); green: improvement; orange: contended, not judged.", _render(fig))

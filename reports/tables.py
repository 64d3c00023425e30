"""The per-workload strategy table: one row per configuration, numbers in display units, best value per column.

``summary_frame`` is the machine-readable table (``summary.csv``: raw values, units in the column names);
``workload_tables`` splits it per workload into ``WorkloadTable`` s with the display columns and the best rows marked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from accessbench.schema import CONTENDED_CORES, HEADLINE_PHASES

from .ceilings import CEILING_LABELS, ceiling_value, relevant_ceiling
from .intervals import LEVEL, clean_samples, ratio_interval, sample_runs

__all__ = [
    "BASELINE_STRATEGY",
    "COLUMNS",
    "Column",
    "Headline",
    "WorkloadTable",
    "format_value",
    "headline_time",
    "headlines",
    "summary_frame",
    "workload_tables",
]

BASELINE_STRATEGY = "cpu-centric"


@dataclass(frozen=True)
class Column:
    """A display column: ``source`` column of the summary frame, scaled by ``scale``, best is ``better``."""

    title: str
    source: str
    better: Literal["min", "max"] | None = None
    scale: float = 1.0
    digits: int = 3  # significant digits when formatting


COLUMNS: tuple[Column, ...] = (
    Column("time (ms)", "time_s", "min", 1e3),
    Column("p10 (ms)", "time_s_p10", None, 1e3),
    Column("p90 (ms)", "time_s_p90", None, 1e3),
    Column("speed-up vs cpu-centric", "speedup", "max"),
    Column("GB/s", "feature_gbps", "max"),
    Column("% of ceiling", "pct_of_ceiling", "max"),
    Column("CPU util (%)", "cpu_util_process", "min", 100.0),  # recorded as cores busy (1.0 = one core)
    Column("energy/step (J)", "energy_per_step_j", "min"),
    Column("GPU power (W)", "gpu_power_w", "min"),
    Column("host (MB)", "bytes_host", "min", 1e-6),
    Column("h2d (MB)", "bytes_h2d", "min", 1e-6),
    Column("disk (MB)", "bytes_disk", "min", 1e-6),
    Column("peer (MB)", "bytes_peer", "min", 1e-6),
    Column("device (MB)", "bytes_device", "min", 1e-6),
    Column("read amp.", "read_amplification", "min"),
    Column("hit rate", "hit_rate", "max"),
)


def headline_time(row: Any) -> tuple[float, float, float, str]:
    """The time a configuration is judged by: ``step_s`` (median, p10, p90), else ``gather_s``; NaN if neither."""
    for phase in HEADLINE_PHASES:
        value = row.get(f"{phase}_s")
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            return float(value), float(row.get(f"{phase}_s_p10", math.nan)), float(
                row.get(f"{phase}_s_p90", math.nan)), f"{phase}_s"
    return math.nan, math.nan, math.nan, ""


def summary_frame(results: pd.DataFrame, probe: dict[str, Any]) -> pd.DataFrame:
    """The table behind the report and ``summary.csv``: one row per configuration, raw values, units in names.

    ``speedup`` is the fastest successful ``cpu-centric`` configuration of the same workload divided by this
    configuration's time (the strongest baseline, not the default options); ``pct_of_ceiling`` is
    ``feature_gbps`` as a percentage of ``ceiling_gbps``, the probe's bound for this configuration's data path.
    """
    rows = []
    for _, r in results.iterrows():
        t, p10, p90, source = headline_time(r)
        key = relevant_ceiling(r)
        ceil = ceiling_value(probe, key)
        gbps = r.get("feature_gbps", math.nan)
        rows.append({
            "workload": r["workload"], "mode": r.get("mode"), "configuration": r["label"],
            "strategy": r["strategy"], "options": r.get("options_label", ""), "device": r.get("device"),
            "ranks": r.get("ranks"), "status": r["status"], "config_key": r["config_key"],
            "time_s": t, "time_s_p10": p10, "time_s_p90": p90, "time_source": source,
            "speedup": math.nan, "feature_gbps": gbps,
            "ceiling": key, "ceiling_gbps": ceil if ceil is not None else math.nan,
            "pct_of_ceiling": 100.0 * gbps / ceil if ceil and not math.isnan(gbps) else math.nan,
            **{c: r.get(c, math.nan) for c in (
                "cpu_util_process", "cpu_util_system", "energy_per_step_j", "gpu_energy_j", "gpu_power_w",
                "cpu_energy_j", "bytes_needed", "bytes_host", "bytes_h2d", "bytes_disk", "bytes_peer", "bytes_device",
                "read_amplification", "hit_rate", "rows_per_s", "edges_per_s", "row_bytes", "peak_rss_bytes",
                "peak_device_bytes")},
            "simulated": bool(r.get("simulated", False)),
            "contended": _flag(r.get("contended")), "cpu_others_cores": r.get("cpu_others_cores", math.nan),
            "error": r.get("error") if r["status"] != "ok" else None,
        })
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    ok = df["status"] == "ok"
    for idx in df.groupby("workload").groups.values():
        base = df.loc[idx][ok.loc[idx] & (df.loc[idx, "strategy"] == BASELINE_STRATEGY)]["time_s"].dropna()
        if len(base):
            df.loc[idx, "speedup"] = float(base.min()) / df.loc[idx, "time_s"]
    df.loc[~ok, ["speedup", "pct_of_ceiling"]] = math.nan
    return df


@dataclass
class WorkloadTable:
    """The display table of one workload: ``frame`` has one column per ``COLUMNS`` title (display units)."""

    workload: str
    mode: str
    frame: pd.DataFrame  # index: configuration label; columns: status, ceiling, then COLUMNS titles
    best: dict[str, set[str]] = field(default_factory=dict)  # column title -> configuration labels holding the best
    notes: list[str] = field(default_factory=list)
    contended: set[str] = field(default_factory=set)  # configuration labels whose window was contended


def _flag(value: Any) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return bool(value)


def workload_tables(summary: pd.DataFrame) -> list[WorkloadTable]:
    """One ``WorkloadTable`` per workload, configurations sorted by time (failed ones last)."""
    tables = []
    if summary.empty:
        return tables
    for workload, part in summary.groupby("workload", sort=True):
        part = part.assign(_failed=part["status"] != "ok").sort_values(["_failed", "time_s", "configuration"])
        frame = pd.DataFrame(index=part["configuration"].tolist())
        frame["status"] = part["status"].tolist()
        frame["ceiling"] = [CEILING_LABELS.get(k, k) if s == "ok" else "" for k, s in zip(part["ceiling"],
                                                                                        part["status"])]
        best: dict[str, set[str]] = {}
        ok = (part["status"] == "ok").to_numpy()
        for col in COLUMNS:
            # a failed or skipped configuration's partial numbers would read as results: leave its cells empty
            values = [v * col.scale if good else math.nan for v, good in zip(part[col.source].astype(float), ok)]
            frame[col.title] = values
            candidates = [(v, lab) for v, lab, good in zip(values, frame.index, ok) if good and not math.isnan(v)]
            spread = {round(v, 12) for v, _ in candidates}
            if col.better and len(spread) > 1:  # a column where every row ties has no best to point at
                target = (min if col.better == "min" else max)(v for v, _ in candidates)
                best[col.title] = {lab for v, lab in candidates if math.isclose(v, target, rel_tol=1e-9)}
        notes = []
        if not (part["strategy"] == BASELINE_STRATEGY).any() or part.loc[part["strategy"] == BASELINE_STRATEGY,
                                                                         "status"].ne("ok").all():
            notes.append(f"no successful {BASELINE_STRATEGY} configuration: speed-up not computed")
        if part["simulated"].any():
            notes.append("rows marked simulated come from the simulator, not a measurement")
        modes = part["mode"].dropna().astype(str).unique()
        contended = {lab for lab, c in zip(part["configuration"], part["contended"]) if c} \
            if "contended" in part else set()
        if contended:
            notes.append(f"contended: other processes used more than {CONTENDED_CORES} cores during the measured "
                         f"window of {', '.join(sorted(contended))}; their timings are suspect")
        tables.append(WorkloadTable(str(workload), ", ".join(modes), frame, best, notes, contended))
    return tables


@dataclass(frozen=True)
class Headline:
    """The reader's question answered for one workload and mode: which configuration wins, by how much, what bounds it.

    ``speedup`` is the fastest successful ``cpu-centric`` configuration's median step time over the winner's, with a
    bootstrap interval ``[speedup_low, speedup_high]`` from the two configurations' per-step samples (NaN where
    either has too few); ``pct_of_ceiling`` is the winner's ``feature_gbps`` as a share of ``ceiling`` (NaN when the
    probe did not measure it). ``text`` is the one line the report, summary.md and the terminal print.
    """

    workload: str
    mode: str
    fastest: str
    time_s: float
    speedup: float
    speedup_low: float
    speedup_high: float
    ceiling: str
    ceiling_gbps: float
    feature_gbps: float
    pct_of_ceiling: float
    contended: bool
    text: str


def _step_samples(row: Any, source: str) -> list[float]:
    samples = row.get("samples")
    return clean_samples(samples.get(source.removesuffix("_s"))) if isinstance(samples, dict) else []


def headlines(results: pd.DataFrame, probe: dict[str, Any]) -> list[Headline]:
    """One ``Headline`` per (workload, mode) with a successful configuration, fastest by median step time."""
    out: list[Headline] = []
    if results.empty:
        return out
    ok = results[results["status"] == "ok"]
    for (workload, mode), part in ok.groupby([ok["workload"], ok["mode"].fillna("")], sort=True):
        timed = [(headline_time(r), r) for _, r in part.iterrows()]
        timed = [(t, r) for t, r in timed if math.isfinite(t[0]) and t[0] > 0]
        if not timed:
            continue
        (t, _, _, source), win = min(timed, key=lambda x: (x[0][0], str(x[1]["label"])))
        label = str(win["label"])
        where = f"{workload}" + (f" ({mode})" if mode else "")
        text = f"{where}: fastest is {label} at {t * 1e3:.3g} ms per step ({source.removesuffix('_s')})"
        speedup = lo = hi = math.nan
        bases = [(tt, r) for tt, r in timed if r["strategy"] == BASELINE_STRATEGY and tt[3] == source]
        if bases:
            (bt, _, _, _), base = min(bases, key=lambda x: x[0][0])
            speedup = bt / t
            ci = ratio_interval(_step_samples(win, source), _step_samples(base, source),
                                base_runs=sample_runs(win), new_runs=sample_runs(base))
            if base is win:
                text += f", the {BASELINE_STRATEGY} baseline itself"
            else:
                text += f", {speedup:.2f}x {BASELINE_STRATEGY}"
                if ci is not None:
                    lo, hi = ci.low, ci.high
                    text += f" ({LEVEL:.0%} interval {lo:.2f}x..{hi:.2f}x)"
                else:
                    text += " (no interval: too few samples)"
        else:
            text += f"; speed-up not computed (no successful {BASELINE_STRATEGY})"
        key = relevant_ceiling(win)
        ceil = ceiling_value(probe, key)
        gbps = float(win.get("feature_gbps", math.nan))
        pct = math.nan
        name = CEILING_LABELS.get(key, key)
        if ceil is not None and math.isfinite(gbps):
            pct = 100.0 * gbps / ceil
            text += f"; it delivers {gbps:.3g} GB/s, {pct:.3g}% of the {name} ceiling ({ceil:.3g} GB/s)"
        elif ceil is None:
            text += f"; bound by {name}, not measured here (no probe.json or no value)"
        else:
            text += f"; bound by {name} ({ceil:.3g} GB/s), feature GB/s not measured"
        contended = _flag(win.get("contended"))
        if contended:
            text += " [contended: timings suspect]"
        out.append(Headline(str(workload), str(mode), label, t, speedup, lo, hi, key,
                            ceil if ceil is not None else math.nan, gbps, pct, contended, text + "."))
    return out


def format_value(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` significant digits (no exponent for everyday magnitudes); '' for NaN/None."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(v):
        return ""
    if v == 0:
        return "0"
    if 1e-3 <= abs(v) < 1e7:
        decimals = max(0, digits - 1 - math.floor(math.log10(abs(v))))
        return f"{v:,.{decimals}f}"
    return f"{v:.{digits - 1}e}"

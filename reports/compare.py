"""Compare two runs configuration by configuration (keyed on ``config_key``) and metric: ratio, interval, verdict.

The rule, stated once (docs/REPORTS.md repeats it):

- metrics: the headline time, ``step_s`` (else ``gather_s``; where neither run has a time, ``1/feature_gbps``), and
  every other phase median both runs have that takes at least ``MIN_PHASE_SHARE`` of the base step (a phase of 1%
  of the step cannot move the step by the threshold, and its microsecond timings are mostly clock noise);
- ``ratio = median(new) / median(base)`` (> 1: slower), with a 95% bootstrap interval from the records' per-step
  ``samples`` (``accessbench.reports.intervals``);
- **regression**: the whole interval lies above ``1 + threshold``; **improvement**: the whole interval lies below
  ``1 - threshold``; otherwise **no change** (the reason says whether the interval straddles the threshold);
- rows without samples (records from before samples were kept) are judged by their quantiles as before, on the
  headline metric only: beyond the threshold *and* outside both runs' p10..p90 bands; the ``method`` column says so;
- a row whose measured window was contended on either side (``contended``) is never called a regression or an
  improvement: its verdict is **contended** and the reason says which side and how many cores others used;
- **not comparable** (with the reason) where the workload's shape, the device, the intra-op thread count
  (``cpu_threads``) or the machine (``env`` hostname, cpu, gpu) differ; ``across_machines=True`` judges different
  machines anyway and says so in the reason;
- a configuration that succeeded in the base run and failed in the new one is a regression too (``newly failing``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from accessbench.schema import HEADLINE_PHASES

from .intervals import LEVEL, clean_samples, ratio_interval, sample_runs

__all__ = ["DEFAULT_THRESHOLD", "MIN_PHASE_SHARE", "VERDICTS", "Comparison", "compare_results"]

DEFAULT_THRESHOLD = 0.05
#: A non-headline phase is judged only when its base median is at least this share of the base step.
MIN_PHASE_SHARE = 0.05

#: Verdicts in the order the comparison lists them (regressions first).
VERDICTS: tuple[str, ...] = ("regression", "newly failing", "contended", "improvement", "no change", "fixed",
                             "newly skipped", "not comparable", "missing in new run", "new configuration")
_REGRESSIONS = ("regression", "newly failing")
_COLUMNS = ["config_key", "workload", "configuration", "metric", "headline", "verdict", "reason", "method", "base",
            "new", "ratio", "ci_low", "ci_high", "change_pct", "base_n", "new_n", "base_p10", "base_p90", "new_p10",
            "new_p90", "base_status", "new_status", "contended"]
_SHAPE = ("mode", "num_nodes", "num_edges", "feat_dim", "dtype", "row_bytes", "batch_size", "fanouts", "gather_ids")
_MACHINE = ("hostname", "cpu", "gpu")
_PHASES = ("step", "gather", "sample", "transfer", "compute")


@dataclass
class Comparison:
    """The outcome of ``compare_results``: ``table`` has one row per configuration and metric, regressions first.

    ``shared``: configurations present in both runs; ``base_ok``: successful configurations in the base run;
    ``problem``: one line saying why this comparison cannot gate anything (None when it can).
    """

    table: pd.DataFrame
    threshold: float
    shared: int = 0
    base_ok: int = 0
    problem: str | None = None
    level: float = LEVEL

    @property
    def regressions(self) -> pd.DataFrame:
        """Rows whose verdict is a regression (the interval beyond the threshold, or newly failing)."""
        return self.table[self.table["verdict"].isin(_REGRESSIONS)]

    @property
    def has_regression(self) -> bool:
        """True when at least one configuration regressed on its headline metric (or newly fails): what
        ``--fail-on-regression`` gates on. Phase regressions are listed as diagnostics: each metric judged is one
        more chance of a false alarm, and a phase that moved without moving the headline is not a slowdown."""
        reg = self.regressions
        return bool(len(reg[reg["headline"].astype(bool)])) if "headline" in reg else bool(len(reg))

    def counts(self) -> dict[str, int]:
        """How many rows (configuration x metric) got each verdict (verdicts with none are left out)."""
        vc = self.table["verdict"].value_counts()
        return {v: int(vc[v]) for v in VERDICTS if v in vc}


def _f(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _pos(value: Any) -> bool:
    v = _f(value)
    return math.isfinite(v) and v > 0


def _band_excludes(band_lo: float, band_hi: float, centre: float, other: float) -> bool:
    """True when ``other`` lies outside ``[band_lo, band_hi]``; a missing or inconsistent band excludes nothing."""
    if math.isnan(band_lo) or math.isnan(band_hi) or not band_lo <= centre * (1 + 1e-9) or \
            not centre <= band_hi * (1 + 1e-9):
        return True
    return other < band_lo or other > band_hi


def _samples(rec: pd.Series, phase: str) -> list[float]:
    s = rec.get("samples")
    return clean_samples(s.get(phase)) if isinstance(s, dict) else []


def _metrics(b: pd.Series, n: pd.Series) -> list[tuple[str, bool]]:
    """(metric, is_headline) to judge, the headline first."""
    head = ""
    for phase in HEADLINE_PHASES:
        if _pos(b.get(f"{phase}_s")) and _pos(n.get(f"{phase}_s")):
            head = f"{phase}_s"
            break
    if not head:
        return [("1/feature_gbps", True)] if _pos(b.get("feature_gbps")) and _pos(n.get("feature_gbps")) else []
    out = [(head, True)]
    step = _f(b.get(head))
    for phase in _PHASES:
        m = f"{phase}_s"
        if m != head and _pos(b.get(m)) and _pos(n.get(m)) and _f(b.get(m)) >= MIN_PHASE_SHARE * step:
            out.append((m, False))
    return out


def _side_contended(rec: pd.Series) -> str:
    flag = rec.get("contended")
    if not _blank(flag) and bool(flag):
        cores = _f(rec.get("cpu_others_cores"))
        return f"other processes used {cores:.2f} cores" if math.isfinite(cores) else "contended"
    return ""


def _unlike(b: pd.Series, n: pd.Series, across_machines: bool) -> tuple[str, str]:
    """(why not comparable or '', a label for a judged cross-machine row or '')."""
    for key in _SHAPE:
        bv, nv = b.get(key), n.get(key)
        if _blank(bv) or _blank(nv):
            continue
        if str(bv) != str(nv):
            return f"workloads differ: {key} {bv} vs {nv}", ""
    if not _blank(b.get("device")) and not _blank(n.get("device")) and str(b.get("device")) != str(n.get("device")):
        return f"devices differ: {b.get('device')} vs {n.get('device')}", ""
    bt, nt = b.get("cpu_threads"), n.get("cpu_threads")
    if not _blank(bt) and not _blank(nt) and int(bt) != int(nt):
        return (f"intra-op threads differ: {int(bt)} vs {int(nt)} (without a workload's cores the worker runs one "
                "thread per core free at its start; pin both runs with --cores N)"), ""
    be, ne = b.get("env"), n.get("env")
    be, ne = be if isinstance(be, dict) else {}, ne if isinstance(ne, dict) else {}
    diffs = [f"{k} {be.get(k)} vs {ne.get(k)}" for k in _MACHINE if str(be.get(k)) != str(ne.get(k))] \
        if be and ne else []
    if diffs:
        if not across_machines:
            return "machines differ: " + "; ".join(diffs) + " (--across-machines compares anyway)", ""
        return "", "across machines: " + "; ".join(diffs)
    return "", ""


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _judge_metric(b: pd.Series, n: pd.Series, metric: str, threshold: float) -> dict[str, Any]:
    if metric == "1/feature_gbps":  # as "seconds per GB" so the ratio reads the same way as for times
        bt, nt = 1 / _f(b.get("feature_gbps")), 1 / _f(n.get("feature_gbps"))
        bands = (math.nan,) * 4
        bs = ns = []
    else:
        bt, nt = _f(b.get(metric)), _f(n.get(metric))
        bands = (_f(b.get(f"{metric}_p10")), _f(b.get(f"{metric}_p90")), _f(n.get(f"{metric}_p10")),
                 _f(n.get(f"{metric}_p90")))
        phase = metric.removesuffix("_s")
        bs, ns = _samples(b, phase), _samples(n, phase)
    row: dict[str, Any] = {"metric": metric, "base": bt, "new": nt, "base_p10": bands[0], "base_p90": bands[1],
                           "new_p10": bands[2], "new_p90": bands[3], "base_n": len(bs), "new_n": len(ns)}
    ci = ratio_interval(bs, ns, base_runs=sample_runs(b), new_runs=sample_runs(n))
    if ci is not None:
        method = "bootstrap of the median ratio"
        if ci.runs_base > 1 or ci.runs_new > 1:
            method += f" over processes, then steps ({ci.runs_base} base / {ci.runs_new} new processes)"
        row.update(method=method, ratio=ci.ratio, ci_low=ci.low, ci_high=ci.high,
                   change_pct=100.0 * (ci.ratio - 1.0))
        span = f"interval {ci.low:.3f}..{ci.high:.3f}"
        if ci.low > 1.0 + threshold:
            return {**row, "verdict": "regression", "reason": f"{span} above {1 + threshold:.3f}"}
        if ci.high < 1.0 - threshold:
            return {**row, "verdict": "improvement", "reason": f"{span} below {1 - threshold:.3f}"}
        return {**row, "verdict": "no change", "reason": f"{span} reaches inside {1 - threshold:.3f}.."
                                                          f"{1 + threshold:.3f}"}
    ratio = nt / bt
    outside = _band_excludes(row["base_p10"], row["base_p90"], bt, nt) and \
        _band_excludes(row["new_p10"], row["new_p90"], nt, bt)
    which = "base" if len(bs) < len(ns) else "new"
    row.update(method=f"quantiles (fewer than 5 samples in the {which} run)", ratio=ratio,
               change_pct=100.0 * (ratio - 1.0), ci_low=math.nan, ci_high=math.nan)
    if ratio > 1.0 + threshold and outside:
        return {**row, "verdict": "regression", "reason": "beyond the threshold and outside both p10..p90 bands"}
    if ratio < 1.0 / (1.0 + threshold) and outside:
        return {**row, "verdict": "improvement", "reason": "beyond the threshold and outside both p10..p90 bands"}
    if abs(ratio - 1.0) > threshold:
        return {**row, "verdict": "no change", "reason": "within noise: inside a p10..p90 band"}
    return {**row, "verdict": "no change", "reason": "within the threshold"}


def _judge(b: pd.Series, n: pd.Series, threshold: float, across_machines: bool) -> list[dict[str, Any]]:
    bs, ns = str(b.get("status", "ok")), str(n.get("status", "ok"))
    row: dict[str, Any] = {"base_status": bs, "new_status": ns, "headline": True, "metric": ""}
    if bs == "ok" and ns == "failed":
        return [{**row, "verdict": "newly failing", "reason": str(n.get("error") or "")}]
    if bs == "ok" and ns == "skipped":
        return [{**row, "verdict": "newly skipped", "reason": str(n.get("error") or "")}]
    if bs != "ok" and ns == "ok":
        return [{**row, "verdict": "fixed"}]
    if bs != "ok" or ns != "ok":
        return [{**row, "verdict": "not comparable", "reason": f"{bs} in base, {ns} in new run"}]
    why, label = _unlike(b, n, across_machines)
    if why:
        return [{**row, "verdict": "not comparable", "reason": why}]
    metrics = _metrics(b, n)
    if not metrics:
        return [{**row, "verdict": "not comparable", "reason": "no time or throughput measured in both runs"}]
    contended = "; ".join(f"{side} run: {c}" for side, c in (("base", _side_contended(b)),
                                                            ("new", _side_contended(n))) if c)
    out = []
    for metric, headline in metrics:
        phase = metric.removesuffix("_s")
        if not headline and not (_samples(b, phase) and _samples(n, phase)):
            continue  # records without samples are judged on the headline only, as before samples were kept
        judged = {**row, "headline": headline, **_judge_metric(b, n, metric, threshold)}
        judged["contended"] = bool(contended)
        if contended and judged["verdict"] in ("regression", "improvement"):
            judged["reason"] = f"would be {judged['verdict']} ({judged['reason']}), but contended: {contended}"
            judged["verdict"] = "contended"
        elif contended:
            judged["reason"] += f"; contended ({contended})"
        if label:
            judged["reason"] += f"; {label}"
        out.append(judged)
    return out


def compare_results(base: pd.DataFrame, new: pd.DataFrame, *, threshold: float = DEFAULT_THRESHOLD,
                    across_machines: bool = False) -> Comparison:
    """Compare two results frames (as ``accessbench.reports.load.records_frame`` makes them) on ``config_key``.

    ``threshold`` is the relative change that counts (0.05: 5%). Pure: reads only the two frames.
    """
    if not threshold >= 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    b_by = {str(k): r for k, r in base.set_index("config_key", drop=False).iterrows()} if len(base) else {}
    n_by = {str(k): r for k, r in new.set_index("config_key", drop=False).iterrows()} if len(new) else {}
    rows = []
    for key in list(dict.fromkeys([*b_by, *n_by])):
        b, n = b_by.get(key), n_by.get(key)
        ref = n if n is not None else b
        assert ref is not None
        ident: dict[str, Any] = {"config_key": key, "workload": ref.get("workload"),
                                 "configuration": ref.get("label", ref.get("strategy")), "headline": True,
                                 "metric": ""}
        if b is None:
            rows.append({**ident, "verdict": "new configuration", "new_status": n.get("status")})
        elif n is None:
            rows.append({**ident, "verdict": "missing in new run", "base_status": b.get("status")})
        else:
            rows += [{**ident, **r} for r in _judge(b, n, threshold, across_machines)]
    table = pd.DataFrame(rows, columns=_COLUMNS)
    if len(table):
        table["headline"] = [h is not False and not _blank(h) and bool(h) for h in table["headline"]]
        table["contended"] = [not _blank(c) and bool(c) for c in table["contended"]]
        for col in ("reason", "method", "metric"):
            table[col] = ["" if _blank(v) else str(v) for v in table[col]]
        table["_rank"] = table["verdict"].map({v: i for i, v in enumerate(VERDICTS)})
        table["_order"] = -table["ratio"].astype(float).fillna(0.0)
        table = table.sort_values(["_rank", "_order", "workload", "configuration"]).drop(columns=["_rank", "_order"])
    shared = len(set(b_by) & set(n_by))
    base_ok = int((base["status"] == "ok").sum()) if len(base) else 0
    problem = None
    if not len(base):
        problem = "the base run has no valid records: nothing to compare against"
    elif not base_ok:
        problem = f"the base run has no successful configuration ({len(base)} record(s), none ok): nothing to compare"
    elif not shared:
        problem = "the two runs share no configuration (no config_key in both): nothing to compare"
    return Comparison(table.reset_index(drop=True), threshold, shared, base_ok, problem)

"""Compare two runs configuration by configuration (keyed on ``config_key``): ratio, noise, regressions first.

The rule, stated once (docs/REPORTS.md repeats it):

- each configuration is judged by its headline time, ``step_s`` (else ``gather_s``), the same phase in both runs;
  where neither run has a time, by ``feature_gbps`` (throughput, inverted so that a ratio > 1 is always slower);
- ``ratio = new / base`` (> 1: slower);
- the change is *outside the spread* when the new median lies outside the base run's p10..p90 band and the base
  median lies outside the new run's band (a band that is missing, or does not contain its own median, is ignored:
  it says nothing about the noise);
- a *regression* is a ratio above ``1 + threshold`` that is outside the spread; an *improvement* is a ratio below
  ``1 / (1 + threshold)`` outside the spread; beyond the threshold but inside the spread is *within noise*;
- a configuration that succeeded in the base run and failed in the new one is a regression too (``newly failing``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

__all__ = ["DEFAULT_THRESHOLD", "VERDICTS", "Comparison", "compare_results"]

DEFAULT_THRESHOLD = 0.05

#: Verdicts in the order the comparison lists them (regressions first).
VERDICTS: tuple[str, ...] = ("regression", "newly failing", "improvement", "within noise", "unchanged", "fixed",
                             "newly skipped", "not comparable", "missing in new run", "new configuration")
_REGRESSIONS = ("regression", "newly failing")
_COLUMNS = ["config_key", "workload", "configuration", "verdict", "metric", "base", "new", "ratio", "change_pct",
            "base_p10", "base_p90", "new_p10", "new_p90", "outside_spread", "base_status", "new_status"]


@dataclass
class Comparison:
    """The outcome of ``compare_results``: ``table`` has one row per configuration, regressions first."""

    table: pd.DataFrame
    threshold: float

    @property
    def regressions(self) -> pd.DataFrame:
        """Rows whose verdict is a regression (slower beyond the threshold and the noise, or newly failing)."""
        return self.table[self.table["verdict"].isin(_REGRESSIONS)]

    @property
    def has_regression(self) -> bool:
        """True when at least one configuration regressed."""
        return bool(len(self.regressions))

    def counts(self) -> dict[str, int]:
        """How many configurations got each verdict (verdicts with none are left out)."""
        vc = self.table["verdict"].value_counts()
        return {v: int(vc[v]) for v in VERDICTS if v in vc}


def _f(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


def _band_excludes(band_lo: float, band_hi: float, centre: float, other: float) -> bool:
    """True when ``other`` lies outside ``[band_lo, band_hi]``; a missing or inconsistent band excludes nothing."""
    if math.isnan(band_lo) or math.isnan(band_hi) or not band_lo <= centre * (1 + 1e-9) or \
            not centre <= band_hi * (1 + 1e-9):
        return True
    return other < band_lo or other > band_hi


def _pick_metric(b: pd.Series, n: pd.Series) -> tuple[str, float, float, float, float, float, float]:
    """(metric, base, new, base_p10, base_p90, new_p10, new_p90) as times (larger = slower)."""
    for phase in ("step", "gather"):
        bt, nt = _f(b.get(f"{phase}_s")), _f(n.get(f"{phase}_s"))
        if not math.isnan(bt) and not math.isnan(nt) and bt > 0 and nt > 0:
            return (f"{phase}_s", bt, nt, _f(b.get(f"{phase}_s_p10")), _f(b.get(f"{phase}_s_p90")),
                    _f(n.get(f"{phase}_s_p10")), _f(n.get(f"{phase}_s_p90")))
    bg, ng = _f(b.get("feature_gbps")), _f(n.get("feature_gbps"))
    if bg > 0 and ng > 0:  # as "seconds per GB" so the ratio reads the same way as for times
        return ("1/feature_gbps", 1 / bg, 1 / ng, math.nan, math.nan, math.nan, math.nan)
    return ("", math.nan, math.nan, math.nan, math.nan, math.nan, math.nan)


def _judge(b: pd.Series, n: pd.Series, threshold: float) -> dict[str, Any]:
    bs, ns = str(b.get("status", "ok")), str(n.get("status", "ok"))
    row: dict[str, Any] = {"base_status": bs, "new_status": ns}
    if bs == "ok" and ns == "failed":
        return {**row, "verdict": "newly failing"}
    if bs == "ok" and ns == "skipped":
        return {**row, "verdict": "newly skipped"}
    if bs != "ok" and ns == "ok":
        return {**row, "verdict": "fixed"}
    if bs != "ok" or ns != "ok":
        return {**row, "verdict": "not comparable"}
    metric, bt, nt, bp10, bp90, np10, np90 = _pick_metric(b, n)
    row.update(metric=metric, base=bt, new=nt, base_p10=bp10, base_p90=bp90, new_p10=np10, new_p90=np90)
    if not metric:
        return {**row, "verdict": "not comparable"}
    ratio = nt / bt
    outside = _band_excludes(bp10, bp90, bt, nt) and _band_excludes(np10, np90, nt, bt)
    row.update(ratio=ratio, change_pct=100.0 * (ratio - 1.0), outside_spread=outside)
    if ratio > 1.0 + threshold:
        verdict = "regression" if outside else "within noise"
    elif ratio < 1.0 / (1.0 + threshold):
        verdict = "improvement" if outside else "within noise"
    else:
        verdict = "unchanged"
    return {**row, "verdict": verdict}


def compare_results(base: pd.DataFrame, new: pd.DataFrame, *, threshold: float = DEFAULT_THRESHOLD) -> Comparison:
    """Compare two results frames (as ``accessbench.reports.load.records_frame`` makes them) on ``config_key``.

    ``threshold`` is the relative slowdown that counts (0.05: 5%). Pure: reads only the two frames.
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
        row: dict[str, Any] = {"config_key": key, "workload": ref.get("workload"),
                               "configuration": ref.get("label", ref.get("strategy"))}
        if b is None:
            row.update(verdict="new configuration", new_status=n.get("status"))
        elif n is None:
            row.update(verdict="missing in new run", base_status=b.get("status"))
        else:
            row.update(_judge(b, n, threshold))
        rows.append(row)
    table = pd.DataFrame(rows, columns=_COLUMNS)
    if len(table):
        table["_rank"] = table["verdict"].map({v: i for i, v in enumerate(VERDICTS)})
        table["_order"] = -table["ratio"].astype(float).fillna(0.0)
        table = table.sort_values(["_rank", "_order", "workload", "configuration"]).drop(columns=["_rank", "_order"])
    return Comparison(table.reset_index(drop=True), threshold)

"""The run-vs-run comparison as a pure function on hand-made frames."""

from __future__ import annotations

import pytest
from accessbench.reports.compare import compare_results
from accessbench.reports.load import records_frame

from tests.reports.runs import record


def _frames(base: list[dict], new: list[dict]):
    return records_frame(base), records_frame(new)


def test_planted_20_percent_slowdown_is_a_regression() -> None:
    base = [record("cpu-centric", step_s=0.010), record("device-resident", step_s=0.004)]
    new = [record("cpu-centric", step_s=0.012), record("device-resident", step_s=0.004)]
    comp = compare_results(*_frames(base, new))
    assert comp.has_regression
    reg = comp.regressions
    assert list(reg["configuration"]) == ["cpu-centric"]
    assert reg.iloc[0]["ratio"] == pytest.approx(1.2)
    assert bool(reg.iloc[0]["outside_spread"])
    assert comp.table.iloc[0]["verdict"] == "regression"  # listed first
    assert comp.counts() == {"regression": 1, "unchanged": 1}


def test_identical_runs_have_no_regression() -> None:
    recs = [record("cpu-centric", step_s=0.010), record("cached", step_s=0.005, options={"cache_fraction": 0.1})]
    comp = compare_results(*_frames(recs, recs))
    assert not comp.has_regression
    assert set(comp.table["verdict"]) == {"unchanged"}
    assert comp.table["ratio"].tolist() == [1.0, 1.0]


def test_slowdown_within_the_spread_is_noise() -> None:
    base = [record("cpu-centric", step_s=0.010, spread=0.3)]
    new = [record("cpu-centric", step_s=0.0115, spread=0.3)]
    comp = compare_results(*_frames(base, new))
    assert not comp.has_regression
    assert comp.table.iloc[0]["verdict"] == "within noise"
    assert not bool(comp.table.iloc[0]["outside_spread"])


def test_slowdown_below_threshold_is_unchanged_even_outside_spread() -> None:
    base = [record("cpu-centric", step_s=0.010, spread=0.001)]
    new = [record("cpu-centric", step_s=0.0104, spread=0.001)]
    comp = compare_results(*_frames(base, new), threshold=0.05)
    assert comp.table.iloc[0]["verdict"] == "unchanged"
    assert compare_results(*_frames(base, new), threshold=0.02).has_regression


def test_planted_median_only_slowdown_is_caught() -> None:
    # a band that does not contain its own median (only step_s edited) says nothing about the noise
    base = [record("cpu-centric", step_s=0.010)]
    slow = record("cpu-centric", step_s=0.010)
    slow["step_s"] = 0.012
    comp = compare_results(*_frames(base, [slow]))
    assert comp.has_regression


def test_improvement_and_status_changes() -> None:
    base = [record("cpu-centric", step_s=0.010), record("zero-copy", step_s=0.005),
            record("out-of-core", status="failed", error="x"), record("gone", step_s=0.01)]
    new = [record("cpu-centric", step_s=0.007), record("zero-copy", status="failed", error="CUDA OOM"),
           record("out-of-core", step_s=0.02), record("added", step_s=0.01)]
    comp = compare_results(*_frames(base, new))
    verdicts = dict(zip(comp.table["configuration"], comp.table["verdict"]))
    assert verdicts == {"cpu-centric": "improvement", "zero-copy": "newly failing", "out-of-core": "fixed",
                        "gone": "missing in new run", "added": "new configuration"}
    assert comp.has_regression
    assert comp.table.iloc[0]["configuration"] == "zero-copy"


def test_throughput_only_records_compare_on_gbps() -> None:
    def gbps_only(value: float) -> dict:
        return record("zero-copy", mode="gather", step_s=None, feature_gbps=value)

    comp = compare_results(*_frames([gbps_only(20.0)], [gbps_only(15.0)]))
    row = comp.table.iloc[0]
    assert row["metric"] == "1/feature_gbps"
    assert row["verdict"] == "regression"
    assert row["ratio"] == pytest.approx(20.0 / 15.0)
    assert not compare_results(*_frames([gbps_only(20.0)], [gbps_only(21.0)])).has_regression


def test_skipped_in_both_is_not_comparable_and_empty_frames_work() -> None:
    recs = [record("zero-copy", status="skipped", error="needs CUDA")]
    comp = compare_results(*_frames(recs, recs))
    assert comp.table.iloc[0]["verdict"] == "not comparable"
    assert not comp.has_regression
    empty = compare_results(records_frame([]), records_frame([]))
    assert empty.table.empty and not empty.has_regression


def test_negative_threshold_is_rejected() -> None:
    frame = records_frame([record("cpu-centric")])
    with pytest.raises(ValueError, match="threshold"):
        compare_results(frame, frame, threshold=-0.1)

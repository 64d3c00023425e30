"""The run-vs-run comparison as a pure function on hand-made frames."""

from __future__ import annotations

import random
import statistics

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
    assert list(reg["configuration"]) == ["cpu-centric"] and list(reg["metric"]) == ["step_s"]
    assert reg.iloc[0]["ratio"] == pytest.approx(1.2)
    assert reg.iloc[0]["method"].startswith("quantiles")  # hand-made records keep no samples
    assert comp.table.iloc[0]["verdict"] == "regression"  # listed first
    assert comp.counts() == {"regression": 1, "no change": 1}  # without samples: the headline metric only


def test_identical_runs_have_no_regression() -> None:
    recs = [record("cpu-centric", step_s=0.010), record("cached", step_s=0.005, options={"cache_fraction": 0.1})]
    comp = compare_results(*_frames(recs, recs))
    assert not comp.has_regression
    assert set(comp.table["verdict"]) == {"no change"}
    assert set(comp.table["ratio"]) == {1.0}


def test_slowdown_within_the_spread_is_noise() -> None:
    base = [record("cpu-centric", step_s=0.010, spread=0.3)]
    new = [record("cpu-centric", step_s=0.0115, spread=0.3)]
    comp = compare_results(*_frames(base, new))
    assert not comp.has_regression
    row = comp.table.iloc[0]
    assert row["verdict"] == "no change" and "within noise" in row["reason"]
    assert row["method"].startswith("quantiles")


def test_slowdown_below_threshold_is_unchanged_even_outside_spread() -> None:
    base = [record("cpu-centric", step_s=0.010, spread=0.001)]
    new = [record("cpu-centric", step_s=0.0104, spread=0.001)]
    comp = compare_results(*_frames(base, new), threshold=0.05)
    assert comp.table.iloc[0]["verdict"] == "no change"
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
    head = comp.table[comp.table["headline"]]
    verdicts = dict(zip(head["configuration"], head["verdict"]))
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
    assert "no successful configuration" in comp.problem
    empty = compare_results(records_frame([]), records_frame([]))
    assert empty.table.empty and not empty.has_regression
    assert "no valid records" in empty.problem


def test_negative_threshold_is_rejected() -> None:
    frame = records_frame([record("cpu-centric")])
    with pytest.raises(ValueError, match="threshold"):
        compare_results(frame, frame, threshold=-0.1)


def _sampled(strategy: str, step: float, *, n: int = 30, jitter: float = 0.25, seed: int = 0, **extra) -> dict:
    """A record with ``n`` per-step samples spread +-``jitter`` around ``step`` (phases in proportion)."""
    rng = random.Random(seed)
    steps = [step * (1 + rng.uniform(-jitter, jitter)) for _ in range(n)]
    med = statistics.median(steps)
    samples = {"step": steps, "sample": [0.3 * s for s in steps], "gather": [0.5 * s for s in steps],
               "compute": [0.2 * s for s in steps]}
    return record(strategy, step_s=med, spread=jitter, samples=samples, **extra)


def test_sampled_20_percent_slowdown_is_caught_inside_wide_bands() -> None:
    # +-25% bands: the quantile rule called this "within noise"; the interval of the median ratio does not
    base = [_sampled("cpu-centric", 0.010, seed=1)]
    new = [_sampled("cpu-centric", 0.012, seed=2)]
    comp = compare_results(*_frames(base, new))
    head = comp.table[comp.table["headline"]].iloc[0]
    assert head["verdict"] == "regression" and head["method"].startswith("bootstrap")
    assert 1.05 < head["ci_low"] < head["ratio"] < head["ci_high"]
    assert head["base_n"] == head["new_n"] == 30
    again = compare_results(*_frames(base, new))
    assert again.table["ci_low"].tolist() == comp.table["ci_low"].tolist()  # fixed seed: deterministic


def test_same_distribution_is_no_change() -> None:
    comp = compare_results(*_frames([_sampled("cpu-centric", 0.010, seed=1)], [_sampled("cpu-centric", 0.010, seed=2)]))
    assert not comp.has_regression and set(comp.table["verdict"]) == {"no change"}
    assert all(lo < 1.05 for lo in comp.table["ci_low"])


def test_contended_row_is_never_a_regression() -> None:
    base = [_sampled("cpu-centric", 0.010, seed=1)]
    new = [_sampled("cpu-centric", 0.015, seed=2, contended=True, cpu_others_cores=1.4)]
    comp = compare_results(*_frames(base, new))
    assert not comp.has_regression
    head = comp.table[comp.table["headline"]].iloc[0]
    assert head["verdict"] == "contended" and "1.40 cores" in head["reason"] and "new run" in head["reason"]


def test_machines_and_workloads_must_match() -> None:
    base = [_sampled("cpu-centric", 0.010, seed=1)]
    other_host = _sampled("cpu-centric", 0.015, seed=2)
    other_host["env"] = {**other_host["env"], "hostname": "elsewhere"}
    comp = compare_results(*_frames(base, [other_host]))
    row = comp.table.iloc[0]
    assert row["verdict"] == "not comparable" and "machines differ: hostname testhost vs elsewhere" in row["reason"]
    across = compare_results(*_frames(base, [other_host]), across_machines=True)
    head = across.table[across.table["headline"]].iloc[0]
    assert head["verdict"] == "regression" and "across machines" in head["reason"]
    bigger = _sampled("cpu-centric", 0.010, seed=2, num_nodes=10)
    comp = compare_results(*_frames([_sampled("cpu-centric", 0.010, seed=1, num_nodes=5)], [bigger]))
    assert comp.table.iloc[0]["verdict"] == "not comparable" and "workloads differ" in comp.table.iloc[0]["reason"]


def test_runs_sharing_nothing_say_so() -> None:
    comp = compare_results(*_frames([record("cpu-centric")], [record("device-resident")]))
    assert comp.shared == 0 and "share no configuration" in comp.problem
    assert compare_results(*_frames([record("cpu-centric")], [record("cpu-centric")])).problem is None


def test_different_intra_op_thread_counts_are_not_comparable() -> None:
    base = [_sampled("cpu-centric", 0.010, seed=1, cpu_threads=2)]
    new = [_sampled("cpu-centric", 0.015, seed=2, cpu_threads=1)]
    comp = compare_results(*_frames(base, new))
    assert not comp.has_regression
    row = comp.table.iloc[0]
    assert row["verdict"] == "not comparable" and row["reason"].startswith("intra-op threads differ: 2 vs 1")
    same = compare_results(*_frames(base, [_sampled("cpu-centric", 0.015, seed=2, cpu_threads=2)]))
    assert same.has_regression  # equal counts: judged as usual

"""Several worker processes per configuration: one merged record, and an interval that sees drift between them."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from accessbench.reports.intervals import ratio_interval
from accessbench.suite.cli.entry import main
from accessbench.suite.measure.lifecycle import Config
from accessbench.suite.measure.processes import merge_processes
from accessbench.suite.measure.records import RESULTS_FILE, Record, read_records
from accessbench.suite.runner.sweep import PROCESSES_FILE, Sweep, run_sweep
from accessbench.workloads.config import Workload


def _rec(level: float, *, n: int = 20, seed: int = 0, **extra: object) -> Record:
    rng = random.Random(seed)
    steps = [level * (1 + rng.uniform(-0.02, 0.02)) for _ in range(n)]
    rec = Record(status="ok", step_s=sorted(steps)[n // 2], compute_s=level / 2, rows=1000 + seed, **extra)
    rec.samples = {"step": steps, "compute": [s / 2 for s in steps]}
    return rec


def test_merge_pools_samples_keeps_the_median_process_and_says_so() -> None:
    recs = [_rec(0.010, seed=1), _rec(0.030, seed=2, contended=True, cpu_others_cores=0.9), _rec(0.012, seed=3)]
    medians = [r.step_s for r in recs]
    pooled = [v for r in recs for v in r.samples["step"]]
    out = merge_processes(recs)
    assert out.processes == 3 and out.sample_runs == [20, 20, 20]
    assert out.process_medians == medians
    assert out.samples["step"] == pytest.approx(pooled)
    assert out.rows == 1003  # counters are the median process's (the 12 ms one)
    assert 0.012 * 0.98 <= out.step_s <= 0.012 * 1.02  # the pooled median: the middle process's level
    assert out.step_s_p10 < out.step_s < out.step_s_p90 and out.compute_s == pytest.approx(out.step_s / 2)
    assert out.contended is True and out.cpu_others_cores == 0.9
    assert any(n.startswith("3 worker processes measured this configuration: step medians") for n in out.notes)
    assert any(n.startswith("processes disagree by more than 10%") for n in out.notes)
    assert merge_processes([recs[0]]) is recs[0]
    with pytest.raises(ValueError):
        merge_processes([recs[0], Record(status="failed")])


def test_drift_between_processes_widens_the_interval() -> None:
    rng = random.Random(5)

    def run(level: float) -> list[float]:
        return [level * (1 + rng.uniform(-0.03, 0.03)) for _ in range(30)]

    base = run(1.0) + run(1.0) + run(1.0)
    new = run(1.0) + run(1.1) + run(1.1)  # processes of the same code that landed differently
    flat = ratio_interval(base, new)
    grouped = ratio_interval(base, new, base_runs=[30] * 3, new_runs=[30] * 3)
    assert flat is not None and grouped is not None
    assert flat.low > 1.05  # the steps alone call it a regression ...
    assert grouped.low < 1.02 and grouped.runs_base == grouped.runs_new == 3  # ... the processes do not
    slowed = ratio_interval(base, [v * 1.2 for v in run(1.0) + run(1.0) + run(1.0)], base_runs=[30] * 3,
                            new_runs=[30] * 3)
    assert slowed is not None and slowed.low > 1.1  # a real 20% slowdown in every process is still seen
    odd = ratio_interval(base, new, base_runs=[30, 30, 29], new_runs=[30] * 3)
    assert odd is not None and odd.runs_base == 1  # runs must add up to the samples


def test_sweep_runs_each_configuration_in_n_processes(tiny_store: Path, tmp_path: Path) -> None:
    wl = Workload(name="t", store=str(tiny_store), mode="gather", steps=2, warmup_steps=0, gather_ids=64)
    configs = [Config(strategy="cpu-centric", workload=wl, mode="gather", device="cpu", options={"prefetch": p})
               for p in range(2)]
    calls: list[str] = []
    fail_on = {configs[1].key: 2}

    def executor(cfg: Config, run_id: str) -> Record:
        calls.append(cfg.key)
        rec = _rec(0.01, seed=len(calls), run_id=run_id, config_key=cfg.key, strategy=cfg.strategy)
        if fail_on.get(cfg.key) == calls.count(cfg.key):
            rec.status, rec.error = "failed", "boom"
        return rec

    records = run_sweep(Sweep(configs=configs, run_dir=tmp_path, processes=3), executor=executor)
    a, b = configs[0].key, configs[1].key
    assert calls == [a, b, a, b, a]  # rounds over the configurations; the second stops at its failed process
    assert records[0].status == "failed" and "process 2 of 3 measuring this configuration failed" in \
        records[0].notes[-1]
    assert records[1].processes == 3 and records[1].sample_runs == [20, 20, 20]
    rows, bad = read_records(tmp_path / RESULTS_FILE)
    assert bad == 0 and [r["processes"] for r in rows] == [3, 3]
    assert not (tmp_path / PROCESSES_FILE).exists()  # the per-process file goes once the sweep is complete


def test_a_killed_processes_sweep_resumes_without_measuring_again(tiny_store: Path, tmp_path: Path) -> None:
    wl = Workload(name="t", store=str(tiny_store), mode="gather", steps=2, warmup_steps=0, gather_ids=64)
    configs = [Config(strategy="cpu-centric", workload=wl, mode="gather", device="cpu", options={"prefetch": p})
               for p in range(2)]
    calls: list[str] = []

    def executor(cfg: Config, run_id: str) -> Record:
        if len(calls) == 3:
            raise KeyboardInterrupt  # killed while measuring the fourth process
        calls.append(cfg.key)
        return _rec(0.01, seed=len(calls), run_id=run_id, config_key=cfg.key, strategy=cfg.strategy)

    with pytest.raises(KeyboardInterrupt):
        run_sweep(Sweep(configs=configs, run_dir=tmp_path, processes=2), executor=executor)
    rows, _ = read_records(tmp_path / RESULTS_FILE)
    assert [r["config_key"] for r in rows] == [configs[0].key]  # its two processes were in: merged and appended
    calls.clear()
    calls.append("")  # the executor now allows two more calls before "the kill" (never reached)
    records = run_sweep(Sweep(configs=configs, run_dir=tmp_path, processes=2, resume=True), executor=executor)
    assert calls[1:] == [configs[1].key]  # only the missing process ran
    assert [r.config_key for r in records] == [configs[1].key] and records[0].processes == 2
    rows, bad = read_records(tmp_path / RESULTS_FILE)
    assert bad == 0 and [r["config_key"] for r in rows] == [configs[0].key, configs[1].key]


def test_processes_must_be_positive_and_isolated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "-w", "tiny", "--processes", "0", "--out", str(tmp_path / "a")]) == 2
    assert "--processes must be >= 1" in capsys.readouterr().err
    assert main(["run", "-w", "tiny", "--processes", "2", "--no-isolate", "--out", str(tmp_path / "b")]) == 2
    assert "--processes needs worker processes" in capsys.readouterr().err

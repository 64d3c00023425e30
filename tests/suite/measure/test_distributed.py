"""Several ranks without launching any: the rank rule, the record merge rules, which strategies run, CLI refusals."""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp

from accessbench.suite.cli import main
from accessbench.suite.measure import distributed
from accessbench.suite.measure.distributed import RankError, batch_rank, rank_and_world, rank_batches, rank_seed
from accessbench.suite.measure.lifecycle import Config, execute
from accessbench.suite.measure.rank_merge import IN_PROCESS_NOTE, PER_RANK_FIELDS, RULES, lockstep_intact, merge_records
from accessbench.suite.measure.records import Record
from accessbench.suite.measure.window import measure
from accessbench.suite.runner.ranks import NOT_SUPPORTED, for_ranks
from accessbench.suite.runner.sweep import Sweep, run_sweep
from accessbench.suite.telemetry import Telemetry, TelemetrySettings
from accessbench.workloads.config import load_workload


def test_rank_rule_splits_the_global_stream_like_the_trace() -> None:
    stream = list(range(23))
    for world in (1, 2, 3, 4):
        shares = [list(rank_batches(iter(stream), r, world)) for r in range(world)]
        assert shares == [[j for j in stream if batch_rank(j, world) == r] for r in range(world)]
        assert sorted(j for share in shares for j in share) == stream
    assert [rank_seed(7, r) for r in range(3)] == [7, 8, 9]


def test_one_rank_is_the_identity_and_several_need_a_process_group() -> None:
    assert rank_and_world(1) == (0, 1)
    assert distributed.all_true(True) is True and distributed.all_true(False) is False
    model = torch.nn.Linear(2, 2)
    assert distributed.wrap_model(model, torch.device("cpu"), 1) is model
    with pytest.raises(RankError, match="torchrun --nproc_per_node=2"):
        rank_and_world(2)


def test_world_size_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.env_world_size() == 1 and not distributed.launched()
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert distributed.env_world_size() == 4 and distributed.launched()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(RankError, match="not an integer"):
        distributed.env_world_size()


def test_a_single_device_is_refused_for_several_ranks() -> None:
    assert distributed._backend_for("cpu") == "gloo"
    with pytest.raises(RankError, match="cuda:LOCAL_RANK"):
        distributed._backend_for("cuda:1")


def test_every_record_field_has_a_merge_rule() -> None:
    assert set(RULES) == {f.name for f in dataclasses.fields(Record)}
    assert set(PER_RANK_FIELDS) <= set(RULES)


def _rank_record(rank: int, **values: object) -> Record:
    base: dict[str, object] = {"run_id": "r", "config_key": "k", "strategy": "cached", "workload": "tiny",
                               "mode": "train", "device": "cpu", "ranks": 2, "status": "ok", "steps": 4,
                               "measured_steps": 4, "energy_repeats": 1, "exact": True, "notes": ["shared note"]}
    base.update(values)
    return Record(**base)  # type: ignore[arg-type]


def test_merge_reduces_each_field_by_its_rule() -> None:
    r0 = _rank_record(0, rows=100, bytes_needed=1000, bytes_peer=40, bytes_host=None, hit_rate=0.5, step_s=0.2,
                      step_s_p90=0.3, prepare_s=1.0, rows_per_s=10.0, gpu_util_pct=20.0, cpu_energy_j=5.0,
                      cpu_util_process=0.9, peak_device_bytes=7, peak_rss_bytes=3, bytes_disk=300,
                      read_amplification=3.0, gpu_energy_j=None,
                      access_extras={"rank": 0, "ranks": 2, "unique_rows": 60, "policy": "lru", "fill_s": 0.1,
                                     "cache_rows": 10})
    r1 = _rank_record(1, rows=300, bytes_needed=3000, bytes_peer=0, bytes_host=None, hit_rate=0.1, step_s=0.4,
                      step_s_p90=0.25, prepare_s=2.0, rows_per_s=30.0, gpu_util_pct=40.0, cpu_energy_j=6.0,
                      cpu_util_process=1.1, peak_device_bytes=9, peak_rss_bytes=4, bytes_disk=100,
                      read_amplification=1.0, gpu_energy_j=2.0, notes=["shared note", "own note"],
                      access_extras={"rank": 1, "ranks": 2, "unique_rows": 60, "policy": "lru", "fill_s": 0.2,
                                     "cache_rows": 10})
    m = merge_records([r0, r1])
    assert m.status == "ok" and m.ranks == 2 and m.exact is True
    assert (m.rows, m.bytes_needed, m.bytes_peer, m.bytes_host) == (400, 4000, 40, None)
    assert m.hit_rate == pytest.approx((0.5 * 100 + 0.1 * 300) / 400)
    assert m.read_amplification == pytest.approx(400 / (300 / 3.0 + 100 / 1.0))
    assert (m.step_s, m.step_s_p90, m.prepare_s) == (0.4, 0.3, 2.0)  # the slowest rank's own figures
    assert m.rows_per_s == 40.0 and m.cpu_util_process == pytest.approx(2.0) and m.peak_rss_bytes == 7
    assert m.gpu_util_pct == pytest.approx(30.0) and m.peak_device_bytes == 9
    assert m.cpu_energy_j == 5.0  # a machine-wide meter: rank 0's reading, not summed
    assert m.gpu_energy_j is None and "gpu_energy_j null: measured on rank(s) 1 only" in m.notes
    assert m.access_extras == {"ranks": 2, "unique_rows": 120, "policy": "lru", "cache_rows": 20}
    assert m.notes[0] == IN_PROCESS_NOTE.format(world=2)
    assert "shared note" in m.notes and "rank 1: own note" in m.notes and "own note" not in m.notes
    assert [p["rank"] for p in m.per_rank] == [0, 1]
    assert [p["step_s"] for p in m.per_rank] == [0.2, 0.4]
    assert m.per_rank[1]["access_extras"]["fill_s"] == 0.2


def test_merge_of_a_failure_names_the_rank_and_lockstep() -> None:
    ok = _rank_record(0, rows=1)
    bad = _rank_record(1, status="failed", failed_phase="train", error="boom", exact=None)
    m = merge_records([ok, bad])
    assert (m.status, m.failed_phase, m.error, m.exact) == ("failed", "train", "rank 1: boom", None)
    assert "failed on rank(s) 1 only" in m.notes
    assert not lockstep_intact([ok, bad])
    same = _rank_record(0, status="failed", failed_phase="setup", error="no such option")
    assert lockstep_intact([same, dataclasses.replace(same)])
    m = merge_records([same, dataclasses.replace(same)])
    assert m.error == "no such option" and "failed the same way on every rank" in m.notes
    assert not lockstep_intact([same, dataclasses.replace(same, error="other")])
    assert lockstep_intact([ok, dataclasses.replace(ok)])


def test_strategies_without_several_ranks_are_skipped_and_every_row_has_the_world(tmp_path: Path) -> None:
    wl = load_workload("tiny")
    configs = [Config("cached", wl, "train", "cpu", {"placement": "partition"}), Config("cpu-centric", wl, "train",
                                                                                         "cpu")]
    unavailable = [(Config("zero-copy", wl, "train", "cpu"), "needs CUDA")]
    run, skipped = for_ranks(configs, unavailable, 2)
    assert [(c.strategy, c.ranks) for c in run] == [("cached", 2)]
    assert [(c.strategy, c.ranks, why) for c, why in skipped] == [("zero-copy", 2, "needs CUDA"),
                                                                  ("cpu-centric", 2, NOT_SUPPORTED)]
    assert run[0].key != configs[0].key  # ranks are part of the configuration key

    rows = run_sweep(Sweep(configs=[], run_dir=tmp_path, skipped=skipped))
    assert [(r.status, r.ranks, r.config_key) for r in rows] == [("skipped", 2, c.key) for c, _ in skipped]


def test_a_configuration_of_several_ranks_without_torchrun_fails_with_the_command() -> None:
    cfg = Config("cached", load_workload("tiny"), "gather", "cpu", ranks=2)
    rec = execute(cfg, run_id="t")
    assert rec.status == "failed" and rec.failed_phase == "gather"
    assert "torchrun --nproc_per_node=2" in (rec.error or "")


def test_profile_is_refused_under_torchrun(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    rc = main(["run", "-w", "tiny", "-s", "cached", "--device", "cpu", "--out", str(tmp_path), "--profile"])
    assert rc == 2 and "--profile is not supported with several ranks" in capsys.readouterr().err


class _LongWindowMeter:
    """A meter that needs 0.2 s windows (like NVML's energy counter) and measures nothing."""

    min_window_s = 0.2

    def start(self, window: str = "measure") -> None:
        pass

    def stop(self) -> tuple[dict[str, Any], list[str]]:
        return {}, []


def _window_worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank))
    with distributed.RankSession.start("cpu", timeout_s=60) as session:
        telemetry = Telemetry(torch.device("cpu"), meters=[_LongWindowMeter()], settings=TelemetrySettings(nvtx=False))
        rec = Record()
        pause = 0.06 if rank == 0 else 0.002  # alone, rank 1 would need ~100 passes to rank 0's ~4

        def body(_: int) -> dict[str, float]:
            time.sleep(pause)
            return {"step": pause}

        measure(rec, telemetry, 1, body)
        session.gather(None)  # both ranks finished the window
        Path(out, f"rank{rank}").write_text(str(rec.energy_repeats))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ranks_agree_on_how_often_the_measured_steps_repeat(tmp_path: Path) -> None:
    mp.spawn(_window_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    repeats = [int((tmp_path / f"rank{r}").read_text()) for r in range(2)]
    assert repeats[0] == repeats[1] and 2 <= repeats[0] <= 10

"""Placement: threads follow the free cores, a workload's ``cores`` pins the worker, and the record says so."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from accessbench.suite.measure.lifecycle import Config
from accessbench.suite.runner.isolation import run_isolated
from accessbench.suite.runner.placement import Placement, apply_affinity, plan, usable_cpus
from accessbench.workloads.config import Workload, WorkloadError, load_workload


def test_threads_follow_the_free_cores_and_are_not_pinned() -> None:
    quiet = plan(None, usable=[0, 1], busy={0: 0.05, 1: 0.1})
    assert quiet.threads == 2 and quiet.cpus == ()
    assert "2 intra-op thread(s), one per free core (2 usable, other processes used 0.15 cores" in quiet.reason
    assert plan(None, usable=[0, 1], busy={0: 0.7, 1: 0.0}).threads == 1  # a busy neighbour takes a core
    assert plan(None, usable=[0, 1], busy={0: 0.9, 1: 0.9}).threads == 1  # never fewer than one
    assert plan(None, usable=[0, 1, 2, 3], busy={0: 0.8, 1: 0.7, 2: 0.0, 3: 0.0}).threads == 2
    assert plan(None, usable=[2, 3], busy={0: 1.0, 1: 1.0, 2: 0.0, 3: 0.0}).threads == 2  # only usable CPUs count


def test_cores_pin_to_the_least_busy_cpus_lowest_numbered_on_ties() -> None:
    assert plan(1, usable=[0, 1], busy={0: 0.01, 1: 0.02}).cpus == (0,)
    assert plan(1, usable=[0, 1], busy={0: 0.9, 1: 0.0}).cpus == (1,)
    two = plan(2, usable=[0, 1, 2, 3], busy={0: 0.0, 1: 1.0, 2: 0.0, 3: 0.0})
    assert two.cpus == (0, 2) and two.threads == 2
    more = plan(4, usable=[0, 1], busy={})
    assert more.threads == 2 and more.cpus == (0, 1) and "asked for 4, 2 usable" in more.reason
    with pytest.raises(ValueError):
        plan(0, usable=[0, 1], busy={})
    with pytest.raises(ValueError):
        plan(None, usable=[], busy={})


def test_placement_round_trips_and_rejects_nonsense() -> None:
    p = Placement(1, (0,), "r")
    assert Placement.from_dict(p.to_dict()) == p
    with pytest.raises(ValueError):
        Placement.from_dict({"threads": 0, "cpus": []})


def test_pinning_to_a_cpu_that_does_not_exist_is_a_note_not_a_crash() -> None:
    note = apply_affinity(Placement(1, (100_000,), "r"))
    assert note is not None and note.startswith("placement: could not pin to CPU(s) [100000]")
    assert apply_affinity(Placement(2, (), "r")) is None


def test_workload_cores_is_validated_and_stays_out_of_old_keys() -> None:
    tiny = load_workload("tiny")
    assert tiny.cores == 1 and tiny.identity()["cores"] == 1
    wl = load_workload("default")
    assert wl.cores is None and "cores" not in wl.identity()  # configuration keys of older runs still match
    with pytest.raises(WorkloadError, match="cores must be >= 1"):
        dataclasses.replace(wl, cores=0)


def test_worker_runs_with_its_placement(tiny_store: Path, tmp_path: Path) -> None:
    wl = Workload(name="t", store=str(tiny_store), mode="gather", steps=3, warmup_steps=1, gather_ids=128, cores=1)
    rec = run_isolated(Config(strategy="cpu-centric", workload=wl, mode="gather", device="cpu"), run_id="r",
                       run_dir=tmp_path, timeout_s=120)
    assert rec.status == "ok" and rec.cpu_threads == 1
    assert rec.cpu_affinity is not None and len(rec.cpu_affinity) == 1 and rec.cpu_affinity[0] in usable_cpus()
    assert any(n.startswith("placement: 1 intra-op thread(s) pinned to CPU(s)") for n in rec.notes)
    free = run_isolated(Config(strategy="cpu-centric", workload=dataclasses.replace(wl, cores=None), mode="gather",
                               device="cpu"), run_id="r", run_dir=tmp_path, timeout_s=120)
    assert free.status == "ok" and 1 <= free.cpu_threads <= len(usable_cpus())
    assert free.cpu_affinity == usable_cpus()
    assert any("one per free core" in n for n in free.notes)

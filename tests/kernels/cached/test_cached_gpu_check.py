"""The cached GPU check section's measuring code, run on the CPU with a small graph (the section itself runs only
under ``accessbench check --gpu``)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from accessbench.suite.gpu_checks import GpuCheckContext, discover
from accessbench.suite.gpu_checks import cached as section
from accessbench.suite.gpu_checks.cached import SECTION, _batches, measure, run

from tests.conftest import make_graph


def test_section_is_discovered() -> None:
    assert any(getattr(m, "SECTION", None) == SECTION for m in discover())


def test_measure_on_cpu() -> None:
    graph = make_graph(800, 16, seed=2)
    batches = _batches(graph, 32, (5, 5), 4, seed=1)
    rows = measure(graph, batches, torch.device("cpu"), fanouts=(5, 5), batch_size=32, warmup=1, repeat=2)
    rates = {r.strategy: r.value for r in rows if r.metric == "hit rate"}
    assert set(rates) == {f"cached/{p}" for p in ("degree", "presample", "lru", "clock", "hybrid", "belady")}
    assert all(0.0 <= v <= 1.0 for v in rates.values())
    assert rates["cached/belady"] >= max(rates["cached/lru"], rates["cached/clock"])
    speed = {r.strategy: r for r in rows if r.metric == "GB/s"}
    assert speed["cpu-centric"].value > 0 and speed["cached/degree+cpu-centric"].value > 0
    assert speed["cached/degree+cpu-centric"].reference == speed["cpu-centric"].value
    assert speed["zero-copy"].value is None and "not measured" in speed["zero-copy"].note


def test_a_failing_two_gpu_part_keeps_the_single_gpu_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    graph = make_graph(600, 8, seed=3)
    monkeypatch.setattr(section, "_graph", lambda ctx: (graph, SimpleNamespace(batch_size=16, fanouts=(4, 4))))

    def nccl_fails(ctx, graph, wl):
        raise RuntimeError("process 1 terminated with the following error:\nTraceback ...\nNCCL error: unhandled")

    monkeypatch.setattr(section, "_partition_rows", nccl_fails)
    rows = run(GpuCheckContext(device=torch.device("cpu"), quick=True))
    measured = [r for r in rows if r.metric in ("hit rate", "GB/s")]
    assert len(measured) == 6 + 4 and any(r.value for r in measured)
    failed = rows[-1]
    assert failed.value is None and "failed" in failed.case
    assert failed.note == "RuntimeError: NCCL error: unhandled"


def test_a_failing_policy_becomes_a_row(monkeypatch: pytest.MonkeyPatch) -> None:
    graph = make_graph(400, 8, seed=5)
    batches = _batches(graph, 16, (4, 4), 3, seed=1)
    real = section._drive

    def drive(strategy, batches, device):
        if strategy.options.policy == "clock":
            raise MemoryError("out of memory")
        real(strategy, batches, device)

    monkeypatch.setattr(section, "_drive", drive)
    rows = measure(graph, batches, torch.device("cpu"), fanouts=(4, 4), batch_size=16, warmup=0, repeat=2)
    rates = {r.strategy: r for r in rows if r.metric == "hit rate"}
    assert rates["cached/clock"].value is None and "MemoryError: out of memory" in rates["cached/clock"].note
    assert rates["cached/lru"].value is not None


@pytest.mark.gpu
def test_section_runs_quick_on_gpu(tmp_path) -> None:
    rows = run(GpuCheckContext(device=torch.device("cuda"), quick=True, out_dir=tmp_path))
    assert any(r.metric == "GB/s" and r.strategy == "cached/degree+cpu-centric" and r.value for r in rows)

"""The cached GPU check section's measuring code, run on the CPU with a small graph (the section itself runs only
under ``accessbench check --gpu``)."""

from __future__ import annotations

import pytest
import torch

from suite.gpu_checks import GpuCheckContext, discover
from suite.gpu_checks.cached import SECTION, _batches, measure, run
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


@pytest.mark.gpu
def test_section_runs_quick_on_gpu(tmp_path) -> None:
    rows = run(GpuCheckContext(device=torch.device("cuda"), quick=True, out_dir=tmp_path))
    assert any(r.metric == "GB/s" and r.strategy == "cached/degree+cpu-centric" and r.value for r in rows)

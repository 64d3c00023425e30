"""The out-of-core GPU check section's measuring code, run on the CPU with a small store (the section itself runs
only under ``accessbench check --gpu``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from accessbench.kernels import create
from accessbench.suite.gpu_checks import GpuCheckContext, discover
from accessbench.suite.gpu_checks.out_of_core import SECTION, measure_once, run

from tests.kernels.out_of_core.ooc_support import make_store


def test_section_is_discovered() -> None:
    assert any(getattr(m, "SECTION", None) == SECTION for m in discover())


@pytest.mark.parametrize("layout", ["rowwise", "packed"])
def test_window_counts_every_batch_and_takes_out_the_offline_pass(tmp_path: Path, layout: str) -> None:
    g = make_store(tmp_path, num_nodes=2000, feat_dim=64)
    seeds = [torch.randint(0, g.num_nodes, (64,), generator=torch.Generator().manual_seed(i)) for i in range(5)]
    opts = {"io": "direct", "layout": layout, "superbatch": len(seeds), "host_cache_bytes": 32 << 10}
    with create("out-of-core", **opts) as s:  # the bytes of every batch, the first one included
        s.prepare(g, torch.device("cpu"))
        expected = sum(lb.features.numel() * lb.features.element_size()
                       for lb in s.load(seeds, [10, 5], generator=torch.Generator().manual_seed(0)))
    seconds, offline, nbytes = measure_once(g, opts, seeds, torch.device("cpu"))
    assert nbytes == expected
    assert seconds > 0 and offline > 0  # sampling (and packing) happen before the first read


def test_planning_must_precede_every_read(tmp_path: Path) -> None:
    g = make_store(tmp_path, num_nodes=500, feat_dim=16)
    seeds = [torch.arange(8)] * 3
    with pytest.raises(ValueError, match="superbatch"):
        measure_once(g, {"io": "mmap", "superbatch": 2}, seeds, torch.device("cpu"))


@pytest.mark.gpu
def test_section_runs_quick_on_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCESSBENCH_CACHE", str(tmp_path))
    rows = run(GpuCheckContext(device=torch.device("cuda"), quick=True, out_dir=tmp_path))
    assert len(rows) == 4
    for r in rows:
        if r.value is None:  # kvikio absent, or this test's tmp filesystem refuses O_DIRECT
            assert r.note.startswith("not measured") or "O_DIRECT" in r.note, r.note
        else:
            assert r.value > 0 and r.p10 is not None and r.p10 <= r.value <= r.p90

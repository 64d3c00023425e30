"""Out-of-core benchmarks (pytest-benchmark): the ``direct`` reader's 4 KiB random-read IOPS next to a plain O_DIRECT
reader with 32 reads in flight on the same file, and feature loading of the published designs on one small store.
The normal test command runs each once with benchmarking disabled (small sizes); for real numbers run
``python -m pytest tests/bench/test_bench_out_of_core.py --benchmark-enable`` with ``ACCESSBENCH_OOC_BENCH_MB``
(file size) raised, or ``python -m accessbench.suite.ooc_bench`` for the table in docs/results/out_of_core_cpu.md."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from accessbench.kernels.strategies.out_of_core.pagecache import drop_file_pages
from accessbench.suite.ooc_bench import DESIGNS, design_options, direct_iops, random_pages, reference_iops, run_design

from tests.kernels.out_of_core.ooc_support import make_store

FILE_MB = int(os.environ.get("ACCESSBENCH_OOC_BENCH_MB", "16"))


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("ooc-bench")
    path = directory / "random.bin"
    with open(path, "wb") as f:
        f.writelines(os.urandom(1 << 20) for _ in range(FILE_MB))
    from tests.kernels.out_of_core.ooc_support import require_odirect

    require_odirect(directory)
    return path


def _reads(benchmark: object) -> int:
    return 20000 if not getattr(benchmark, "disabled", True) else 500


@pytest.mark.parametrize("reader", ["reference-odirect-32", "direct"])
def test_bench_random_4k_iops(benchmark, data_file: Path, reader: str) -> None:  # type: ignore[no-untyped-def]
    n = min(_reads(benchmark), data_file.stat().st_size // 8192)
    calls = iter(range(1000))
    fn = reference_iops if reader.startswith("reference") else direct_iops

    def run() -> float:
        return fn(data_file, random_pages(data_file.stat().st_size, n, seed=next(calls)))

    iops = benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=0)
    benchmark.extra_info.update({"iops": iops, "reads": n, "file_bytes": data_file.stat().st_size})
    assert iops > 0


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return make_store(tmp_path_factory.mktemp("ooc-bench-store"), num_nodes=20000, feat_dim=128, avg_degree=10)


@pytest.mark.parametrize("design", list(DESIGNS))
def test_bench_feature_loading(benchmark, store, design: str) -> None:  # type: ignore[no-untyped-def]
    seeds = [torch.randperm(store.num_nodes, generator=torch.Generator().manual_seed(i))[:256] for i in range(4)]
    opts = design_options(DESIGNS[design], budget=store.feature_bytes, superbatch=len(seeds))

    def run():  # type: ignore[no-untyped-def]
        assert store.feature_file is not None
        drop_file_pages(store.feature_file.path)
        return run_design(design, opts, store, seeds, [10, 5], warmup=0)

    result = benchmark.pedantic(run, rounds=2, iterations=1)
    benchmark.extra_info.update({"load_s": result.load_s, "rows": result.rows,
                                 "read_amplification": result.stats.get("read_amplification"),
                                 "preprocess_s": result.stats.get("preprocess_s")})
    assert result.rows > 0 and len(result.gather_s) == len(seeds)

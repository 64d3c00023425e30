"""Out-of-core benchmarks (pytest-benchmark): the strategy's ``direct`` reader next to the plain O_DIRECT reader of
the ceiling rows (32 reads in flight) on the same 4 KiB pages, and feature loading of the out-of-core study's
designs on one small store. The normal test command runs each once with benchmarking disabled (small sizes); for
real numbers run ``python -m pytest tests/bench/test_bench_out_of_core.py --benchmark-enable`` with
``ACCESSBENCH_OOC_BENCH_MB`` raised, or the study itself: ``accessbench study run out-of-core --quick``."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import torch

from accessbench.kernels import create
from accessbench.kernels.strategies.out_of_core.align import PAGE, aligned_empty
from accessbench.kernels.strategies.out_of_core.direct import DirectFile
from accessbench.kernels.strategies.out_of_core.extents import plan_row_reads
from accessbench.kernels.strategies.out_of_core.pagecache import drop_file_pages
from accessbench.suite.measure.ceiling import read_pages_odirect
from accessbench.suite.studies.out_of_core import _BASE, _designs
from tests.kernels.out_of_core.ooc_support import make_store, require_odirect

FILE_MB = int(os.environ.get("ACCESSBENCH_OOC_BENCH_MB", "16"))


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("ooc-bench")
    path = directory / "random.bin"
    with open(path, "wb") as f:
        f.writelines(os.urandom(1 << 20) for _ in range(FILE_MB))
    require_odirect(directory)
    return path


def _pages(file_bytes: int, count: int, seed: int) -> list[int]:
    """``count`` distinct even pages (never adjacent, so no read can be coalesced)."""
    return [2 * p for p in random.Random(seed).sample(range(file_bytes // PAGE // 2), count)]


@pytest.mark.parametrize("reader", ["plain-odirect-32", "direct"])
def test_bench_random_4k_reads(benchmark, data_file: Path, reader: str) -> None:  # type: ignore[no-untyped-def]
    size = data_file.stat().st_size
    n = min(20000 if not benchmark.disabled else 500, size // 8192)
    seeds = iter(range(1000))
    counts: list[int] = []

    if reader == "direct":
        f = DirectFile(data_file, depth=32)

        def run() -> None:
            plan = plan_row_reads(torch.tensor(_pages(size, n, next(seeds))), offset=0, row_stride=PAGE,
                                  row_bytes=PAGE)
            buf = aligned_empty(plan.total_bytes)
            before = f.counter.snapshot()[1]
            f.read(plan, buf)
            counts.append(f.counter.snapshot()[1] - before)
    else:
        fd = os.open(data_file, os.O_RDONLY | os.O_DIRECT)

        def run() -> None:
            pages = _pages(size, n, next(seeds))
            read_pages_odirect(fd, pages, 32)
            counts.append(len(pages))

    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=0)
    if reader == "direct":
        f.close()
    else:
        os.close(fd)
    benchmark.extra_info.update({"reads_per_round": n, "file_bytes": size})
    assert counts and all(c == n for c in counts)  # one 4 KiB read per distinct, non-adjacent page


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return make_store(tmp_path_factory.mktemp("ooc-bench-store"), num_nodes=20000, feat_dim=128, avg_degree=10)


@pytest.mark.parametrize("design", ["mmap-cold", "direct-rowwise", "ginex", "diskgnn"])
def test_bench_feature_loading(benchmark, store, design: str) -> None:  # type: ignore[no-untyped-def]
    seeds = [torch.randperm(store.num_nodes, generator=torch.Generator().manual_seed(i))[:256] for i in range(4)]
    budget = store.feature_bytes
    opts = {**_BASE, **_designs(budget, len(seeds))[design], "memory_budget_bytes": budget,
            "read_buffer_bytes": 1 << 20}

    def run() -> tuple[int, int]:
        assert store.feature_file is not None
        drop_file_pages(store.feature_file.path)
        rows = batches = 0
        with create("out-of-core", **opts) as s:
            s.prepare(store, torch.device("cpu"))
            for lb in s.load(seeds, [10, 5], generator=torch.Generator().manual_seed(0)):
                assert torch.equal(lb.features, store.features[lb.batch.node_ids])
                rows += lb.batch.node_ids.numel()
                batches += 1
        return rows, batches

    rows, batches = benchmark.pedantic(run, rounds=2, iterations=1)
    benchmark.extra_info.update({"rows": rows})
    assert batches == len(seeds) and rows >= 256 * len(seeds)

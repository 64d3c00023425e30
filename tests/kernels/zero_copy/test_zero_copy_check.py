"""The zero-copy GPU check section's CPU-side helpers (the section itself runs under ``accessbench check --gpu``)."""

from __future__ import annotations

import torch
from accessbench.suite.gpu_checks import discover
from accessbench.suite.gpu_checks import zero_copy as section


def test_section_is_discovered() -> None:
    assert section in discover()
    assert section.SECTION and callable(section.run)


def test_grid_covers_the_issue_and_quick_is_smaller() -> None:
    rows, counts, dtypes, table = section._grid(quick=False)
    assert (min(rows), max(rows), min(counts), max(counts)) == (4, 4096, 1_000, 1_000_000)
    assert set(dtypes) == {torch.float32, torch.float16}
    q_rows, q_counts, _, q_table = section._grid(quick=True)
    assert set(q_rows) < set(rows) and set(q_counts) < set(counts) and q_table < table


def test_table_rows_are_distinct_and_graph_is_valid() -> None:
    t = section._table(5000, 3, torch.float16)
    assert t.shape == (5000, 3) and not torch.equal(t[1], t[2])
    g = section._graph(t)
    assert g.num_nodes == 5000 and g.num_edges == 0
    csr = section._random_csr(1000, 30, seed=0)
    assert csr.indptr[-1] == csr.num_edges and int(csr.indices.max()) < 1000


def test_targets_and_repeats() -> None:
    assert "95%" in section._target(512, 100_000) and "60%" in section._target(128, 1_000_000)
    assert section._target(4096, 1_000) == ""
    assert section._reps(1 << 30) == (1, 5) and section._reps(1 << 10) == (3, 20)

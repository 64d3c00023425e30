"""The page-cache drop works even for pages this process has mapped (the graph's own memory-mapped table)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from accessbench.kernels.strategies.out_of_core.pagecache import drop_file_pages, filesystem_of, resident_fraction


def test_pages_touched_through_a_mapping_are_dropped_and_read_back_exactly(tmp_path: Path) -> None:
    fstype, _ = filesystem_of(tmp_path)
    if fstype in ("tmpfs", "ramfs"):
        pytest.skip(f"{fstype} keeps files in memory: nothing to drop")
    path = tmp_path / "features.bin"
    values = np.random.default_rng(0).random(1 << 20, dtype=np.float32)
    values.tofile(path)
    table = torch.from_numpy(np.memmap(path, dtype="float32", mode="c"))  # as workloads.store opens features
    total = float(table.sum())  # every page now mapped into this process
    frac = resident_fraction(path)
    if frac is None:
        pytest.skip("mincore unavailable here")
    assert frac == 1.0
    result = drop_file_pages(path)
    assert result.ok and result.resident_after is not None and result.resident_after <= 0.01, result
    assert "madvise(MADV_DONTNEED)" in result.method
    assert float(table.sum()) == total and torch.equal(table, torch.from_numpy(values))  # read again, unchanged

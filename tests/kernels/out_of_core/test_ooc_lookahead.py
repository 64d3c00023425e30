"""The Belady look-ahead cache as the strategy serves it, against a hand-worked trace."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from accessbench.kernels import create
from accessbench.kernels.types import FeatureFile, GraphData
from tests.kernels.out_of_core.ooc_support import require_odirect

# Batches of unique ids; capacity 2 rows; a miss is cached only if it is used again (bypass admission).
TRACE = [[1, 2], [3, 1], [2, 3], [1, 2]]
# One superbatch of 4, worked by hand:
#   b0 [1,2]: both miss; keep 1 (next b1) and 2 (next b2)            -> hits 0, cache {1,2}
#   b1 [3,1]: 1 hits, 3 misses; keep the two soonest of 1(b3) 2(b2) 3(b2) -> hits 1, cache {2,3}
#   b2 [2,3]: both hit; 3 is never used again, keep 2 (b3)           -> hits 2, cache {2}
#   b3 [1,2]: 2 hits, 1 misses                                        -> hits 1
ONE_SUPERBATCH = [0, 1, 3, 4]
# Superbatches of 2: b0 keeps 1 (used in b1), b1 hits 1; the second superbatch starts from the row still held (1),
# which b3 uses: b2 misses both and keeps 2, b3 hits 1 and 2.
TWO_SUPERBATCHES = [0, 1, 1, 3]


def _edgeless_graph(directory: Path, dim: int = 8) -> tuple[GraphData, torch.Tensor]:
    require_odirect(directory)
    n = 16
    feats = torch.arange(n * dim, dtype=torch.float32).view(n, dim)
    path = directory / "feats.bin"
    feats.numpy().tofile(path)
    graph = GraphData(n, torch.zeros(n + 1, dtype=torch.int64), torch.empty(0, dtype=torch.int64), feats,
                      feature_file=FeatureFile(path, 0, dim * 4, dim * 4))
    return graph, feats.clone()


@pytest.mark.parametrize(("superbatch", "expected"), [(4, ONE_SUPERBATCH), (2, TWO_SUPERBATCHES)])
@pytest.mark.parametrize("pipeline", [False, True])
def test_lookahead_hits_match_the_hand_worked_trace(tmp_path: Path, superbatch: int, expected: list[int],
                                                    pipeline: bool) -> None:
    graph, feats = _edgeless_graph(tmp_path)
    seeds = [torch.tensor(b) for b in TRACE]
    with create("out-of-core", io="direct", lookahead_bytes=2 * graph.row_bytes, superbatch=superbatch,
                pipeline=pipeline) as s:
        s.prepare(graph, torch.device("cpu"))
        hits, disk = [], []
        for lb in s.load(seeds, [1], generator=torch.Generator().manual_seed(0)):
            assert torch.equal(lb.features, feats[lb.batch.node_ids])
            st = s.stats()
            hits.append(st.hits["lookahead"])
            disk.append(st.misses["disk"])
    assert hits == expected
    assert disk == [sum(len(b) for b in TRACE[:i + 1]) - h for i, h in enumerate(expected)]


def test_gather_after_a_partial_run_reads_only_rows_really_held(tmp_path: Path) -> None:
    graph, feats = _edgeless_graph(tmp_path)
    with create("out-of-core", io="direct", lookahead_bytes=2 * graph.row_bytes, superbatch=4, pipeline=False) as s:
        s.prepare(graph, torch.device("cpu"))
        it = s.load([torch.tensor(b) for b in TRACE], [1], generator=torch.Generator().manual_seed(0))
        next(it)  # planned all four, served one: the buffer holds only what b0 admitted
        it.close()
        ids = torch.tensor([1, 2, 3, 3, 0])
        s.reset_stats()
        assert torch.equal(s.gather(ids), feats[ids])
        assert s.stats().hits["lookahead"] == 2  # rows 1 and 2 were admitted by b0 and are really in the buffer
        # a new run starts from the rows really held, and stays exact
        for lb in s.load([torch.tensor(b) for b in TRACE], [1], generator=torch.Generator().manual_seed(0)):
            assert torch.equal(lb.features, feats[lb.batch.node_ids])

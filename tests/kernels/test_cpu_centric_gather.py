"""cpu-centric on the CPU gathers into a reusable staging ring: results stay exact while held, slots are reused."""

from __future__ import annotations

import torch

from accessbench.kernels import registry
from tests.conftest import make_graph

DEVICE = torch.device("cpu")


def _ids(seed: int, n: int = 200) -> torch.Tensor:
    return torch.randint(0, 300, (n,), generator=torch.Generator().manual_seed(seed))


def test_held_results_are_never_overwritten() -> None:
    graph = make_graph(num_nodes=300, feat_dim=16)
    with registry.create("cpu-centric") as s:
        s.prepare(graph, DEVICE)
        held = [(ids, s.gather(ids)) for ids in map(_ids, range(8))]  # more results than ring slots
        views = []
        for seed in range(8, 16):  # only a view of each result survives: it must protect the buffer too
            ids = _ids(seed)
            views.append((ids[3:], s.gather(ids)[3:]))
        for ids, out in held + views:
            assert torch.equal(out, graph.features[ids])


def test_dropped_results_free_their_slot() -> None:
    graph = make_graph(num_nodes=300, feat_dim=16)
    with registry.create("cpu-centric") as s:
        s.prepare(graph, DEVICE)
        ptrs = set()
        for seed in range(12):
            ids = _ids(seed)
            out = s.gather(ids)
            assert torch.equal(out, graph.features[ids])
            ptrs.add(out.data_ptr())
            del out
        assert len(ptrs) <= 2  # prefetch 0: a ring of 2 slots, each reused once its result is dropped
        smaller = s.gather(_ids(99, n=50))  # a smaller batch fits in a slot: still exact
        assert torch.equal(smaller, graph.features[_ids(99, n=50)])


def test_staging_is_sized_before_the_measured_window_and_growth_inside_it_is_a_note() -> None:
    from accessbench.kernels import create
    from tests.conftest import make_graph

    graph = make_graph(4000, 16, seed=3)
    with create("cpu-centric") as s:
        s.prepare(graph, torch.device("cpu"))
        for n in (100, 300, 800):  # warm-up batches that grow, as the first batches of a run do
            out = s.gather(torch.randint(0, graph.num_nodes, (n,)))
            del out
        s.before_measure()
        for n in (500, 800, 950):  # within the warm-up's largest (800) plus 25%
            out = s.gather(torch.randint(0, graph.num_nodes, (n,)))
            assert out.shape[0] == n
            del out
        assert s.measure_notes() == []
        out = s.gather(torch.randint(0, graph.num_nodes, (3000,)))  # outgrows it: an allocation in the window
        ids = torch.randint(0, graph.num_nodes, (7,))
        assert torch.equal(s.gather(ids), graph.features[ids])
        del out
        (note,) = s.measure_notes()
        assert "inside the measured window" in note and f"{int(800 * 1.25) + 1} rows reserved" in note


def test_prefetch_thread_and_consumer_split_the_intra_op_threads() -> None:
    from accessbench.kernels.strategies.cpu_centric import split_threads

    assert split_threads(1) == (1, 1) and split_threads(2) == (1, 1) and split_threads(8) == (4, 4)
    assert split_threads(3) == (1, 2)
    graph = make_graph(num_nodes=300, feat_dim=16)
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    seen: list[int] = []
    try:
        with registry.create("cpu-centric", threads=2, prefetch=2) as s:
            s.prepare(graph, DEVICE)
            seeds = (_ids(i, n=16) for i in range(4))
            loader = s.load(seeds, [3, 2], generator=torch.Generator().manual_seed(0))
            for loaded in loader:
                seen.append(torch.get_num_threads())  # the consumer's count while the prefetch thread runs
                assert torch.equal(loaded.features, graph.features[loaded.batch.node_ids])
            assert s._workers == []
            assert s.measure_notes()[0].startswith("prefetch: the background thread samples and gathers with 1")
            assert torch.get_num_threads() == 2  # restored when the loader ended
    finally:
        torch.set_num_threads(saved)
    assert seen == [1, 1, 1, 1]

"""What ``cached`` times and counts: every piece of work its gathers depend on runs inside a phase and is reported
with the batch it serves, and counters taken after ``reset_stats()`` cover exactly the batches consumed since."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest
import torch

from accessbench.kernels import base as kernels_base
from accessbench.kernels import registry
from accessbench.kernels.errors import InvalidIds
from tests.conftest import make_graph

SMALL = {"presample_fanouts": "5,5", "presample_batch_size": 32, "presample_batches": 4, "hybrid_lookahead": 2,
         "superbatch": 4}
DELAY = 0.05  # seconds a wrapped step sleeps: a lower bound the phase that holds it must reach


def _strategy(graph, **options):
    s = registry.create("cached", **{**SMALL, **options})
    s.prepare(graph, torch.device("cpu"))
    return s


def _seeds(graph, n=10, size=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, graph.num_nodes, (size,), generator=g) for _ in range(n)]


class _ActivePhases:
    """A phase hook that records which phases are open."""

    def __init__(self) -> None:
        self.open: list[str] = []

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.open.append(name)
        try:
            yield
        finally:
            self.open.pop()


def test_gather_moves_and_checks_ids_inside_its_phase(monkeypatch: pytest.MonkeyPatch) -> None:
    graph = make_graph(200, 8, seed=1)
    s = _strategy(graph, policy="lru", cache_fraction=0.2)
    hook = _ActivePhases()
    s.phase_hook = hook
    seen: list[list[str]] = []
    real = kernels_base.check_ids  # the one validator (AccessStrategy.valid_ids calls it)

    def spy(ids, num_nodes):
        seen.append(list(hook.open))
        return real(ids, num_nodes)

    monkeypatch.setattr(kernels_base, "check_ids", spy)
    ids = torch.tensor([5, 3, 5, 199])
    with s.collect_phases() as ph:
        assert torch.equal(s.gather(ids), graph.features[ids])
    assert seen == [["gather"]] and "gather" in ph
    with pytest.raises(InvalidIds, match="out of range"):
        s.gather(torch.tensor([0, 200]))
    assert s.stats().rows == 4  # the rejected call counted nothing
    s.close()


@pytest.mark.parametrize("policy", ["lru", "belady"])
def test_victim_prefetch_is_timed_with_the_batch_it_serves(policy: str) -> None:
    graph = make_graph(400, 16, seed=1)
    s = _strategy(graph, policy=policy, cache_fraction=0.15, victim_buffer=True, victim_fraction=0.2)
    hook = _ActivePhases()
    s.phase_hook = hook
    real = s.prefetch_victims
    calls: list[list[str]] = []

    def slow_prefetch(node_ids: torch.Tensor) -> int:
        calls.append(list(hook.open))
        time.sleep(DELAY)
        return real(node_ids)

    s.prefetch_victims = slow_prefetch  # type: ignore[method-assign]
    batches = list(s.load(_seeds(graph), [5, 5], generator=torch.Generator().manual_seed(3)))
    assert calls and all(open_ == ["gather"] for open_ in calls)
    # the prefetch made during step i is reported in batch i + 1's gather seconds
    got = [b.phase_s["gather"] for b in batches]
    assert sum(got) >= len(calls) * DELAY
    if policy == "lru":  # one batch ahead, no plans: every batch after the first had one made for it
        assert len(calls) == len(batches) - 1
        assert all(t >= DELAY for t in got[1:])
    for b in batches:
        assert not b.overlapped  # no CUDA: nothing ran behind compute
        assert torch.equal(b.features, graph.features[b.batch.node_ids])
    st = s.stats()
    assert st.extras["victim_prefetch_rows"] >= st.extras.get("victim_prefetched_rows", 0) > 0
    if policy == "lru":
        assert "plan_s" not in st.extras  # nothing planned or hinted
    s.close()


def test_belady_plan_is_timed_in_the_sample_phase() -> None:
    graph = make_graph(300, 8, seed=2)
    s = _strategy(graph, policy="belady", cache_fraction=0.1)
    hook = _ActivePhases()
    s.phase_hook = hook
    real = s.plan
    calls: list[list[str]] = []

    def slow_plan(trace) -> None:
        calls.append(list(hook.open))
        time.sleep(DELAY)
        real(trace)

    s.plan = slow_plan  # type: ignore[method-assign]
    batches = list(s.load(_seeds(graph, n=10), [5, 5], generator=torch.Generator().manual_seed(1)))
    assert len(calls) == 3 and all(open_ == ["sample"] for open_ in calls)  # superbatches of 4: 4 + 4 + 2
    for i in (0, 4, 8):  # the batch each plan was made before reports it
        assert batches[i].phase_s["sample"] >= DELAY
    assert s.stats().extras["plan_s"] >= 3 * DELAY
    s.reset_stats()
    assert "plan_s" not in s.stats().extras
    s.close()


def test_hybrid_hints_are_timed_in_the_sample_phase() -> None:
    graph = make_graph(300, 8, seed=3)
    s = _strategy(graph, policy="hybrid", cache_fraction=0.1)
    hook = _ActivePhases()
    s.phase_hook = hook
    real = s.hint
    calls: list[list[str]] = []

    def slow_hint(node_ids: torch.Tensor) -> None:
        calls.append(list(hook.open))
        time.sleep(DELAY)
        real(node_ids)

    s.hint = slow_hint  # type: ignore[method-assign]
    batches = list(s.load(_seeds(graph, n=6), [5, 5], generator=torch.Generator().manual_seed(1)))
    assert len(calls) == 6 and all(open_ == ["sample"] for open_ in calls)
    assert all(b.phase_s["sample"] >= DELAY for b in batches)
    assert s.stats().extras["plan_s"] >= 6 * DELAY
    s.close()


@pytest.mark.parametrize("options", [
    {"policy": "degree"},
    {"policy": "lru", "victim_buffer": True},
    {"policy": "hybrid"},
    {"policy": "belady"},
])
def test_counters_cover_exactly_the_batches_consumed_after_reset(options: dict) -> None:
    """Bytes the backing counts while sampling (zero-copy's CSR reads) apply when the batch is consumed, so
    sampling ahead (belady's superbatch, hybrid's window, the victim prefetch) does not shift them."""
    graph = make_graph(300, 8, seed=4)
    s = _strategy(graph, cache_fraction=0.15, **options)
    backing = s._backing
    real = backing.sample

    def counting_sample(seeds, fanouts, *, generator):
        batch = real(seeds, fanouts, generator=generator)
        backing._stats.add_bytes("disk", int(batch.node_ids.numel()) ** 2)  # a per-batch, sampling-time count
        return batch

    backing.sample = counting_sample  # type: ignore[method-assign]
    it = s.load(_seeds(graph, n=14), [5, 5], generator=torch.Generator().manual_seed(2))
    for _ in range(3):  # warm-up
        next(it)
    s.reset_stats()
    consumed = [next(it) for _ in range(6)]
    st = s.stats()
    assert st.rows == sum(int(b.batch.node_ids.numel()) for b in consumed)
    assert st.bytes_by_tier["disk"] == sum(int(b.batch.node_ids.numel()) ** 2 for b in consumed)
    assert sum(st.hits.values()) + st.misses.get("victim", st.misses["device"]) == st.rows
    it.close()
    s.close()

"""One id validator, and a trusted path: ids the strategy's own sampler produced are not range-checked again."""

from __future__ import annotations

import pytest
import torch

from accessbench.kernels import base, create
from accessbench.kernels.errors import InvalidIds
from accessbench.workloads.store import open_store


def _count_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = base.check_ids

    def counting(ids: torch.Tensor, num_nodes: int) -> torch.Tensor:
        calls.append(int(ids.numel()))
        return real(ids, num_nodes)

    monkeypatch.setattr(base, "check_ids", counting)
    return calls


@pytest.mark.parametrize("name", ["device-resident", "cached", "out-of-core"])
def test_load_does_not_recheck_the_samplers_ids_but_gather_checks_callers(name: str, tiny_store,  # type: ignore[no-untyped-def]
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    tiny_graph = open_store(tiny_store)
    calls = _count_checks(monkeypatch)
    opts = {"pipeline": False} if name == "out-of-core" else {}
    with create(name, **opts) as s:
        s.prepare(tiny_graph, torch.device("cpu"))
        seeds = [torch.arange(0, 64), torch.arange(64, 128)]
        for lb in s.load(seeds, [5, 5], generator=torch.Generator().manual_seed(0)):
            assert torch.equal(lb.features, tiny_graph.features[lb.batch.node_ids])
        gather_checks = [n for n in calls if n > 64]  # the seeds' own check (64 ids) is the caller's input
        assert gather_checks == [], gather_checks
        calls.clear()
        ids = torch.randint(0, tiny_graph.num_nodes, (100,))
        assert torch.equal(s.gather(ids), tiny_graph.features[ids])
        assert 100 in calls  # a caller's ids are checked
        with pytest.raises(InvalidIds):
            s.gather(torch.tensor([tiny_graph.num_nodes]))
        assert not s.ids_trusted()

"""Two ranks over gloo (CPU): partitioned caches return exact rows, count peer bytes correctly, and the simulator
reproduces each rank's hit counts on the same batches."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from accessbench.kernels import registry
from accessbench.kernels.strategies.cached import PolicyConfig, degree_importance, initial_ids, presample_importance
from accessbench.suite.sim.simulator import SimConfig, Trace, simulate
from tests.conftest import make_graph

WORLD = 2
SMALL = {"presample_fanouts": "5,5", "presample_batch_size": 32, "presample_batches": 4, "hybrid_lookahead": -1,
         "superbatch": 3}
SCENARIOS = [("degree", "partition"), ("lru", "partition"), ("hybrid", "partition"), ("belady", "partition"),
             ("degree", "replicate")]


def _graph():
    return make_graph(600, 8, seed=11)


def _seeds(rank: int, n: int = 7):
    g = torch.Generator().manual_seed(100 + rank)
    return [torch.randint(0, 600, (20,), generator=g) for _ in range(n)]


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        graph = _graph()
        results = {}
        for policy, placement in SCENARIOS:
            s = registry.create("cached", policy=policy, placement=placement, cache_fraction=0.1, **SMALL)
            s.prepare(graph, torch.device("cpu"))
            batches, exact = [], True
            for loaded in s.load(_seeds(rank), [5, 5], generator=torch.Generator().manual_seed(rank)):
                exact &= torch.equal(loaded.features, graph.features[loaded.batch.node_ids])
                batches.append(loaded.batch.node_ids)
            # a direct gather with duplicates (static policies only: the others follow their plan/hints)
            if policy == "degree":
                ids = torch.randint(0, 600, (50,), generator=torch.Generator().manual_seed(rank))
                ids = torch.cat([ids, ids[:5]])
                exact &= torch.equal(s.gather(ids), graph.features[ids])
                batches.append(ids.unique(sorted=False))
            st = s.stats()
            results[f"{policy}-{placement}"] = {
                "exact": bool(exact), "rows": st.rows, "hits": st.hits, "peer_bytes": st.bytes_by_tier.get("peer", 0),
                "device_bytes": st.bytes_by_tier.get("device", 0), "extras_ranks": st.extras["ranks"],
                "admission_fetch_rows": st.extras.get("admission_fetch_rows", 0),
            }
            torch.save(batches, Path(out) / f"{policy}-{placement}-rank{rank}.pt")
            s.close()
        (Path(out) / f"rank{rank}.json").write_text(json.dumps(results))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ranks")
    mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=True)
    return out


def _results(out: Path) -> list[dict]:
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(WORLD)]


def test_partition_rows_are_exact(two_ranks: Path) -> None:
    for res in _results(two_ranks):
        for name, r in res.items():
            assert r["exact"], name
            assert r["extras_ranks"] == WORLD


def test_partition_peer_bytes_are_counted(two_ranks: Path) -> None:
    graph = _graph()
    imp = {"degree": degree_importance(graph)}
    cap = int(0.1 * graph.feature_bytes) // graph.row_bytes
    shards = [initial_ids("degree", importance=imp, capacity=cap, rank=r, world=WORLD, placement="partition")
              for r in range(WORLD)]
    for rank, res in enumerate(_results(two_ranks)):
        r = res["degree-partition"]
        batches = torch.load(two_ranks / f"degree-partition-rank{rank}.pt")
        own = sum(int(torch.isin(b, shards[rank]).sum()) for b in batches[:-1])
        peer = sum(int(torch.isin(b, shards[1 - rank]).sum()) for b in batches[:-1])
        # the last gather had duplicates: hits count every requested row, peer bytes each unique row fetched once
        dup = torch.randint(0, 600, (50,), generator=torch.Generator().manual_seed(rank))
        dup = torch.cat([dup, dup[:5]])
        own_hits = own + int(torch.isin(dup, shards[rank]).sum())
        peer_hits = peer + int(torch.isin(dup, shards[1 - rank]).sum())
        peer_rows = peer + int(torch.isin(batches[-1], shards[1 - rank]).sum())
        assert r["hits"]["device"] == own_hits
        assert r["hits"]["peer"] == peer_hits
        assert r["peer_bytes"] == peer_rows * graph.row_bytes > 0
        replicated = res["degree-replicate"]
        assert replicated["peer_bytes"] == 0 and "peer" not in replicated["hits"]


@pytest.mark.parametrize("policy", ["lru", "hybrid", "belady"])
def test_simulator_matches_two_ranks(two_ranks: Path, policy: str) -> None:
    graph = _graph()
    imp = {"degree": degree_importance(graph),
           "presample": presample_importance(graph, fanouts=(5, 5), batch_size=32, batches=4, seed=1234)}
    batches = [torch.load(two_ranks / f"{policy}-partition-rank{r}.pt") for r in range(WORLD)]
    trace = Trace({"num_nodes": graph.num_nodes, "row_bytes": graph.row_bytes, "batch_size": 20}, batches, imp)
    cfg = PolicyConfig(hybrid_lookahead=-1, presample_batches=4)
    sim = simulate(trace, SimConfig(gpus=WORLD, cache_fraction=0.1, policy=policy, placement="partition",
                                    superbatch=3, policy_config=cfg))
    for rank, res in enumerate(_results(two_ranks)):
        r = res[f"{policy}-partition"]
        steps = sim.per_step[rank]
        assert r["hits"].get("device", 0) == sum(c["device"] for c in steps)
        assert r["hits"].get("peer", 0) == sum(c["peer"] for c in steps)
        assert r["peer_bytes"] == sum(c["peer"] for c in steps) * graph.row_bytes
        assert r["device_bytes"] == graph.row_bytes * sum(2 * c["served"] + c["admitted"] for c in steps)
        assert r["admission_fetch_rows"] == sum(c["fetch_extra"] for c in steps)

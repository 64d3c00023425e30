"""The simulator: trace files, exact agreement with the real strategy, placements, the link model, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from accessbench.kernels import registry
from accessbench.kernels.strategies.cached import PolicyConfig
from accessbench.suite.cli import main
from accessbench.suite.sim.hardware import (
    HardwareError,
    Links,
    links_from_probe,
    load_profile,
    profile_names,
    project_epoch,
    step_bytes,
)
from accessbench.suite.sim.simulator import SimConfig, Trace, TraceError, simulate
from accessbench.suite.sim.trace import record_trace
from accessbench.workloads.batches import seed_batches
from accessbench.workloads.config import Workload
from tests.conftest import make_graph

POLICIES = ("degree", "presample", "lru", "clock", "hybrid", "belady")
WL = Workload(name="fixture", store="unused", batch_size=24, fanouts=(5, 5), seed=3)
OPTS = {"presample_fanouts": "5,5", "presample_batch_size": 24, "presample_batches": 4, "presample_seed": 1234,
        "hybrid_lookahead": -1, "superbatch": 4}
CFG = PolicyConfig(hybrid_lookahead=-1, presample_batches=4)


@pytest.fixture(scope="module")
def graph():
    return make_graph(500, 8, seed=21)


@pytest.fixture(scope="module")
def trace(graph):
    return record_trace(WL, steps=14, graph=graph, presample_batches=4, presample_seed=1234)


@pytest.mark.parametrize("victim", [False, True])
@pytest.mark.parametrize("policy", POLICIES)
def test_simulator_reproduces_the_strategy(graph, trace, policy: str, victim: bool) -> None:
    """The strategy's load() samples the same batches the trace recorded; hit counts must agree exactly."""
    s = registry.create("cached", policy=policy, cache_fraction=0.12, victim_buffer=victim, victim_fraction=0.1,
                        **OPTS)
    s.prepare(graph, torch.device("cpu"))
    seeds = seed_batches(graph, WL.batch_size, seed=WL.seed, steps=14)
    for loaded, recorded in zip(s.load(seeds, WL.fanouts, generator=torch.Generator().manual_seed(WL.seed)),
                                trace.batches[0]):
        assert torch.equal(loaded.batch.node_ids, recorded)
        assert torch.equal(loaded.features, graph.features[recorded])
    st = s.stats()
    sim = simulate(trace, SimConfig(cache_fraction=0.12, policy=policy, victim_buffer=victim, victim_fraction=0.1,
                                    superbatch=4, policy_config=CFG))
    assert st.rows == sim.rows
    assert st.hits["device"] == sim.hits_device
    assert st.hits.get("victim", 0) == sim.hits_victim
    assert st.extras["admitted_rows"] == sim.admitted
    assert st.extras["evicted_rows"] == sim.evicted
    assert st.bytes_by_tier["device"] == graph.row_bytes * sum(2 * c["served"] + c["admitted"]
                                                               for c in sim.per_step[0])
    if victim:
        assert st.extras.get("victim_writeback_bytes", 0) == graph.row_bytes * sum(c["writeback"]
                                                                                   for c in sim.per_step[0])
    s.close()


def test_partition_equals_one_larger_static_cache(trace) -> None:
    # a static hot set dealt over N GPUs is the hot set of one cache N times larger
    for n in (2, 4):
        one = simulate(trace, SimConfig(gpus=1, cache_fraction=0.02 * n, policy="degree"))
        part = simulate(trace, SimConfig(gpus=n, cache_fraction=0.02, policy="degree", placement="partition"))
        seq = trace.for_gpus(n)
        used = sum(int(b.numel()) for rank in seq for b in rank)
        assert part.rows == used
        if n == 1 or len(trace.global_sequence()) % n == 0:
            assert part.hits_device + part.hits_peer == one.hits_device
        assert part.hits_peer > 0
        rep = simulate(trace, SimConfig(gpus=n, cache_fraction=0.02, policy="degree", placement="replicate"))
        assert rep.hits_peer == 0 and rep.hit_rate < part.hit_rate


def test_trace_round_trip_and_checks(trace, tmp_path: Path) -> None:
    path = trace.save(tmp_path / "t.pt")
    header = json.loads((tmp_path / "t.json").read_text())
    assert header["num_nodes"] == 500 and header["fanouts"] == [5, 5] and header["payload"] == "t.pt"
    for name in ("t.pt", "t.json"):
        back = Trace.load(tmp_path / name)
        assert all(torch.equal(a, b) for a, b in zip(back.batches[0], trace.batches[0]))
        assert torch.equal(back.importance["presample"], trace.importance["presample"])
    header["payload_sha256"] = "0" * 64
    (tmp_path / "t.json").write_text(json.dumps(header))
    with pytest.raises(TraceError, match="checksum"):
        Trace.load(path)
    (tmp_path / "junk.pt").write_bytes(b"not a trace")
    with pytest.raises(TraceError, match="not a readable trace"):
        Trace.load(tmp_path / "junk.pt")
    with pytest.raises(TraceError, match="does not exist"):
        Trace.load(tmp_path / "missing.pt")


def test_batches_go_to_ranks_round_robin(trace) -> None:
    seq = trace.global_sequence()
    split = trace.for_gpus(3)
    assert [len(r) for r in split] == [len(seq) // 3] * 3
    assert torch.equal(split[1][2], seq[2 * 3 + 1])
    with pytest.raises(TraceError, match="fewer than"):
        trace.for_gpus(100)


def test_record_trace_assigns_seeds_per_rank(graph) -> None:
    t = record_trace(WL, steps=3, ranks=2, graph=graph, presample_batches=2)
    assert len(t.batches) == 2 and all(len(r) == 3 for r in t.batches)
    seeds = list(seed_batches(graph, WL.batch_size, seed=WL.seed, steps=6))
    for j, s in enumerate(seeds):  # batch j is rank j % 2's, seeds first in its node ids
        node_ids = t.batches[j % 2][j // 2]
        uniq = list(dict.fromkeys(s.tolist()))
        assert node_ids[: len(uniq)].tolist() == uniq


def test_step_bytes_per_backing() -> None:
    c = {"rows": 10, "device": 4, "peer": 2, "victim": 1, "served": 5, "admitted": 3, "fetch_extra": 1,
         "writeback": 2}
    r = 100
    zc = step_bytes(c, r, backing="zero-copy")
    assert zc["device"] == r * (2 * 5 + 3) and zc["peer"] == 2 * r
    assert zc["pcie_h2d"] == r * (1 + 4) and zc["pcie_d2h"] == 2 * r and zc["host"] == r * (1 + 2 + 4)
    cc = step_bytes(c, r, backing="cpu-centric")
    assert cc["host"] == r * (1 + 2 + 3 * 4)
    ooc = step_bytes(c, 5000, backing="out-of-core")
    assert ooc["disk"] == 4 * 2 * 4096 and ooc["disk_ios"] == 8 and ooc["pcie_h2d"] == 5000 * 5
    with pytest.raises(ValueError, match="valid"):
        step_bytes(c, r, backing="carrier-pigeon")


def test_projection_by_hand() -> None:
    s = {"device": 0, "peer": 0, "pcie_h2d": 2e9, "pcie_d2h": 0, "host": 4e9, "disk": 0, "disk_ios": 0}
    links = Links("hand", gpus=2, pcie_gbps=2.0, host_memory_gbps=4.0)
    serial, overlap, notes = project_epoch([[s], [s]], links, num_train=400, batch_size=100, gpus=2, row_bytes=1)
    # per step: PCIe 1 s per GPU (parallel), host 8 GB / 4 GB/s = 2 s (shared); 2 steps per epoch
    assert serial == pytest.approx(2 * (1 + 2)) and overlap == pytest.approx(2 * 2)
    assert "2 steps per epoch" in notes[0]
    none, _, why = project_epoch([[s]], Links("nopcie", host_memory_gbps=1.0), num_train=1, batch_size=1, gpus=1,
                                 row_bytes=1)
    assert none is None and "pcie" in why[0]
    few, _, why = project_epoch([[s]] * 3, links, num_train=1, batch_size=1, gpus=3, row_bytes=1)
    assert few is None and "fewer than 3" in why[0]


def test_bundled_profiles_load() -> None:
    names = profile_names()
    assert {"dgx-h100-nvlink", "pcie-gen5-host", "pcie-gen5-4nvme"} <= set(names)
    for name in names:
        links = load_profile(name)
        assert links.pcie_gbps and links.device_gbps and links.gpus
        assert set(links.sources) >= {"device_gbps", "pcie_gbps"}
    assert load_profile("pcie-gen5-4nvme").disk_iops == 4e6


def test_bad_profile_and_probe(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[links]\nwarp_gbps = 3\n")
    with pytest.raises(HardwareError, match="warp_gbps"):
        load_profile(str(bad))
    with pytest.raises(HardwareError, match="valid"):
        load_profile("no-such-machine")
    probe = tmp_path / "probe.json"
    probe.write_text(json.dumps({"h2d_pinned_gbps": {"value": 24.5, "method": "x"}, "d2d_gbps": {"value": None},
                                 "disk_iops_qd128": {"value": 5e5, "method": "fio"}}))
    links = links_from_probe(probe)
    assert links.pcie_gbps == 24.5 and links.device_gbps is None and links.disk_iops == 5e5
    assert links.peer_gbps is None


def test_cli_trace_and_simulate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tiny.pt"
    assert main(["trace", "--workload", "tiny", "--steps", "4", "--ranks", "2", "-o", str(out)]) == 0
    assert main(["simulate", str(out), "--gpus", "1,2", "--cache-fraction", "0.1", "--policies", "degree,lru",
                 "--hardware", "dgx-h100-nvlink", "-o", str(tmp_path / "sim.jsonl")]) == 0
    text = capsys.readouterr().out
    assert "SIMULATED" in text
    records = [json.loads(line) for line in (tmp_path / "sim.jsonl").read_text().splitlines()]
    assert len(records) == 2 + 2 * 2  # one GPU: replicate only; two GPUs: both placements
    assert all(r["simulated"] is True and r["device"] == "simulated" for r in records)
    extras = [r["access_extras"] for r in records]  # records of the schema: the simulator's own figures are extras
    assert all(e["projected_epoch_s"] is not None and e["projected_epoch_s"] > 0 for e in extras)
    assert {e["placement"] for e in extras} == {"single", "replicate", "partition"}
    assert all(r["hit_rate"] is not None and r["status"] == "ok" for r in records)
    assert main(["simulate", str(out), "--policies", "belady", "--cache-fraction", "0.2", "--victim-buffer", "both",
                 "--backing", "out-of-core", "--hardware", "dgx-h100-nvlink", "-o", str(tmp_path / "s.md")]) == 0
    md = (tmp_path / "s.md").read_text()
    assert md.startswith("SIMULATED") and "belady +victim" in md
    records = [line for line in md.splitlines() if "belady" in line]
    assert all(line.rstrip(" |").endswith("-") for line in records)  # no disk link in the profile: no time
    assert main(["simulate", str(out), "--policies", "degree", "-o", str(tmp_path / "s.csv")]) == 0
    assert "simulated" in (tmp_path / "s.csv").read_text().splitlines()[0]


def test_cli_rejects_bad_lists(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["simulate", str(tmp_path / "x.pt"), "--policies", "fifo"])
    assert "valid" in capsys.readouterr().err
    assert main(["simulate", str(tmp_path / "x.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err

"""Trace replay for the ``cached`` strategy: hit rates and bytes per link for N GPUs x cache sizes x policies x
placements, and a projected data-access time per epoch from link bandwidths. Every result is labelled simulated.

The replay runs the same policy, placement and victim-buffer classes (``accessbench.kernels.strategies.cached``) as the real strategy, on the
same batches in the same order, so its hit counts equal the strategy's by construction. A trace holds the global
sequence of batches (each a batch's unique node ids); replaying it on G GPUs gives batch ``j`` to rank ``j % G`` at
step ``j // G`` (each rank trains on its own seeds) and drops a tail shorter than G.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from accessbench.kernels.errors import AccessBenchError
from accessbench.kernels.strategies.cached import (
    BeladyPolicy,
    CachePolicy,
    Ownership,
    PolicyConfig,
    VictimIndex,
    initial_ids,
    make_policy,
    owner_union,
    split_requests,
)
from accessbench.kernels.strategies.cached.policies import STATIC_POLICIES
from accessbench.suite.measure.distributed import rank_batches

from .hardware import Links, project_epoch, step_bytes

__all__ = ["TRACE_FORMAT", "SimConfig", "SimResult", "Trace", "TraceError", "as_record_fields", "cache_capacity",
           "sim_record", "simulate"]

TRACE_FORMAT = "accessbench-trace"
TRACE_VERSION = 1


class TraceError(AccessBenchError):
    """A trace file that is missing, of another format, or inconsistent with its JSON header."""


@dataclass
class Trace:
    """Per-rank batches of unique node ids (``batches[rank][step]``), the header, and static importance scores."""

    header: dict[str, Any]
    batches: list[list[torch.Tensor]]
    importance: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def num_nodes(self) -> int:
        return int(self.header["num_nodes"])

    @property
    def row_bytes(self) -> int:
        return int(self.header["row_bytes"])

    def global_sequence(self) -> list[torch.Tensor]:
        """The batches in global order: step-major, rank-minor (the order the recorder drew them)."""
        steps = min((len(b) for b in self.batches), default=0)
        return [self.batches[r][i] for i in range(steps) for r in range(len(self.batches))]

    def for_gpus(self, gpus: int) -> list[list[torch.Tensor]]:
        """The batches each of ``gpus`` ranks sees: global batch ``j`` goes to rank ``j % gpus``."""
        seq = self.global_sequence()
        steps = len(seq) // gpus
        if steps == 0:
            raise TraceError(f"the trace has {len(seq)} batches, fewer than {gpus} GPUs need for one step")
        return [list(rank_batches(seq[:steps * gpus], r, gpus)) for r in range(gpus)]

    def save(self, path: Path) -> Path:
        """Write the payload to ``path`` (torch.save) and the header to ``path`` with suffix ``.json``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        small = self.num_nodes < 2**31
        flat, offsets = [], []
        for rank in self.batches:
            sizes = torch.tensor([b.numel() for b in rank], dtype=torch.int64)
            offsets.append(torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(sizes, 0)]))
            ids = torch.cat(rank) if rank else torch.empty(0, dtype=torch.int64)
            flat.append(ids.to(torch.int32 if small else torch.int64))
        payload = {"format": TRACE_FORMAT, "version": TRACE_VERSION, "header": self.header, "ids": flat,
                   "offsets": offsets, "importance": self.importance}
        torch.save(payload, path)
        header = dict(self.header, format=TRACE_FORMAT, version=TRACE_VERSION, payload=path.name,
                      payload_sha256=_sha256(path))
        path.with_suffix(".json").write_text(json.dumps(header, indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, path: Path | str) -> Trace:
        """Read a trace written by ``save`` (the ``.pt`` payload or its ``.json`` header may be named)."""
        path = Path(path)
        if path.suffix == ".json":
            path = path.with_name(json.loads(path.read_text())["payload"])
        if not path.is_file():
            raise TraceError(f"trace {path} does not exist; record one with `accessbench trace`")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a trace"
            raise TraceError(f"{path} is not a readable trace file ({exc})") from None
        if not isinstance(payload, dict) or payload.get("format") != TRACE_FORMAT:
            raise TraceError(f"{path} is not an {TRACE_FORMAT} file")
        if payload.get("version") != TRACE_VERSION:
            raise TraceError(f"{path}: trace version {payload.get('version')}; this build reads {TRACE_VERSION}")
        header_file = path.with_suffix(".json")
        if header_file.is_file():
            expected = json.loads(header_file.read_text()).get("payload_sha256")
            if expected and expected != _sha256(path):
                raise TraceError(f"{path} does not match its header {header_file} (payload checksum differs)")
        batches = [list(torch.split(ids.to(torch.int64), torch.diff(off).tolist()))
                   for ids, off in zip(payload["ids"], payload["offsets"])]
        return cls(dict(payload["header"]), batches, dict(payload.get("importance", {})))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def cache_capacity(fraction: float, num_nodes: int, row_bytes: int) -> int:
    """Rows a cache of ``fraction`` of the table holds (the ``cached`` strategy's rule)."""
    return min(num_nodes, int(fraction * num_nodes * row_bytes) // row_bytes)


@dataclass(frozen=True)
class SimConfig:
    """One simulated configuration. ``superbatch`` 0 lets belady plan the whole trace (the upper bound)."""

    gpus: int = 1
    cache_fraction: float = 0.2
    policy: str = "degree"
    placement: str = "replicate"
    victim_buffer: bool = False
    victim_fraction: float = 0.05
    backing: str = "zero-copy"
    superbatch: int = 0
    policy_config: PolicyConfig = field(default_factory=PolicyConfig)

    def label(self) -> dict[str, Any]:
        """The options as a flat dict (for records)."""
        d = dataclasses.asdict(self)
        d.update(d.pop("policy_config"))
        return d


@dataclass
class SimResult:
    """Counts per rank and step (rank-major lists) and totals; ``links`` holds bytes per link per rank."""

    config: SimConfig
    capacity: int
    steps: int
    rows: int = 0
    hits_device: int = 0
    hits_peer: int = 0
    hits_victim: int = 0
    admitted: int = 0
    evicted: int = 0
    admission_fetch_rows: int = 0
    peer_control_bytes: int = 0
    per_step: list[list[dict[str, int]]] = field(default_factory=list)  # [rank][step] counters

    @property
    def hit_rate(self) -> float | None:
        """Rows served by any cache tier (device, peer shard, victim ring) over rows needed."""
        return (self.hits_device + self.hits_peer + self.hits_victim) / self.rows if self.rows else None

    @property
    def misses(self) -> int:
        """Rows the backing path served."""
        return self.rows - self.hits_device - self.hits_peer - self.hits_victim


def _policies(trace: Trace, cfg: SimConfig, capacity: int, partition: bool) -> list[CachePolicy]:
    n = trace.num_nodes
    shared = cfg.policy in STATIC_POLICIES and not partition  # replicated static caches are identical
    out: list[CachePolicy] = []
    for r in range(cfg.gpus):
        if shared and out:
            out.append(out[0])
            continue
        init = initial_ids(cfg.policy, importance=trace.importance, capacity=capacity, rank=r, world=cfg.gpus,
                           placement="partition" if partition else "replicate", config=cfg.policy_config)
        out.append(make_policy(cfg.policy, capacity, n, importance=trace.importance, initial_ids=init,
                               config=cfg.policy_config))
    return out


def simulate(trace: Trace, cfg: SimConfig) -> SimResult:
    """Replay ``trace`` on ``cfg.gpus`` ranks with ``cfg``'s cache; exact counts, no timing."""
    if cfg.victim_buffer and cfg.placement == "partition" and cfg.gpus > 1:
        raise ValueError("victim_buffer works with placement=replicate")
    n, rb, world = trace.num_nodes, trace.row_bytes, cfg.gpus
    per_rank = trace.for_gpus(world)
    steps = len(per_rank[0])
    capacity = cache_capacity(cfg.cache_fraction, n, rb)
    partition = cfg.placement == "partition" and world > 1
    policies = _policies(trace, cfg, capacity, partition)
    ownership = Ownership.for_policy(cfg.policy, world=world, num_nodes=n, importance=trace.importance,
                                     capacity=capacity, config=cfg.policy_config) if partition else None
    victims = [VictimIndex(max(1, int(cfg.victim_fraction * n)), n) if cfg.victim_buffer else None
               for _ in range(world)]
    res = SimResult(cfg, capacity, steps, per_step=[[] for _ in range(world)])
    # the shard batches each policy sees (identical to what the strategy's routing produces)
    if partition:
        assert ownership is not None
        shard_seq: list[list[torch.Tensor]] = [[] for _ in range(world)]
        routes = []
        for i in range(steps):
            routed = []
            for q in range(world):
                order, counts = split_requests(ownership.owners(per_rank[q][i]), world)
                routed.append((order, counts.tolist()))
            for r in range(world):
                received = torch.cat([per_rank[q][i][routed[q][0]][sum(routed[q][1][:r]):sum(routed[q][1][:r + 1])]
                                      for q in range(world)])
                shard_seq[r].append(received)
            routes.append(routed)
        shard_batches = [[owner_union(b) for b in seq] for seq in shard_seq]
    step_batches = [[sb[0] for sb in shard_batches[r]] for r in range(world)] if partition else per_rank
    horizon = cfg.superbatch or steps
    ahead = cfg.policy_config.hybrid_lookahead if cfg.policy == "hybrid" else 0
    for i in range(steps):
        plan_writeback = [0] * world
        if ahead:  # the strategy's load() keeps the current batch and `lookahead` more sampled and hinted
            if i == 0:
                for r in range(world):
                    policies[r].hint(step_batches[r][:1])  # an auto window is fixed by the first batch
                if partition:  # shards agree on the widest window (the strategy all-reduces it)
                    widest = max(p.lookahead for p in policies)
                    for p in policies:
                        p.lookahead = widest
                for r in range(world):
                    policies[r].hint(step_batches[r][1: policies[r].lookahead + 1])
            else:
                for r in range(world):
                    w = policies[r].lookahead
                    policies[r].hint(step_batches[r][i + w: i + w + 1])
        if isinstance(policies[0], BeladyPolicy) and i % horizon == 0:
            for r in range(world):
                dropped, _ = policies[r].plan(step_batches[r][i: i + horizon])
                v = victims[r]
                if v is not None:
                    plan_writeback[r] = int(v.push(dropped)[1].numel())
        counters = [{"rows": int(per_rank[q][i].numel()), "device": 0, "peer": 0, "victim": 0, "served": 0,
                     "admitted": 0, "fetch_extra": 0, "control": 0, "writeback": plan_writeback[q]}
                    for q in range(world)]
        if partition:
            _partition_step(i, per_rank, routes[i], shard_batches, policies, counters, res)
        else:
            for q in range(world):
                ids = per_rank[q][i]
                step = policies[q].step(ids)
                c = counters[q]
                c["device"] = c["served"] = int(step.hit.sum())
                c["admitted"] = int(step.admitted.numel())
                res.evicted += int(step.evicted_ids.numel())
                v = victims[q]
                if v is not None:
                    c["victim"] = int((v.lookup(ids[~step.hit]) >= 0).sum())
                    c["writeback"] += int(v.push(step.evicted_ids)[1].numel())
        for q in range(world):
            c = counters[q]
            res.rows += c["rows"]
            res.hits_device += c["device"]
            res.hits_peer += c["peer"]
            res.hits_victim += c["victim"]
            res.admitted += c["admitted"]
            res.admission_fetch_rows += c["fetch_extra"]
            res.peer_control_bytes += c["control"]
            res.per_step[q].append(c)
    return res


def _partition_step(i: int, per_rank: Sequence[Sequence[torch.Tensor]], routed: list, shard_batches: list,
                    policies: Sequence[CachePolicy], counters: list[dict[str, int]], res: SimResult) -> None:
    world = len(per_rank)
    for r in range(world):
        union, inv = shard_batches[r][i]
        step = policies[r].step(union)
        hit_req = step.hit[inv]
        res.evicted += int(step.evicted_ids.numel())
        counters[r]["served"] = int(hit_req.sum())
        counters[r]["admitted"] = int(step.admitted.numel())
        # requests arrive rank 0 first: segment q of hit_req belongs to requester q
        own = torch.zeros(union.numel(), dtype=torch.bool)
        start = 0
        for q in range(world):
            n_q = routed[q][1][r]
            hits = int(hit_req[start: start + n_q].sum())
            if q == r:
                counters[q]["device"] += hits
                own[inv[start: start + n_q]] = True
            else:
                counters[q]["peer"] += hits
            start += n_q
        counters[r]["fetch_extra"] = int((~own[step.admitted]).sum())
        counters[r]["control"] = 8 * (world - 1) + 8 * sum(routed[r][1][k] for k in range(world) if k != r) \
            + sum(routed[q][1][r] for q in range(world) if q != r)


def link_bytes(res: SimResult, row_bytes: int) -> list[list[dict[str, int]]]:
    """Bytes per link per rank per step under the backing model (see ``accessbench.suite.sim.hardware``)."""
    return [[step_bytes(c, row_bytes, backing=res.config.backing) for c in rank] for rank in res.per_step]


def project(res: SimResult, trace: Trace, links: Links) -> tuple[float | None, float | None, list[str]]:
    """Projected seconds per epoch (serial links, perfectly overlapped links) and notes on what is missing."""
    per_link = link_bytes(res, trace.row_bytes)
    num_train = int(trace.header.get("num_train") or trace.num_nodes)
    batch = int(trace.header["batch_size"])
    return project_epoch(per_link, links, num_train=num_train, batch_size=batch, gpus=res.config.gpus,
                         row_bytes=trace.row_bytes)


def sim_record(res: SimResult, trace: Trace, links: Links | None) -> dict[str, Any]:
    """One result record (the suite's field names where they exist), labelled ``simulated``."""
    cfg, rb = res.config, trace.row_bytes
    per_link = link_bytes(res, rb)
    total = {k: sum(s[k] for r in per_link for s in r) for k in per_link[0][0]} if per_link and per_link[0] else {}
    serial = overlap = None
    notes = ["simulated: replay of a recorded trace, not a measurement"]
    if links is not None:
        serial, overlap, more = project(res, trace, links)
        notes += more
    rows = res.rows
    return {
        "simulated": True, "status": "ok", "strategy": "cached", "options": cfg.label(),
        "workload": trace.header.get("workload"), "mode": "train", "device": "simulated", "ranks": cfg.gpus,
        "placement": cfg.placement if cfg.gpus > 1 else "single", "policy": cfg.policy,
        "cache_fraction": cfg.cache_fraction, "cache_rows_per_gpu": res.capacity, "steps": res.steps,
        "rows": rows, "bytes_needed": rows * rb, "hit_rate": res.hit_rate,
        "hit_rate_device": res.hits_device / rows if rows else None,
        "hit_rate_peer": res.hits_peer / rows if rows else None,
        "hit_rate_victim": res.hits_victim / rows if rows else None,
        "bytes_device": total.get("device"), "bytes_peer": total.get("peer"), "bytes_h2d": total.get("pcie_h2d"),
        "bytes_d2h": total.get("pcie_d2h"), "bytes_host": total.get("host"), "bytes_disk": total.get("disk"),
        "disk_ios": total.get("disk_ios"), "bytes_peer_control": res.peer_control_bytes,
        "admitted_rows": res.admitted, "evicted_rows": res.evicted, "admission_fetch_rows": res.admission_fetch_rows,
        "hardware": links.name if links is not None else None,
        "projected_epoch_s": serial, "projected_epoch_s_overlap": overlap, "notes": notes,
    }


def as_record_fields(sim: dict[str, Any]) -> dict[str, Any]:
    """A simulated result (``accessbench simulate``'s row) as record fields of the schema: declared fields keep
    their names, the simulator's own figures (policy, per-tier hit rates, projected epoch, ...) go to
    ``access_extras``; ``simulated`` is true."""
    from accessbench import schema

    out: dict[str, Any] = {"access_extras": {}}
    for key, value in sim.items():
        if key in schema.FIELD_NAMES and key != "access_extras":
            out[key] = value
        else:
            out["access_extras"][key] = value
    out["simulated"] = True
    return out

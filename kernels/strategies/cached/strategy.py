"""``cached``: hot feature rows in a device-memory cache, misses served by another strategy (the backing path).

The reference implementation of the PaGraph / GNNLab / torch-quiver / WholeGraph / LSM-GNN family. A byte budget
(bytes, or a fraction of the feature table) sets how many rows the cache holds; a lookup table on the device (dense
id-to-slot, or hashed when that would not fit) finds them; a policy from ``accessbench.kernels.strategies.cached.policies`` decides what
stays; misses are gathered by a registered backing strategy (``cpu-centric``, ``zero-copy`` or ``out-of-core``,
composed, never re-implemented). An optional victim buffer keeps evicted rows in a pinned host ring. With several
ranks (torch.distributed) the caches are replicated or partitioned (``accessbench.kernels.strategies.cached.distributed``). On a machine
without CUDA the "device" cache is host memory, and ``stats().extras["cache_memory"]`` says so.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch

from accessbench.kernels import registry
from accessbench.kernels.errors import InvalidOptions, StrategyUnavailable
from accessbench.kernels.registry import register
from accessbench.kernels.sampling import unique_first_occurrence
from accessbench.kernels.types import AccessStats, GraphData, SampledBatch

from .ahead import LookaheadLoading, Prefetch
from .distributed import Exchange, PartitionedServe
from .importance import degree_importance, parse_fanouts, presample_importance
from .options import BACKINGS, DEFAULT_CACHE_FRACTION, CachedOptions, parse_backing_options
from .placement import Ownership, initial_ids
from .policies import BeladyPolicy, HybridPolicy, PolicyConfig, importance_for, make_policy
from .table import make_slot_table
from .victim import VictimBuffer

__all__ = ["BACKINGS", "DEFAULT_CACHE_FRACTION", "Cached", "CachedOptions", "parse_backing_options"]

_FILL_CHUNK = 1 << 16


@register("cached")
class Cached(LookaheadLoading):
    """A device cache of hot rows over a backing strategy; replicated or partitioned across ranks."""

    Options = CachedOptions

    def __init__(self, options: CachedOptions | None = None) -> None:
        super().__init__(options)
        opts: CachedOptions = self.options
        if opts.backing not in registry.names():
            raise StrategyUnavailable(f"cached: backing strategy {opts.backing!r} is not available in this build "
                                      f"(registered: {', '.join(registry.names())})")
        try:
            self._backing = registry.create(opts.backing, **parse_backing_options(opts.backing_options))
        except StrategyUnavailable as exc:
            raise StrategyUnavailable(f"cached: backing {opts.backing!r} cannot run here: {exc}") from None
        self._policy = None
        self._rows: torch.Tensor | None = None
        self._serve: PartitionedServe | None = None
        self._victim: VictimBuffer | None = None
        self._copy_stream: torch.cuda.Stream | None = None
        self._static_extras: dict[str, object] = {}
        self._pending: dict[tuple[str, str], torch.Tensor] = {}
        self.rank, self.world = 0, 1

    # ---- capabilities ---------------------------------------------------------------------------------------
    SUPPORTS_RANKS = True

    @classmethod
    def capabilities(cls, options: Any | None = None) -> dict[str, bool]:
        """Several ranks always; CUDA when the backing path needs it."""
        backing = options.backing if options is not None else CachedOptions().backing
        return {"needs_cuda": registry.get(backing).capabilities(None)["needs_cuda"], "supports_ranks": True}

    @property
    def sample_device(self) -> torch.device:
        return self._backing.sample_device

    @property
    def policy(self):
        """The (this rank's) cache policy, after ``prepare``."""
        return self._policy

    # ---- lifecycle --------------------------------------------------------------------------------------------
    def prepare(self, graph: GraphData, device: torch.device) -> None:
        """Prepare the backing path, choose and fill the cache, join the ranks' placement."""
        opts: CachedOptions = self.options
        if graph.features.device.type != "cpu":
            raise ValueError("cached expects the graph's features in host memory (or memory-mapped)")
        self._backing.prepare(graph, device)
        self.graph, self.device = graph, device
        self.rank, self.world = _rank_world()
        start = time.perf_counter()
        cfg = opts.policy_config(_num_train(graph))
        budget = opts.budget_bytes(graph.feature_bytes)
        capacity = min(graph.num_nodes, budget // graph.row_bytes)
        row_bytes = capacity * graph.row_bytes
        if device.type == "cuda":
            free, total = torch.cuda.mem_get_info(device)
            if row_bytes > free:
                raise StrategyUnavailable(f"cached: the cache needs {row_bytes / 2**30:.2f} GiB but {device} has "
                                          f"{free / 2**30:.2f} GiB free of {total / 2**30:.2f} GiB")
        importance = self._importance(graph, cfg)
        partition = opts.placement == "partition" and self.world > 1
        table = make_slot_table(opts.lookup, num_nodes=graph.num_nodes, capacity=capacity, budget_bytes=row_bytes,
                                device=device)
        init = initial_ids(opts.policy, importance=importance, capacity=capacity, rank=self.rank, world=self.world,
                           placement=opts.placement, config=cfg)
        self._policy = make_policy(opts.policy, capacity, graph.num_nodes, importance=importance, initial_ids=init,
                                   config=cfg, device=device, table=table)
        self._rows = torch.empty((capacity, graph.feat_dim), dtype=graph.dtype, device=device)
        filled = self._fill()
        ownership_bytes = 0
        if partition:
            ownership = Ownership.for_policy(opts.policy, world=self.world, num_nodes=graph.num_nodes,
                                             importance=importance, capacity=capacity, config=cfg, device=device)
            ownership_bytes = ownership.nbytes
            self._serve = PartitionedServe(Exchange(device), ownership, self._policy, self._rows)
        if opts.victim_buffer:
            ring = max(1, int(opts.victim_fraction * graph.num_nodes))
            self._victim = VictimBuffer(ring, graph.num_nodes, feat_dim=graph.feat_dim, dtype=graph.dtype,
                                        device=device)
        if device.type == "cuda":
            self._copy_stream = torch.cuda.Stream(device)
        self._static_extras = {
            "policy": opts.policy, "placement": opts.placement if self.world > 1 else "single",
            "rank": self.rank, "ranks": self.world, "backing": opts.backing,
            "cache_rows": capacity, "cache_bytes": row_bytes, "cache_fraction": row_bytes / max(graph.feature_bytes, 1),
            "cache_memory": "device" if device.type == "cuda" else "host memory (no CUDA device: the 'device' cache "
                                                                     "is host RAM on this machine)",
            "lookup": table.kind, "policy_state_bytes": self._policy.state_bytes + ownership_bytes,
            "fill_rows": filled, "fill_s": time.perf_counter() - start,
            "victim_rows": self._victim.index.capacity if self._victim else 0,
            "victim_bytes": self._victim.nbytes if self._victim else 0,
            "comm_backend": self._serve.ex.backend if self._serve else None,
        }

    def _importance(self, graph: GraphData, cfg: PolicyConfig) -> dict[str, torch.Tensor]:
        opts: CachedOptions = self.options
        need = importance_for(opts.policy, cfg)
        if need == "degree":
            return {"degree": degree_importance(graph)}
        if need == "presample":
            return {"presample": presample_importance(
                graph, fanouts=parse_fanouts(opts.presample_fanouts), batch_size=opts.presample_batch_size,
                batches=cfg.presample_batches, seed=opts.presample_seed)}
        return {}

    def _fill(self) -> int:
        """Copy the rows of the policy's initial contents into the cache (not counted as gather traffic)."""
        assert self._policy is not None
        ids, slots = self._policy.contents()
        self._load_rows(ids, slots)
        return int(ids.numel())

    def _load_rows(self, ids: torch.Tensor, slots: torch.Tensor) -> None:
        """Write ``features[ids]`` into cache ``slots`` straight from the host table (a fill, not a gather)."""
        assert self._rows is not None and self.graph is not None
        for lo in range(0, ids.numel(), _FILL_CHUNK):
            chunk = ids[lo: lo + _FILL_CHUNK].cpu()
            self._rows[slots[lo: lo + _FILL_CHUNK]] = self.graph.features[chunk].to(self.device)

    def sample(self, seeds: torch.Tensor, fanouts: Sequence[int], *, generator: torch.Generator) -> SampledBatch:
        """Sampling is the backing path's (this strategy caches feature rows, not topology)."""
        self._require_prepared()
        return self._backing.sample(seeds, fanouts, generator=generator)

    # ---- gathering --------------------------------------------------------------------------------------------
    def _fetch(self, ids: torch.Tensor) -> torch.Tensor:
        """Rows from the backing path, on the compute device."""
        with self._backing.trusting_ids():  # validated by this strategy's gather already
            return self._backing.gather(ids).to(self.device)

    def gather(self, ids: torch.Tensor) -> torch.Tensor:
        """Cache hits from device memory (or a peer's shard), misses from the victim ring or the backing path."""
        g = self._require_prepared()
        assert self._policy is not None and self._rows is not None
        rb = g.row_bytes
        with self.phase("gather"):  # moving and validating the ids is part of the gather, as in every strategy
            ids = self.valid_ids(ids.to(self.device), g.num_nodes)
            self._stats.count_rows(ids.numel(), rb)
            uniq, inv = unique_first_occurrence(ids)
            mult = torch.bincount(inv, minlength=uniq.numel())
            out = torch.empty((uniq.numel(), g.feat_dim), dtype=g.dtype, device=self.device)
            if self._serve is not None:
                res = self._serve.serve(uniq, out, self._fetch)
                served, step = res.served, res.step
                self._count("hits", "device", mult * (served & res.owner_self))
                self._count("hits", "peer", mult * (served & ~res.owner_self))
                self._stats.add_bytes("peer", res.peer_rows * rb)
                self._stats.add_bytes("device", 2 * res.served_rows * rb)
                self._extra("peer_control_bytes", res.control_bytes)
            else:
                step = self._policy.step(uniq)
                served = step.hit
                hit_pos = torch.nonzero(served).flatten()
                out[hit_pos] = self._rows[step.slots[hit_pos]]
                self._count("hits", "device", mult * served)
                self._stats.add_bytes("device", 2 * int(hit_pos.numel()) * rb)
                if self.world > 1:  # replicated caches never read a peer: counted, so the record says 0, not null
                    self._stats.add_bytes("peer", 0)
            miss_pos = torch.nonzero(~served).flatten()
            self._count("misses", "device", mult * ~served)
            if self._victim is not None:
                miss_pos = self._victim_serve(uniq, miss_pos, out, mult)
            if miss_pos.numel():
                out[miss_pos] = self._fetch(uniq[miss_pos])
            if self._serve is not None:
                self._extra("admission_fetch_rows", self._serve.admit(out))
            else:
                self._evict_to_victim(step.evicted_ids, step.evicted_slots)
                self._rows[step.admitted_slots] = out[step.admitted]
            self._stats.add_bytes("device", int(step.admitted.numel()) * rb)
            self._extra("unique_rows", int(uniq.numel()))
            self._extra("admitted_rows", int(step.admitted.numel()))
            self._extra("evicted_rows", int(step.evicted_ids.numel()))
            result = out if uniq.numel() == ids.numel() else out[inv]
        return result

    def _victim_serve(self, uniq: torch.Tensor, miss_pos: torch.Tensor, out: torch.Tensor,
                      mult: torch.Tensor) -> torch.Tensor:
        """Fill the misses the victim ring holds; returns the positions still missing."""
        assert self._victim is not None
        rb = self.graph.row_bytes if self.graph is not None else 0
        vpos = self._victim.index.lookup(uniq[miss_pos])
        vh = vpos >= 0
        hit_pos, ring_pos = miss_pos[vh], vpos[vh]
        prefetched, self._prefetched = self._prefetched, None
        if hit_pos.numel():
            # an id's ring row is always its feature row, so rows prefetched for the same ids are exact
            if prefetched is not None and torch.equal(prefetched.ids, uniq[hit_pos]):
                rows, event = prefetched.rows, prefetched.done
                self._extra("victim_prefetched_rows", int(ring_pos.numel()))
            else:
                rows, event = self._victim.read(ring_pos, self.device)
            if event is not None:
                torch.cuda.current_stream(self.device).wait_event(event)
                rows.record_stream(torch.cuda.current_stream(self.device))
            out[hit_pos] = rows
            n = int(hit_pos.numel())
            self._stats.add_bytes("host", (3 if self.device.type == "cuda" else 2) * n * rb)
            if self.device.type == "cuda":
                self._stats.add_bytes("h2d", n * rb)
        self._count("hits", "victim", mult[hit_pos])
        self._count("misses", "victim", mult[miss_pos[~vh]])
        return miss_pos[~vh]

    def _evict_to_victim(self, evicted_ids: torch.Tensor, evicted_slots: torch.Tensor) -> None:
        if self._victim is None or evicted_ids.numel() == 0:
            return
        assert self._rows is not None and self.graph is not None
        keep, pos = self._victim.index.push(evicted_ids)
        self._victim.write(pos, self._rows[evicted_slots[keep]])
        self._extra("victim_writeback_bytes", int(pos.numel()) * self.graph.row_bytes)

    def prefetch_victims(self, node_ids: torch.Tensor) -> int:
        """Start copying the victim-ring rows the coming batch (``node_ids``) will hit; returns how many rows.

        Exact only if nothing else touches the cache before that batch's ``gather`` (``load()`` guarantees it).
        On CUDA the copy runs on a side stream, bracketed by timing events (``load()`` reports its seconds).
        """
        self._prefetched = None
        if self._victim is None or self._serve is not None or self._policy is None:
            return 0
        uniq = unique_first_occurrence(node_ids.to(self.device))[0]
        miss = uniq[self._policy.lookup(uniq) < 0]
        vpos = self._victim.index.lookup(miss)
        found = vpos >= 0
        ring_pos = vpos[found]
        if ring_pos.numel() == 0:
            return 0
        start = torch.cuda.Event(enable_timing=True) if self.device.type == "cuda" else None
        rows, done = self._victim.read(ring_pos, self.device, stream=self._copy_stream, start=start)
        self._prefetched = Prefetch(miss[found], rows, done, start)
        return int(ring_pos.numel())

    def plan(self, trace: Sequence[torch.Tensor]) -> None:
        """Hand the belady policy the coming batches (each batch's ``node_ids``); collective under partition."""
        if not isinstance(self._policy, BeladyPolicy):
            raise InvalidOptions("plan() is for policy=belady")
        uniq = [unique_first_occurrence(b.to(self.device))[0] for b in trace]
        if self._serve is not None:
            uniq = [self._serve.plan_batch(u) for u in uniq]
        self._prefetched = None
        evicted_ids, evicted_slots = self._policy.plan(uniq)
        self._evict_to_victim(evicted_ids, evicted_slots)
        filled_ids, filled_slots = self._policy.filled
        self._load_rows(filled_ids, filled_slots)
        self._static_extras["fill_rows"] = int(self._static_extras.get("fill_rows", 0)) + int(filled_ids.numel())

    def hint(self, node_ids: torch.Tensor) -> None:
        """Tell the hybrid policy about an upcoming batch (in order, after those already hinted); collective under
        partition. ``load()`` does this for the batches it samples ahead."""
        if not isinstance(self._policy, HybridPolicy) or not self._policy.lookahead:
            return
        uniq = unique_first_occurrence(node_ids.to(self.device))[0]
        auto = self._policy.lookahead == -1
        self._policy.hint([self._serve.plan_batch(uniq) if self._serve is not None else uniq])
        if auto and self._serve is not None:  # every shard looks equally far ahead (ranks sample in lockstep)
            self._policy.lookahead = self._serve.ex.max_int(self._policy.lookahead)

    # ---- counters -------------------------------------------------------------------------------------------
    def _count(self, kind: str, tier: str, rows: torch.Tensor) -> None:
        """Add ``rows.sum()`` to a hit/miss counter, kept on the device until ``stats()`` (no sync per gather)."""
        key = (kind, tier)
        total = rows.sum()
        self._pending[key] = self._pending[key] + total if key in self._pending else total

    def _settle(self) -> None:
        """Fold the device-side hit/miss counters into the stats (one sync)."""
        if not self._pending:
            return
        keys = list(self._pending)
        values = torch.stack([self._pending[k].to(torch.int64) for k in keys]).tolist()
        self._pending = {}
        for (kind, tier), n in zip(keys, values):
            table = self._stats.hits if kind == "hits" else self._stats.misses
            table[tier] = table.get(tier, 0) + int(n)

    def _extra(self, key: str, n: int) -> None:
        self._stats.extras[key] = self._stats.extras.get(key, 0) + int(n)

    def stats(self) -> AccessStats:
        """This strategy's counters plus the backing path's bytes per tier; cache facts in ``extras``."""
        self._settle()
        s = super().stats()
        b = self._backing.stats()
        for tier, nbytes in b.bytes_by_tier.items():
            s.add_bytes(tier, nbytes)
        for tier, nbytes in self._deferred.items():  # minus what batches sampled ahead but not yet consumed counted
            s.add_bytes(tier, nbytes)
        s.io_ops = b.io_ops
        s.extras.update(self._static_extras)
        s.extras["backing_rows"] = b.rows
        s.extras["backing_extras"] = dict(b.extras)
        return s

    def reset_stats(self) -> None:
        """Zero the counters (the backing's too); batches already sampled ahead count when consumed."""
        self._pending = {}
        super().reset_stats()
        self._backing.reset_stats()

    def close(self) -> None:
        """Close the backing path and drop the cache."""
        self._backing.close()
        self._rows = None
        self._serve = None
        self._victim = None
        self._prefetched = None
        super().close()


def _num_train(graph: GraphData) -> int:
    return int(graph.train_ids.numel()) if graph.train_ids is not None and graph.train_ids.numel() else graph.num_nodes


def _rank_world() -> tuple[int, int]:
    """This process's rank and the world size (0, 1 without an initialised process group)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1

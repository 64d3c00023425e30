"""Partitioned caches across ranks with torch.distributed: route ids to their owners, serve hits back.

One ``PartitionedServe.serve`` call per batch on every rank (a collective: all ranks call it in lockstep, empty
batches included). NCCL exchanges device tensors; gloo exchanges host tensors (rows travel as bytes, so every dtype
works). Steps for a batch of unique ids on rank ``q``:

1. split the ids by owner (``split_requests``); all-to-all the counts, then the ids;
2. each owner ``r`` makes its shard's batch from what it received (``owner_union``) and steps its policy;
3. owners all-to-all a hit flag per request back, then the rows of the hits (these rows are the peer bytes);
4. rank ``q`` fetches what missed everywhere from its own backing path, and each owner writes the rows its policy
   admitted into its shard (rows it requested itself come from its own fetch; rows only others asked for are read
   from its backing path: the admission cost of a shared dynamic cache).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .placement import Ownership, owner_union, split_requests
from .policy_base import CachePolicy, PolicyStep

__all__ = ["Exchange", "PartitionedServe", "ServeResult"]


def _segment_sums(mask: torch.Tensor, counts: list[int]) -> list[int]:
    """How many of ``mask`` are set in each consecutive segment of the given lengths."""
    labels = torch.repeat_interleave(torch.arange(len(counts), device=mask.device),
                                     torch.tensor(counts, device=mask.device))
    return torch.bincount(labels[mask], minlength=len(counts)).tolist()


class Exchange:
    """Variable-size all-to-all along dim 0 over the default process group, on the device the backend needs."""

    def __init__(self, device: torch.device) -> None:
        import torch.distributed as dist

        self.dist = dist
        self.rank = dist.get_rank()
        self.world = dist.get_world_size()
        self.backend = str(dist.get_backend())
        self.comm_device = device if self.backend == "nccl" else torch.device("cpu")

    def max_int(self, value: int) -> int:
        """The largest ``value`` over all ranks."""
        t = torch.tensor([int(value)], dtype=torch.int64, device=self.comm_device)
        self.dist.all_reduce(t, op=self.dist.ReduceOp.MAX)
        return int(t.item())

    def counts(self, send: torch.Tensor) -> torch.Tensor:
        """``send[r]`` = items for rank ``r``; returns ``recv[r]`` = items rank ``r`` sends here (int64 [world])."""
        out = torch.empty(self.world, dtype=torch.int64, device=self.comm_device)
        self.dist.all_to_all_single(out, send.to(self.comm_device, torch.int64))
        return out

    def exchange(self, data: torch.Tensor, send_counts: list[int], recv_counts: list[int]) -> torch.Tensor:
        """Send ``data[...]`` split by ``send_counts`` (rows per rank); receive ``sum(recv_counts)`` rows, rank order."""
        dtype, shape = data.dtype, data.shape[1:]
        width = 1
        for d in shape:
            width *= int(d)
        flat = data.reshape(data.shape[0], width).contiguous()
        if flat.dtype == torch.bool:
            flat = flat.to(torch.uint8)
        raw = flat.view(torch.uint8) if flat.dtype.is_floating_point else flat
        raw = raw.to(self.comm_device)
        out = torch.empty((sum(recv_counts), *raw.shape[1:]), dtype=raw.dtype, device=self.comm_device)
        self.dist.all_to_all_single(out, raw, recv_counts, send_counts)
        if dtype.is_floating_point:
            out = out.view(dtype)
        elif dtype == torch.bool:
            out = out.to(torch.bool)
        return out.reshape(out.shape[0], *shape)


@dataclass
class ServeResult:
    """What a partitioned serve did for this rank's batch (positions index the batch's unique ids)."""

    served: torch.Tensor  # bool [n]: rows filled from some rank's shard
    owner_self: torch.Tensor  # bool [n]: the id's owner is this rank
    peer_rows: int  # rows received from other ranks
    served_rows: int  # rows this rank's shard served to all ranks (itself included)
    control_bytes: int  # ids, flags and counts sent to other ranks
    step: PolicyStep  # this rank's shard policy step over its shard batch
    admission_fetch_rows: int  # rows this rank read from its backing only to admit them for other ranks


class PartitionedServe:
    """This rank's shard (``policy`` + ``rows``) and the routing of a batch's ids to every shard."""

    def __init__(self, exchange: Exchange, ownership: Ownership, policy: CachePolicy, rows: torch.Tensor) -> None:
        self.ex = exchange
        self.ownership = ownership
        self.policy = policy
        self.rows = rows

    def route(self, uniq: torch.Tensor) -> tuple[torch.Tensor, list[int], list[int], torch.Tensor, torch.Tensor]:
        """Send ids to owners: ``(order, send counts, recv counts, received ids, this shard's batch + inverse)``."""
        world = self.ex.world
        owners = self.ownership.owners(uniq)
        order, counts = split_requests(owners, world)
        send = counts.tolist()
        recv = self.ex.counts(counts).tolist()
        received = self.ex.exchange(uniq[order], send, recv).to(uniq.device)
        return order, send, recv, received, owners

    def plan_batch(self, uniq: torch.Tensor) -> torch.Tensor:
        """The shard batch this rank's policy will see for a (future) batch: for look-ahead planning."""
        _, _, _, received, _ = self.route(uniq)
        return owner_union(received)[0]

    def serve(self, uniq: torch.Tensor, out: torch.Tensor,
              fetch: Callable[[torch.Tensor], torch.Tensor]) -> ServeResult:
        """Fill ``out[i]`` for every id of ``uniq`` held by some shard; misses are left to the caller.

        ``fetch(ids)`` reads rows from this rank's backing path (used for admissions only others asked for).
        Returns the hit mask and counters; the caller fetches ``~served`` and then calls ``admit``.
        """
        rank, dev = self.ex.rank, uniq.device
        order, send, recv, received, owners = self.route(uniq)
        shard_batch, inv = owner_union(received)
        step = self.policy.step(shard_batch)
        hit_req = step.hit[inv]
        flags = self.ex.exchange(hit_req, recv, send).to(dev)  # aligned with uniq[order]
        req_slots = step.slots[inv][hit_req]
        hits_per_req = _segment_sums(hit_req, recv)
        hits_back = _segment_sums(flags, send)
        got = self.ex.exchange(self.rows[req_slots], hits_per_req, hits_back).to(dev)
        served = torch.zeros(uniq.numel(), dtype=torch.bool, device=dev)
        pos = order[flags]
        served[pos] = True
        out[pos] = got
        # where in the shard batch this rank's own requests sit, for admissions
        recv_start = sum(recv[:rank])
        send_start = sum(send[:rank])
        self._own = torch.full((shard_batch.numel(),), -1, dtype=torch.int64, device=dev)
        self._own[inv[recv_start: recv_start + recv[rank]]] = order[send_start: send_start + send[rank]]
        self._step, self._shard_batch, self._fetch = step, shard_batch, fetch
        peer_rows = sum(hits_back) - hits_back[rank]
        ids_out = sum(send) - send[rank]
        flags_out = sum(recv) - recv[rank]
        control = 8 * (self.ex.world - 1) + 8 * ids_out + flags_out
        return ServeResult(served, owners == rank, peer_rows, int(hit_req.sum()), control, step, 0)

    def admit(self, out: torch.Tensor) -> int:
        """Write the rows the shard policy admitted (after the caller filled its misses into ``out``); returns the
        number of rows read from the backing path only for admission."""
        step = self._step
        if step.admitted.numel() == 0:
            return 0
        local = self._own[step.admitted]
        have = local >= 0
        rows = torch.empty((step.admitted.numel(), self.rows.shape[1]), dtype=self.rows.dtype, device=self.rows.device)
        rows[have] = out[local[have]].to(self.rows.device)
        extra = int((~have).sum())
        if extra:
            rows[~have] = self._fetch(self._shard_batch[step.admitted[~have]]).to(self.rows.device)
        self.rows[step.admitted_slots] = rows
        return extra

"""Where cached rows live across ranks: ``replicate`` (every rank caches its own copy) or ``partition`` (each rank
holds a shard; an id is served by the rank that owns it).

Ownership under ``partition``: for static policies the global hot set of ``world x capacity`` ids (by importance) is
dealt out round-robin, so shard ``r`` holds hot-set positions ``r, r + world, ...`` and ids outside the hot set have no
owner (they go straight to the backing path); for dynamic policies rank ``id % world`` owns ``id`` and its shard is a
dynamic cache over the requests for the ids it owns, from every rank.

``split_requests`` and ``owner_union`` are the routing steps; the strategy runs them around all-to-all collectives,
the simulator runs them in one process, so both feed each shard's policy the same batches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import torch

from accessbench.kernels.sampling import unique_first_occurrence

from .importance import rank_by_importance
from .policies import STATIC_POLICIES, PolicyConfig, hybrid_prior, importance_for

__all__ = ["PLACEMENTS", "Ownership", "Placement", "initial_ids", "owner_union", "split_requests"]

Placement = Literal["replicate", "partition"]
PLACEMENTS: tuple[str, ...] = ("replicate", "partition")


def initial_ids(policy: str, *, importance: Mapping[str, torch.Tensor], capacity: int, rank: int, world: int,
                placement: str, config: PolicyConfig | None = None) -> torch.Tensor | None:
    """The ids rank ``rank``'s cache starts with (static hot set or hybrid prefill); None for cold-start policies."""
    config = config or PolicyConfig()
    need = importance_for(policy, config)
    if need is None:
        return None
    score = importance[need] if policy in STATIC_POLICIES else hybrid_prior(importance[need], config)
    order = rank_by_importance(score)
    if placement == "replicate" or world == 1:
        return order[:capacity]
    if policy in STATIC_POLICIES:
        return order[: capacity * world][rank::world]
    return order[order % world == rank][:capacity]


class Ownership:
    """Which rank owns each id under ``partition`` (-1: no rank caches it)."""

    def __init__(self, world: int, *, num_nodes: int, shards: Sequence[torch.Tensor] | None = None,
                 device: torch.device | str = "cpu") -> None:
        self.world = int(world)
        self.device = torch.device(device)
        self.owner_map: torch.Tensor | None = None
        if shards is not None:
            dtype = torch.int8 if world < 128 else torch.int32
            owner = torch.full((num_nodes,), -1, dtype=dtype, device=self.device)
            for r, ids in enumerate(shards):
                owner[ids.to(self.device)] = r
            self.owner_map = owner

    @classmethod
    def for_policy(cls, policy: str, *, world: int, num_nodes: int, importance: Mapping[str, torch.Tensor],
                   capacity: int, config: PolicyConfig | None = None,
                   device: torch.device | str = "cpu") -> Ownership:
        """Static policies: owners from the dealt-out hot set; dynamic ones: ``id % world``."""
        if policy in STATIC_POLICIES:
            shards = [initial_ids(policy, importance=importance, capacity=capacity, rank=r, world=world,
                                  placement="partition", config=config) for r in range(world)]
            return cls(world, num_nodes=num_nodes, shards=[s for s in shards if s is not None], device=device)
        return cls(world, num_nodes=num_nodes, device=device)

    @property
    def nbytes(self) -> int:
        """Bytes of the owner map (0 for the modulo rule)."""
        return 0 if self.owner_map is None else self.owner_map.numel() * self.owner_map.element_size()

    def owners(self, ids: torch.Tensor) -> torch.Tensor:
        """Owner rank of each id (int64, -1 for none)."""
        if self.owner_map is None:
            return ids % self.world
        return self.owner_map[ids.to(self.owner_map.device)].to(device=ids.device, dtype=torch.int64)


def split_requests(owners: torch.Tensor, world: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Group a batch's ids by owner: ``(order, counts)`` where ``order`` lists positions of owned ids, owner 0's first
    (batch order kept within an owner), and ``counts[r]`` is how many go to rank ``r``. Unowned ids are left out.
    """
    owned = torch.nonzero(owners >= 0).flatten()
    o = owners[owned]
    order = owned[torch.sort(o, stable=True).indices]
    counts = torch.bincount(o, minlength=world)
    return order, counts


def owner_union(received: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A shard's batch: the requests it received (rank 0's first), unique in first-occurrence order, and the map
    from each request to its position in that batch."""
    return unique_first_occurrence(received)

"""Static hot caches in front of the disk: rows chosen once (by how often sampling can reach a node, or by how often
pre-sampled batches needed it), the hottest in device memory (CUDA only), the next in host memory (pinned where CUDA
is present, plain memory otherwise), each within a byte budget."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from accessbench.kernels.sampling import sample_blocks

__all__ = ["StaticCache", "rank_by_degree", "rank_by_presample"]


def rank_by_degree(indices: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Node ids, most-reachable first: by how many neighbour lists a node appears in (its in-degree in the CSR),
    which is how often uniform sampling can draw it. Ties keep id order."""
    counts = torch.bincount(indices.to(torch.int64), minlength=num_nodes)
    return torch.sort(counts, descending=True, stable=True).indices


def rank_by_presample(
    indptr: torch.Tensor, indices: torch.Tensor, *, num_nodes: int, seed_pool: torch.Tensor, batch_size: int,
    fanouts: Sequence[int], batches: int, generator: torch.Generator,
) -> torch.Tensor:
    """Node ids, most-needed first, by how many of ``batches`` pre-sampled mini-batches needed each (GNNLab-style);
    seeds are drawn from ``seed_pool`` with ``generator`` (its own stream, not the run's). Ties keep id order."""
    counts = torch.zeros(num_nodes, dtype=torch.int64)
    for _ in range(batches):
        pick = torch.randint(0, seed_pool.numel(), (min(batch_size, seed_pool.numel()),), generator=generator)
        batch = sample_blocks(indptr, indices, seed_pool[pick], fanouts, generator)
        counts[batch.node_ids] += 1
    return torch.sort(counts, descending=True, stable=True).indices


class StaticCache:
    """Rows ``ranking[:n_dev]`` in device memory and ``ranking[n_dev:n_dev + n_host]`` in host memory.

    ``slot[id]`` is the row's slot: ``[0, n_dev)`` in the device tier, ``[n_dev, n_dev + n_host)`` in the host tier,
    -1 where it is not cached.
    """

    def __init__(
        self, *, ranking: torch.Tensor, num_nodes: int, feat_dim: int, dtype: torch.dtype, row_bytes: int,
        device_bytes: int, host_bytes: int, device: torch.device, pinned: bool,
    ) -> None:
        self.n_dev = min(device_bytes // row_bytes, num_nodes) if device.type == "cuda" else 0
        self.n_host = min(host_bytes // row_bytes, num_nodes - self.n_dev)
        self.pinned = pinned
        self.slot = torch.full((num_nodes,), -1, dtype=torch.int64)
        cached = ranking[: self.n_dev + self.n_host].to(torch.int64)
        self.slot[cached] = torch.arange(cached.numel())
        self.device_rows = torch.empty((self.n_dev, feat_dim), dtype=dtype, device=device if self.n_dev else "cpu")
        self.host_rows = torch.empty((self.n_host, feat_dim), dtype=dtype, pin_memory=pinned and self.n_host > 0)
        self._cached = cached

    @property
    def host_bytes(self) -> int:
        """Bytes the host tier holds."""
        return self.host_rows.numel() * self.host_rows.element_size()

    @property
    def device_bytes(self) -> int:
        """Bytes the device tier holds."""
        return self.device_rows.numel() * self.device_rows.element_size()

    def fill(self, fetch: Callable[[torch.Tensor], torch.Tensor], *, chunk_rows: int = 1 << 16) -> None:
        """Load the cached rows with ``fetch(sorted unique ids) -> [n, D] host rows`` in chunks (sequential reads)."""
        order = torch.argsort(self._cached)
        sorted_ids = self._cached[order]
        for start in range(0, sorted_ids.numel(), chunk_rows):
            sl = order[start:start + chunk_rows]
            rows = fetch(sorted_ids[start:start + chunk_rows])
            dev_mask = sl < self.n_dev
            if bool(dev_mask.any()):
                dev = self.device_rows.device
                self.device_rows[sl[dev_mask].to(dev)] = rows[dev_mask].to(dev)
            host_mask = ~dev_mask
            if bool(host_mask.any()):
                self.host_rows[sl[host_mask] - self.n_dev] = rows[host_mask]
        if self.device_rows.is_cuda:  # the device tier is read later from other threads' streams: finish the fill
            torch.cuda.current_stream(self.device_rows.device).synchronize()
        self._cached = torch.empty(0, dtype=torch.int64)

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        """Slots of ``ids`` (int64 CPU), -1 where not cached."""
        return self.slot[ids]

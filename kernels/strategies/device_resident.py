"""``device-resident``: topology and features copied into device memory once; the ceiling when the graph fits."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from accessbench.kernels.base import AccessStrategy, NoOptions, check_ids
from accessbench.kernels.errors import StrategyUnavailable
from accessbench.kernels.registry import register
from accessbench.kernels.sampling import sample_blocks
from accessbench.kernels.types import GraphData, SampledBatch

__all__ = ["DeviceResident"]


@register("device-resident")
class DeviceResident(AccessStrategy):
    """Everything in device memory: sampling and gathering are device-memory operations only."""

    Options = NoOptions

    def __init__(self, options: NoOptions | None = None) -> None:
        super().__init__(options)
        self._indptr: torch.Tensor | None = None
        self._indices: torch.Tensor | None = None
        self._features: torch.Tensor | None = None

    def prepare(self, graph: GraphData, device: torch.device) -> None:
        """Copy CSR and features to ``device`` (on the CPU: materialise a memory-mapped table in RAM)."""
        need = graph.indptr.nbytes + graph.indices.nbytes + graph.feature_bytes
        if device.type == "cuda":
            free, total = torch.cuda.mem_get_info(device)
            if need > free:
                raise StrategyUnavailable(
                    f"device-resident: the graph needs {need / 2**30:.2f} GiB but {device} has "
                    f"{free / 2**30:.2f} GiB free of {total / 2**30:.2f} GiB"
                )
        self.graph = graph
        self.device = device
        self._indptr = graph.indptr.to(device, copy=True)
        self._indices = graph.indices.to(device, copy=True)
        self._features = graph.features.to(device, copy=True)

    def sample(self, seeds: torch.Tensor, fanouts: Sequence[int], *, generator: torch.Generator) -> SampledBatch:
        """Uniform sampling with device tensors; ``generator`` must live on the compute device."""
        g = self._require_prepared()
        seeds = check_ids(seeds.to(self.device), g.num_nodes)
        return sample_blocks(self._indptr, self._indices, seeds, fanouts, generator)

    def gather(self, ids: torch.Tensor) -> torch.Tensor:
        """``index_select`` in device memory."""
        g = self._require_prepared()
        with self.phase("gather"):  # moving and validating the ids is part of the gather, as in every strategy
            ids = self.valid_ids(ids.to(self.device), g.num_nodes)
            out = torch.index_select(self._features, 0, ids)
        self._stats.count_rows(ids.numel(), g.row_bytes)
        self._stats.add_bytes("device", 2 * ids.numel() * g.row_bytes)  # read rows, write the result
        return out

    def close(self) -> None:
        """Drop the device copies."""
        self._indptr = self._indices = self._features = None
        super().close()

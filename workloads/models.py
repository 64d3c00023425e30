"""GNN models the ``train`` mode runs: GraphSAGE (mean aggregation) on PyTorch Geometric's ``SAGEConv``."""

from __future__ import annotations

import torch
from accessbench.kernels.types import SampledBatch
from torch import nn

__all__ = ["MODELS", "GraphSAGE", "build_model"]

MODELS = ("sage",)


class GraphSAGE(nn.Module):
    """Mean-aggregation GraphSAGE over sampled blocks; one ``SAGEConv`` per hop.

    ``forward(x, batch)``: ``x`` is ``[len(batch.node_ids), in_dim]`` (rows in ``node_ids`` order); returns
    ``[len(batch.seeds), out_dim]`` logits.
    """

    def __init__(self, in_dim: int, hidden: int, out_dim: int, num_layers: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        from torch_geometric.nn import SAGEConv

        dims = [in_dim] + [hidden] * (num_layers - 1) + [out_dim]
        self.convs = nn.ModuleList(SAGEConv(dims[i], dims[i + 1], aggr="mean") for i in range(num_layers))
        self.dropout = dropout

    def forward(self, x: torch.Tensor, batch: SampledBatch) -> torch.Tensor:
        blocks = batch.blocks[::-1]  # outermost hop first
        for i, (conv, block) in enumerate(zip(self.convs, blocks)):
            x_dst = x[: block.num_dst]
            x = conv((x, x_dst), block.edge_index, size=(block.num_src, block.num_dst))
            if i < len(self.convs) - 1:
                x = torch.relu(x)
                x = nn.functional.dropout(x, p=self.dropout, training=self.training)
        return x


def build_model(name: str, *, in_dim: int, hidden: int, out_dim: int, num_layers: int) -> nn.Module:
    """A model by name; unknown names raise ValueError listing the valid ones."""
    if name == "sage":
        return GraphSAGE(in_dim, hidden, out_dim, num_layers)
    raise ValueError(f"unknown model {name!r}; valid: {', '.join(MODELS)}")

"""GNN models the ``train`` mode runs: GraphSAGE (mean aggregation) on PyTorch Geometric's ``SAGEConv``."""

from __future__ import annotations

import torch
from torch import nn

from accessbench.kernels.types import SampledBatch

__all__ = ["MODELS", "GraphSAGE", "build_model", "train_step"]

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


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, features: torch.Tensor, batch: SampledBatch,
               labels: torch.Tensor) -> torch.Tensor:
    """One GNN training step on a sampled batch: forward, cross-entropy on the seeds, backward, optimiser step.

    ``features``: [len(batch.node_ids), D] rows of the batch's nodes on the model's device (non-fp32 rows are cast
    to fp32); ``labels``: [N] class ids indexed by ``batch.seeds``. Returns the loss (a 0-d tensor, not synchronised:
    the caller decides when to wait for the device). Used by the runner, asv and the pytest-benchmark sessions.
    """
    x = features if features.dtype == torch.float32 else features.float()
    out = model(x, batch)
    loss = torch.nn.functional.cross_entropy(out, labels[batch.seeds])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss

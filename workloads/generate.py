"""Deterministic synthetic power-law graphs (Chung-Lu), written straight into a store in bounded memory.

Node ``v`` gets a weight ``w_v`` from a power law with exponent ``alpha`` (a node's expected degree is proportional
to its weight), capped at ``sqrt(N * avg_degree)`` (the structural cut-off). Its out-degree is Poisson with mean ``avg_degree * w_v / mean(w)``, and each out-edge's target is
drawn with probability proportional to the targets' weights, so in-degrees (how often a node is sampled as a
neighbour, hence how hot its feature row is) follow the same power law. Weights are assigned to ids through a seeded
random permutation, so hot rows are scattered over the table as in real graphs. Nodes are produced in fixed chunks
of ``CHUNK_NODES``, each from its own seeded generator: the output depends only on the parameters, never on memory.
Memory use is O(N) for the weights plus O(chunk) for edges and features.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from accessbench.kernels.errors import StoreError

from .store import DTYPES, StoreWriter, iter_chunks

__all__ = ["CHUNK_NODES", "FEATURE_DTYPES", "GENERATOR_VERSION", "GraphSpec", "check_resources", "generate",
           "needs"]

CHUNK_NODES = 1 << 16
GENERATOR_VERSION = 1
FEATURE_DTYPES = ("float32", "float16", "bfloat16", "int8", "uint8")
_FEATURE_DTYPES = FEATURE_DTYPES
_INT_SCALE = 32.0  # integer features: round(32 * N(0, 1)), clamped to the type's range (uint8 centred on 128)
_WEIGHT_BYTES_PER_NODE = 48  # float64 ranks, weights, cdf and the int64 permutation, alive together


@dataclass(frozen=True)
class GraphSpec:
    """Parameters of a synthetic graph. ``alpha`` > 1 is the power-law exponent of the degree distribution."""

    num_nodes: int
    avg_degree: float = 15.0
    feat_dim: int = 128
    dtype: str = "float32"
    alpha: float = 2.1
    num_classes: int = 16
    train_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_nodes < 1:
            raise ValueError("num_nodes must be >= 1")
        if self.avg_degree < 0:
            raise ValueError("avg_degree must be >= 0")
        if self.feat_dim < 1:
            raise ValueError("feat_dim must be >= 1")
        if self.dtype not in _FEATURE_DTYPES:
            raise ValueError(f"dtype {self.dtype!r}; valid: {', '.join(_FEATURE_DTYPES)}")
        if self.alpha <= 1.0:
            raise ValueError("alpha must be > 1")
        if not 0.0 < self.train_fraction <= 1.0:
            raise ValueError("train_fraction must be in (0, 1]")
        if self.num_classes < 2:
            raise ValueError("num_classes must be >= 2")

    @property
    def feature_bytes(self) -> int:
        """Bytes of the feature table this spec generates."""
        return self.num_nodes * self.feat_dim * torch.empty(0, dtype=DTYPES[self.dtype][0]).element_size()


def needs(spec: GraphSpec) -> tuple[int, int]:
    """``(disk_bytes, memory_bytes)`` the generation of ``spec`` needs (the expected store size; peak memory)."""
    n, d = spec.num_nodes, spec.feat_dim
    idx = 4 if n < 2**31 else 8
    edges = int(n * spec.avg_degree)
    disk = (n + 1) * 8 + edges * idx + spec.feature_bytes + n * 8 + int(n * spec.train_fraction) * 8
    chunk = min(n, CHUNK_NODES)
    per_chunk = int(chunk * max(spec.avg_degree, 1.0) * 40 + chunk * d * 12)  # edges, sort keys; float32 rows
    return disk, n * _WEIGHT_BYTES_PER_NODE + per_chunk


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB"


def check_resources(spec: GraphSpec, path: str | Path) -> None:
    """Refuse, before anything is written, a spec whose store would not fit the free disk under ``path`` or whose
    generation would not fit the available memory (``StoreError`` with both numbers)."""
    disk, memory = needs(spec)
    where = Path(path).absolute()
    while not where.exists() and where != where.parent:
        where = where.parent
    free = shutil.disk_usage(where).free
    if disk > free:
        raise StoreError(f"a graph of {spec.num_nodes:,} nodes needs about {_gib(disk)} of disk but {where} has "
                         f"{_gib(free)} free; choose fewer --nodes, a smaller --feat-dim or --avg-degree, or another "
                         f"directory")
    avail = _available_memory()
    if avail is not None and memory > avail:
        raise StoreError(f"generating {spec.num_nodes:,} nodes needs about {_gib(memory)} of memory but "
                         f"{_gib(avail)} is available; choose fewer --nodes")


def _features(feats: torch.Tensor, dtype: str) -> torch.Tensor:
    """Standard-normal rows in the store's dtype (integers: scaled, rounded and clamped)."""
    if dtype == "int8":
        return (feats * _INT_SCALE).round().clamp(-128, 127).to(torch.int8)
    if dtype == "uint8":
        return (feats * _INT_SCALE + 128).round().clamp(0, 255).to(torch.uint8)
    return feats.to(DTYPES[dtype][0])


def _weights(spec: GraphSpec) -> torch.Tensor:
    """Per-id weights (float64 ``[N]``), a power law scattered by a seeded permutation, mean 1."""
    g = torch.Generator().manual_seed(spec.seed * 1_000_003 + 17)
    rank = torch.arange(1, spec.num_nodes + 1, dtype=torch.float64)
    base = rank.pow(-1.0 / (spec.alpha - 1.0))
    perm = torch.randperm(spec.num_nodes, generator=g)
    w = torch.empty_like(base)
    w[perm] = base
    w /= w.mean()
    # structural cut-off: no expected degree above sqrt(N * avg_degree), as in real graphs and as Chung-Lu needs
    cap = max(1.0, (spec.num_nodes * max(spec.avg_degree, 1.0)) ** 0.5 / max(spec.avg_degree, 1.0))
    for _ in range(8):  # clamping lowers the mean; re-normalise and clamp again until stable
        w = torch.clamp(w, max=cap)
        w /= w.mean()
    return w


def generate(spec: GraphSpec, path: str | Path, *, name: str | None = None, overwrite: bool = False) -> Path:
    """Write the graph described by ``spec`` as a store at ``path``; returns the path.

    Refuses (``StoreError``, before writing anything) a graph that would not fit the disk or memory, and a
    non-empty directory unless ``overwrite``.
    """
    started = time.perf_counter()
    check_resources(spec, path)
    weights = _weights(spec)
    cdf = torch.cumsum(weights, 0)
    cdf /= cdf[-1].clone()
    proj = torch.randn(spec.feat_dim, spec.num_classes, generator=torch.Generator().manual_seed(spec.seed + 7))
    idx_dtype = torch.int32 if spec.num_nodes < 2**31 else torch.int64
    offset = 0
    with StoreWriter(path, overwrite=overwrite) as out:
        out.append("indptr", torch.zeros(1, dtype=torch.int64))
        for chunk_no, (lo, hi) in enumerate(iter_chunks(spec.num_nodes, CHUNK_NODES)):
            g = torch.Generator().manual_seed((spec.seed << 20) + chunk_no * 7919 + GENERATOR_VERSION)
            mean_deg = spec.avg_degree * weights[lo:hi]
            deg = torch.poisson(mean_deg, generator=g).to(torch.int64)
            m = int(deg.sum())
            u = torch.rand(m, generator=g, dtype=torch.float64)
            targets = torch.clamp(torch.searchsorted(cdf, u), max=spec.num_nodes - 1).to(idx_dtype)
            # neighbour lists sorted per node: a canonical CSR, and better locality as real stores have
            src = torch.repeat_interleave(torch.arange(hi - lo), deg)
            order = torch.argsort(src * spec.num_nodes + targets.to(torch.int64))
            out.append("indices", targets[order])
            out.append("indptr", offset + torch.cumsum(deg, 0))
            offset += m
            feats = torch.randn(hi - lo, spec.feat_dim, generator=g)
            out.append("features", _features(feats, spec.dtype))
            out.append("labels", (feats @ proj).argmax(1).to(torch.int64))
            is_train = torch.rand(hi - lo, generator=g) < spec.train_fraction
            if chunk_no == 0 and not bool(is_train.any()):
                is_train[0] = True  # at least one training node, whatever the fraction
            out.append("train_ids", (torch.nonzero(is_train).flatten() + lo).to(torch.int64))
        source = {"generator": "chung-lu", "version": GENERATOR_VERSION, **asdict(spec),
                  "seconds": round(time.perf_counter() - started, 3)}
        return out.finish(name=name or f"chunglu-{spec.num_nodes}", num_classes=spec.num_classes, source=source)

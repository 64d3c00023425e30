"""What every importer shares: the CSR built from streamed edge chunks by a two-pass counting sort, and the writers
of features, labels and training ids.

CSR construction, for ``E`` input edges over ``N`` nodes (memory O(N) plus one chunk; the unsorted neighbour array
lives in a scratch file inside the store directory, removed afterwards):

1. count: one pass over the edges adds each source's out-degree (and each target's, when symmetrising);
2. fill: a second pass scatters every edge's target to ``indptr[src] + (slots already filled for src)``;
3. sort: node blocks of about ``chunk_bytes`` of edges are read back, each neighbour list is sorted, and the
   block is appended to the store.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from accessbench.kernels.errors import InvalidOptions, StoreError
from accessbench.workloads.store import DTYPES, StoreWriter

from ._read import as_ids

__all__ = [
    "CONVERTIBLE",
    "DEFAULT_CHUNK_BYTES",
    "EdgePass",
    "FeatureSink",
    "LabelSink",
    "append_train_ids",
    "check_common",
    "rel",
    "to_tensor",
    "write_csr",
]

#: One fresh pass over the edges as ``(src, dst)`` int64 chunks; the CSR builder calls it twice.
EdgePass = Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]
DEFAULT_CHUNK_BYTES = 64 << 20
#: Feature dtypes a source may be converted to with ``feature_dtype``.
CONVERTIBLE = ("float32", "float16", "bfloat16")
_SCRATCH = ".indices.unsorted.tmp"


def check_common(*, symmetrize: bool, feature_dtype: str | None, chunk_bytes: int, allow_nonfinite: bool = False,
                 allow_empty_edges: bool = False) -> None:
    """Validate the options every importer has; raises ``InvalidOptions`` naming the valid values."""
    for key, value in (("symmetrize", symmetrize), ("allow_nonfinite", allow_nonfinite),
                       ("allow_empty_edges", allow_empty_edges)):
        if not isinstance(value, bool):
            raise InvalidOptions(f"{key} must be True or False, got {value!r}")
    if feature_dtype is not None and feature_dtype not in CONVERTIBLE:
        raise InvalidOptions(f"feature_dtype {feature_dtype!r}; valid: None (keep the source's), "
                             f"{', '.join(CONVERTIBLE)}")
    if not isinstance(chunk_bytes, int) or chunk_bytes < 1024:
        raise InvalidOptions(f"chunk_bytes must be an integer >= 1024, got {chunk_bytes!r}")


def to_tensor(arr: np.ndarray) -> torch.Tensor:
    """A CPU tensor of ``arr``; read-only or strided inputs (memmaps, stream buffers) are copied first."""
    if not (arr.flags.writeable and arr.flags.c_contiguous):
        arr = np.array(arr, order="C")
    return torch.from_numpy(arr)


def _index_dtype(num_nodes: int) -> type:
    return np.int32 if num_nodes < 2**31 else np.int64


def _checked(chunks: Iterator[tuple[np.ndarray, np.ndarray]], num_nodes: int, what: str,
             symmetrize: bool) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Validate ids and add the reverse of every non-self-loop edge when symmetrising."""
    for src, dst in chunks:
        if src.size:
            lo, hi = min(int(src.min()), int(dst.min())), max(int(src.max()), int(dst.max()))
            if lo < 0 or hi >= num_nodes:
                bad = lo if lo < 0 else hi
                raise StoreError(f"{what}: node id {bad} is outside [0, {num_nodes}) (the node count comes from the "
                                 f"feature rows)")
        if symmetrize:
            keep = src != dst
            src, dst = np.concatenate([src, dst[keep]]), np.concatenate([dst, src[keep]])
        yield src, dst


def _scatter(target: np.ndarray, cursor: np.ndarray, src: np.ndarray, dst: np.ndarray) -> None:
    """Write each ``dst`` at its source's next free slot (``cursor``), then advance the cursors."""
    if target.dtype == np.int32:  # ids < 2**31: one packed-key sort beats argsort + gathers
        key = (src << 32) | dst
        key.sort()
        src, dst = key >> 32, key & 0xFFFFFFFF
    else:
        order = np.argsort(src)
        src, dst = src[order], dst[order]
    first = np.ones(src.size, dtype=bool)
    first[1:] = src[1:] != src[:-1]
    starts = np.flatnonzero(first)
    counts = np.diff(np.append(starts, src.size))
    nodes = src[starts]
    pos = np.repeat(cursor[nodes] - starts, counts) + np.arange(src.size)
    target[pos] = dst
    cursor[nodes] += counts


def write_csr(out: StoreWriter, edges: EdgePass, num_nodes: int, *, symmetrize: bool, what: str,
              chunk_bytes: int, allow_empty: bool = False) -> int:
    """Append ``indptr`` and ``indices`` (targets sorted per source) built from ``edges``; returns the edge count.

    An input without a single edge is refused unless ``allow_empty``.
    """
    deg = np.zeros(num_nodes, dtype=np.int64)
    for src, _ in _checked(edges(), num_nodes, what, symmetrize):
        deg += np.bincount(src, minlength=num_nodes)
    indptr = np.zeros(num_nodes + 1, dtype=np.int64)
    np.cumsum(deg, out=indptr[1:])
    total = int(indptr[-1])
    out.append("indptr", torch.from_numpy(indptr))
    idx_dtype = _index_dtype(num_nodes)
    if total == 0:
        if not allow_empty:
            raise StoreError(f"{what}: holds no edges; pass allow_empty_edges=True to import a graph without edges")
        out.append("indices", torch.from_numpy(np.empty(0, dtype=idx_dtype)))
        return 0
    scratch = out.path / _SCRATCH
    try:
        unsorted = np.memmap(scratch, dtype=idx_dtype, mode="w+", shape=(total,))
        cursor = indptr[:-1].copy()
        for src, dst in _checked(edges(), num_nodes, what, symmetrize):
            _scatter(unsorted, cursor, src, dst)
        if not np.array_equal(cursor, indptr[1:]):
            raise StoreError(f"{what}: the edges changed between the two passes over them")
        per_block = max(1, chunk_bytes // 24)  # edges per sorting block: int64 key + local ids + values
        max_nodes = max(1, (1 << 62) // max(num_nodes, 1))  # keeps local * N inside int64
        lo = 0
        while lo < num_nodes:
            hi = int(np.searchsorted(indptr, indptr[lo] + per_block, side="right")) - 1
            hi = min(max(hi, lo + 1), num_nodes, lo + max_nodes)
            a, b = int(indptr[lo]), int(indptr[hi])
            local = np.repeat(np.arange(hi - lo, dtype=np.int64), deg[lo:hi]) * num_nodes
            key = local + unsorted[a:b]
            key.sort()  # local id is the major key: each node's list stays in place and gets sorted
            out.append("indices", torch.from_numpy((key - local).astype(idx_dtype)))
            lo = hi
        del unsorted
    finally:
        scratch.unlink(missing_ok=True)
    return total


class FeatureSink:
    """Append feature chunks to the store, keeping the source dtype unless ``feature_dtype`` converts it.

    Float features are checked for NaN/inf as they stream by; ``finish`` refuses them (count, first row and column)
    unless ``allow_nonfinite``. Integer features that a store holds (int8/uint8/int32/int64) are kept, with a note.
    """

    def __init__(self, out: StoreWriter, *, feature_dtype: str | None, source: str,
                 allow_nonfinite: bool = False) -> None:
        self.out, self.source, self.rows = out, source, 0
        self.target = None if feature_dtype is None else DTYPES[feature_dtype][0]
        self.allow_nonfinite = allow_nonfinite
        self.nonfinite, self.first_bad = 0, None
        self.notes: list[str] = []

    def add(self, chunk: np.ndarray) -> None:
        """Append ``[rows, D]`` rows."""
        if chunk.ndim != 2:
            raise StoreError(f"{self.source}: features must be 2-D [N, D], got shape {chunk.shape}")
        t = to_tensor(chunk) if chunk.dtype.name in DTYPES else None
        if self.target is not None:
            t = to_tensor(chunk.astype(np.float32)) if t is None else t
            if not t.is_floating_point() and not self.notes:
                self.notes.append(f"{chunk.dtype.name} features converted to {self.target}")
            t = t.to(self.target)
        elif t is None:
            raise StoreError(f"{self.source}: features are {chunk.dtype.name}, which a store cannot hold (valid: "
                             f"{', '.join(DTYPES)}); pass feature_dtype='float32' (or float16/bfloat16) to convert")
        elif not t.is_floating_point() and not self.notes:
            self.notes.append(f"{chunk.dtype.name} integer features kept as {chunk.dtype.name}")
        if t.is_floating_point():
            ok = torch.isfinite(t)
            if not bool(ok.all()):
                where = (~ok).nonzero()
                self.nonfinite += int(where.shape[0])
                if self.first_bad is None:
                    self.first_bad = (self.rows + int(where[0, 0]), int(where[0, 1]))
        self.out.append("features", t)
        self.rows += int(chunk.shape[0])

    def finish(self) -> bool:
        """Refuse NaN/inf features unless allowed; returns whether the store holds any (the manifest flag)."""
        if self.nonfinite and not self.allow_nonfinite:
            row, col = self.first_bad or (0, 0)
            raise StoreError(f"{self.source}: {self.nonfinite} non-finite feature values (NaN/inf), the first at row "
                             f"{row}, column {col}; pass allow_nonfinite=True to keep them")
        return self.nonfinite > 0


class LabelSink:
    """Append labels as int64 with -1 for unlabelled nodes (NaN, infinite or negative in the source).

    Tracks the class count and, with ``collect_train``, the ids of labelled nodes (the default training set).
    """

    def __init__(self, out: StoreWriter, *, num_nodes: int, collect_train: bool, source: str) -> None:
        self.out, self.num_nodes, self.source = out, num_nodes, source
        self.rows, self.max_label = 0, -1
        self.train: list[np.ndarray] | None = [] if collect_train else None

    def add(self, chunk: np.ndarray) -> None:
        """Append labels (any numeric dtype; a trailing width-1 axis is dropped)."""
        if chunk.ndim > 1:
            if int(np.prod(chunk.shape[1:])) != 1:
                raise StoreError(f"{self.source}: labels must be one value per node, got rows of shape "
                                 f"{chunk.shape[1:]}")
            chunk = chunk.reshape(-1)
        if self.rows + chunk.size > self.num_nodes:
            raise StoreError(f"{self.source}: more labels than the {self.num_nodes} nodes the features give")
        if chunk.dtype.kind == "f":
            valid = np.isfinite(chunk) & (chunk >= 0)
            labels = np.where(valid, chunk, -1).astype(np.int64)
        else:
            labels = chunk.astype(np.int64)
            labels[labels < 0] = -1
        if labels.size:
            self.max_label = max(self.max_label, int(labels.max()))
        if self.train is not None:
            self.train.append(np.flatnonzero(labels >= 0) + self.rows)
        self.out.append("labels", torch.from_numpy(labels))
        self.rows += labels.size

    def finish(self, *, allow_prefix: bool) -> int | None:
        """Pad unlabelled rows (only with ``allow_prefix``), append the training ids; returns the class count."""
        if self.rows < self.num_nodes:
            if not allow_prefix:
                raise StoreError(f"{self.source}: {self.rows} labels for {self.num_nodes} nodes (the counts "
                                 f"must match)")
            self.out.append("labels", torch.full((self.num_nodes - self.rows,), -1, dtype=torch.int64))
        if self.train is not None:
            ids = np.concatenate(self.train) if self.train else np.empty(0, np.int64)  # ascending already
            self.out.append("train_ids", torch.from_numpy(ids.astype(np.int64)))
        return self.max_label + 1 if self.max_label >= 0 else None


def append_train_ids(out: StoreWriter, chunks: Iterator[np.ndarray], *, num_nodes: int, source: str) -> int:
    """Append training ids from a split's chunks, range-checked and sorted (as the format says); returns how many.

    The ids are held in memory to sort them (8 bytes each, at most N of them, less than the CSR's O(N)).
    """
    parts = []
    for chunk in chunks:
        ids = as_ids(np.asarray(chunk).reshape(-1), path=Path(source), what="training ids")
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= num_nodes):
            bad = int(ids.min()) if int(ids.min()) < 0 else int(ids.max())
            raise StoreError(f"{source}: training id {bad} is outside [0, {num_nodes})")
        parts.append(ids)
    ids = np.sort(np.concatenate(parts)) if parts else np.empty(0, np.int64)
    out.append("train_ids", torch.from_numpy(ids))
    return int(ids.size)


def rel(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when inside it (for the manifest), else absolute."""
    try:
        return os.path.relpath(path, root) if path.is_relative_to(root) else str(path)
    except ValueError:
        return str(path)

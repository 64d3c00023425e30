"""Import an OGB node-property dataset (ogbn-products, ogbn-papers100M, ...) from its unpacked local folder.

Two layouts under ``<root>/raw/`` (``root`` is the dataset folder, or a folder holding exactly one such dataset):

- csv (ogbn-products): ``edge.csv.gz`` ("src,dst" per line), ``node-feat.csv.gz`` (one row per node),
  optional ``node-label.csv.gz`` and ``num-node-list.csv.gz``;
- npz (ogbn-papers100M): ``data.npz`` with ``edge_index`` [2, E] and ``node_feat`` [N, D] (``node_year`` and
  other keys are ignored), optional ``node-label.npz`` with ``node_label`` [N] or [N, 1] (NaN: unlabelled).

Training ids come from ``<root>/split/<scheme>/train.csv.gz`` when there is one, else all labelled nodes.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from accessbench.kernels.errors import InvalidOptions, StoreError
from accessbench.workloads.store import StoreWriter

from ._build import (
    DEFAULT_CHUNK_BYTES,
    FeatureSink,
    LabelSink,
    append_train_ids,
    check_common,
    rel,
    write_csr,
)
from ._read import NpzArray, csv_columns, iter_csv, npz_keys

__all__ = ["LAYOUTS", "import_ogb"]

#: layout name -> the files (under raw/) that identify it
LAYOUTS = {"csv": ("edge.csv.gz", "node-feat.csv.gz"), "npz": ("data.npz",)}


def _csv_file(folder: Path, stem: str) -> Path | None:
    """``stem.csv.gz`` (or an uncompressed ``stem.csv``) in ``folder``, if present."""
    for suffix in (".csv.gz", ".csv"):
        if (folder / (stem + suffix)).is_file():
            return folder / (stem + suffix)
    return None


def _dataset_root(src: Path) -> Path:
    if not src.is_dir():
        raise StoreError(f"{src}: no such directory (expected an unpacked OGB dataset folder with raw/)")
    if (src / "raw").is_dir():
        return src
    found = sorted(p for p in src.iterdir() if p.is_dir() and (p / "raw").is_dir())
    if len(found) == 1:
        return found[0]
    if not found:
        raise StoreError(f"{src}: no OGB dataset here: expected {src / 'raw'}/ (edge.csv.gz + node-feat.csv.gz, or "
                         f"data.npz), or a dataset folder such as {src / 'ogbn_products'}/raw/")
    names = ", ".join(p.name for p in found)
    raise StoreError(f"{src} holds several OGB datasets ({names}); pass one of those folders")


def _layout(root: Path) -> tuple[str, dict[str, Path]]:
    """The layout and its files; a missing required file raises ``StoreError`` naming it and its content."""
    raw = root / "raw"
    edge, feat = _csv_file(raw, "edge"), _csv_file(raw, "node-feat")
    if (raw / "data.npz").is_file() and edge is None:
        files = {"data": raw / "data.npz"}
        if (raw / "node-label.npz").is_file():
            files["labels"] = raw / "node-label.npz"
        return "npz", files
    if edge is None and feat is None:
        raise StoreError(f"{raw}: found neither edge.csv.gz + node-feat.csv.gz (ogbn-products layout) nor data.npz "
                         f"(ogbn-papers100M layout)")
    if edge is None:
        raise StoreError(f"{raw / 'edge.csv.gz'} is missing (expected one 'src,dst' edge per line)")
    if feat is None:
        raise StoreError(f"{raw / 'node-feat.csv.gz'} is missing (expected one comma-separated feature row per node)")
    files = {"edges": edge, "features": feat}
    for key, stem in (("labels", "node-label"), ("num_nodes", "num-node-list")):
        found = _csv_file(raw, stem)
        if found is not None:
            files[key] = found
    return "csv", files


def _train_file(root: Path, split: str | None) -> Path | None:
    """The training ids of ``split/<scheme>/``: ``train.csv.gz`` (OGB's published layout) or ``split_dict.pt``
    (what ogb 1.3.6's ``DatasetSaver.save_split`` writes); the only scheme when ``split`` is None, else the named one.
    """
    sdir = root / "split"
    schemes = sorted(p.name for p in sdir.iterdir() if p.is_dir()) if sdir.is_dir() else []
    if split is None:
        if not schemes:
            return None
        if len(schemes) > 1:
            raise InvalidOptions(f"{sdir} holds several split schemes; pass split= one of {', '.join(schemes)}")
        split = schemes[0]
    elif split not in schemes:
        raise StoreError(f"{sdir / split}: no such split scheme; found: {', '.join(schemes) or 'none'}")
    train = _csv_file(sdir / split, "train")
    if train is None and (sdir / split / "split_dict.pt").is_file():
        return sdir / split / "split_dict.pt"
    if train is None:
        raise StoreError(f"{sdir / split}: neither train.csv.gz (one training node id per line) nor split_dict.pt "
                         f"(DatasetSaver's {{'train', 'valid', 'test'}} dict) is there")
    return train


def _split_dict_train(path: Path) -> np.ndarray:
    """The ``train`` ids of a ``split_dict.pt``, loaded with ``weights_only=True`` (numpy arrays allowed, no code)."""
    import torch

    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # pragma: no cover - numpy < 2
        from numpy.core.multiarray import _reconstruct
    safe = [(_reconstruct, "numpy.core.multiarray._reconstruct"), (_reconstruct, "numpy._core.multiarray._reconstruct"),
            np.ndarray, np.dtype, *{type(np.dtype(t)) for t in ("i1", "u1", "i2", "i4", "i8", "u2", "u4", "u8")}]
    try:
        with torch.serialization.safe_globals(safe):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling raises many types; all mean "not a usable split file"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreError(f"{path}: cannot load it as a split dict with weights_only=True ({first})") from None
    if not isinstance(obj, dict) or "train" not in obj:
        keys = ", ".join(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
        raise StoreError(f"{path}: expected a dict with a 'train' entry (DatasetSaver's split_dict), got {keys}")
    train = obj["train"]
    arr = train.numpy() if isinstance(train, torch.Tensor) else np.asarray(train)
    if arr.dtype.hasobject:
        raise StoreError(f"{path}: 'train' holds Python objects, not node ids")
    return arr.reshape(-1)


def _single_column(path: Path, what: str) -> None:
    cols = csv_columns(path, what)
    if cols not in (0, 1):
        raise StoreError(f"{path} ({what}): expected one value per line, found {cols} columns")


def _import_csv(out: StoreWriter, files: dict[str, Path], train: Path | None, *, symmetrize: bool,
                feature_dtype: str | None, chunk_bytes: int, allow_nonfinite: bool,
                allow_empty_edges: bool) -> tuple[int, int | None, FeatureSink]:
    """Products layout; returns (nodes, classes)."""
    fpath = files["features"]
    width = csv_columns(fpath, "node features")
    if width == 0:
        raise StoreError(f"{fpath} is empty (expected one comma-separated feature row per node)")
    feats = FeatureSink(out, feature_dtype=feature_dtype, source=str(fpath), allow_nonfinite=allow_nonfinite)
    # parsed as float64, then rounded to float32: the values OGB's own loader produces
    for chunk in iter_csv(fpath, dtype=np.float64, rows=max(1, chunk_bytes // (8 * width)), ncols=width,
                          what="node features"):
        feats.add(chunk.astype(np.float32))
    feats.finish()
    n = feats.rows
    if "num_nodes" in files:
        _single_column(files["num_nodes"], "the node count")
        counts = [int(v) for c in iter_csv(files["num_nodes"], dtype=np.int64, rows=16, ncols=1,
                                           what="the node count") for v in c.reshape(-1)]
        if counts and counts[0] != n:
            raise StoreError(f"{files['num_nodes']} says {counts[0]} nodes but {fpath} has {n} feature rows")
    classes = None
    rows = max(1, chunk_bytes // 8)
    if "labels" in files:
        _single_column(files["labels"], "node labels")
        labels = LabelSink(out, num_nodes=n, collect_train=train is None, source=str(files["labels"]))
        for chunk in iter_csv(files["labels"], dtype=np.float64, rows=rows, ncols=1, what="node labels"):
            labels.add(chunk)
        classes = labels.finish(allow_prefix=False)
    if train is not None:
        _append_split(out, train, num_nodes=n, rows=rows)
    epath = files["edges"]
    if csv_columns(epath, "the edge list") not in (0, 2):
        raise StoreError(f"{epath}: expected two columns 'src,dst' per line")

    def edges():  # a fresh pass over the file each call
        for chunk in iter_csv(epath, dtype=np.int64, rows=max(1, chunk_bytes // 16), ncols=2, what="the edge list"):
            yield np.ascontiguousarray(chunk[:, 0]), np.ascontiguousarray(chunk[:, 1])

    write_csr(out, edges, n, symmetrize=symmetrize, what=str(epath), chunk_bytes=chunk_bytes,
              allow_empty=allow_empty_edges)
    return n, classes, feats


def _append_split(out: StoreWriter, train: Path, *, num_nodes: int, rows: int) -> None:
    """The split's training ids (a csv, one per line, or a ``split_dict.pt``), checked against ``num_nodes``."""
    if train.name == "split_dict.pt":
        ids = _split_dict_train(train)
        append_train_ids(out, iter([ids]), num_nodes=num_nodes, source=str(train))
        return
    _single_column(train, "training ids")
    append_train_ids(out, iter_csv(train, dtype=np.int64, rows=rows, ncols=1, what="training ids"),
                     num_nodes=num_nodes, source=str(train))


def _import_npz(out: StoreWriter, files: dict[str, Path], train: Path | None, *, symmetrize: bool,
                feature_dtype: str | None, chunk_bytes: int, allow_nonfinite: bool,
                allow_empty_edges: bool) -> tuple[int, int | None, FeatureSink]:
    """papers100M layout; returns (nodes, classes)."""
    data = files["data"]
    feat = NpzArray(data, "node_feat", "node features [N, D]")
    edge = NpzArray(data, "edge_index", "edges [2, E]")
    if len(feat.shape) != 2 or feat.shape[1] < 1:
        raise StoreError(f"{data}: node_feat has shape {feat.shape}; expected [N, D]")
    n, width = feat.shape
    sink = FeatureSink(out, feature_dtype=feature_dtype, source=f"{data}:node_feat", allow_nonfinite=allow_nonfinite)
    for chunk in feat.rows(rows=max(1, chunk_bytes // (width * feat.dtype.itemsize))):
        sink.add(chunk)
    sink.finish()
    if "num_edges_list" in npz_keys(data):
        listed = [int(v) for c in NpzArray(data, "num_edges_list", "the edge count").rows(rows=16) for v in c.ravel()]
        have = edge.size // 2 if len(edge.shape) == 2 else None
        if listed and have is not None and sum(listed) != have:
            raise StoreError(f"{data}: num_edges_list says {sum(listed)} edges but edge_index has {have} "
                             f"(shape {list(edge.shape)})")
    if "num_nodes_list" in npz_keys(data):
        listed = [int(v) for c in NpzArray(data, "num_nodes_list", "the node count").rows(rows=16) for v in c.ravel()]
        if listed and listed[0] != n:
            raise StoreError(f"{data}: num_nodes_list says {listed[0]} nodes but node_feat has {n} rows")
    classes = None
    rows = max(1, chunk_bytes // 8)
    if "labels" in files:
        lab = NpzArray(files["labels"], "node_label", "node labels [N] or [N, 1], NaN for unlabelled")
        labels = LabelSink(out, num_nodes=n, collect_train=train is None, source=f"{files['labels']}:node_label")
        for chunk in lab.rows(rows=rows):
            labels.add(chunk)
        classes = labels.finish(allow_prefix=False)
    if train is not None:
        _append_split(out, train, num_nodes=n, rows=rows)
    write_csr(out, lambda: edge.pairs(chunk=max(1, chunk_bytes // 16)), n, symmetrize=symmetrize,
              what=f"{data}:edge_index", chunk_bytes=chunk_bytes, allow_empty=allow_empty_edges)
    return n, classes, sink


def import_ogb(src_dir: str | Path, dst_store: str | Path, *, name: str | None = None, overwrite: bool = False,
               symmetrize: bool = True, split: str | None = None, feature_dtype: str | None = None,
               chunk_bytes: int = DEFAULT_CHUNK_BYTES, allow_nonfinite: bool = False,
               allow_empty_edges: bool = False) -> Path:
    """Import an unpacked OGB node-property dataset at ``src_dir`` into a store at ``dst_store``; returns its path.

    ``symmetrize``: add the reverse of every edge except self-loops (OGB lists each undirected pair once).
    ``split``: the scheme folder under ``split/`` for training ids (None: the only one there, if any).
    ``feature_dtype``: None keeps the source dtype (float32 for csv); or float32 / float16 / bfloat16.
    ``chunk_bytes``: the memory one chunk of the input may take (rows, edges); the CSR also needs O(N) memory.
    ``allow_nonfinite``: keep NaN/inf features (the manifest then says ``"nonfinite": true``); refused otherwise.
    ``allow_empty_edges``: import a graph without edges (recorded in the manifest's options); refused otherwise.
    """
    started = time.perf_counter()
    check_common(symmetrize=symmetrize, feature_dtype=feature_dtype, chunk_bytes=chunk_bytes,
                 allow_nonfinite=allow_nonfinite, allow_empty_edges=allow_empty_edges)
    if split is not None and (not isinstance(split, str) or not split or "/" in split):
        raise InvalidOptions(f"split must be the name of a folder under split/, got {split!r}")
    root = _dataset_root(Path(src_dir))
    layout, files = _layout(root)
    train = _train_file(root, split)
    with StoreWriter(dst_store, overwrite=overwrite) as out:
        step = _import_csv if layout == "csv" else _import_npz
        _, classes, feats = step(out, files, train, symmetrize=symmetrize, feature_dtype=feature_dtype,
                                 chunk_bytes=chunk_bytes, allow_nonfinite=allow_nonfinite,
                                 allow_empty_edges=allow_empty_edges)
        used = sorted({*files.values(), *([train] if train else [])})
        source = {
            "importer": "ogb",
            "layout": layout,
            "path": str(root.resolve()),
            "files": [rel(p, root) for p in used],
            "options": {"symmetrize": symmetrize, "split": train.parent.name if train else None,
                        "feature_dtype": feature_dtype, "chunk_bytes": chunk_bytes,
                        "allow_nonfinite": allow_nonfinite, "allow_empty_edges": allow_empty_edges},
            "notes": feats.notes,
            "train_ids": "split file" if train else ("labelled nodes" if "labels" in files else None),
            "seconds": round(time.perf_counter() - started, 3),
        }
        return out.finish(name=name or root.name, num_classes=classes, source=source, nonfinite=feats.finish())

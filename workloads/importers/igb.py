"""Import the homogeneous IGB graph (papers citing papers) from its local folder.

Layout (``<src>/processed/...`` or ``<src>/<size>/processed/...``):
``paper/node_feat.npy`` [N, D], ``paper/node_label_19.npy`` or ``paper/node_label_2K.npy`` [L <= N] (optional),
``paper__cites__paper/edge_index.npy`` [E, 2]. Each file is a real ``.npy`` (memory-mapped with ``np.load``) or,
as for the large sizes, a headerless raw array: features ``[num_nodes, feat_dim]`` of ``raw_feat_dtype``, labels
``raw_label_dtype``, edges ``[E, 2]`` of ``raw_edge_dtype``, with sizes checked to divide exactly.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from accessbench.kernels.errors import InvalidOptions, StoreError
from accessbench.workloads.store import DTYPES, StoreWriter

from ._build import DEFAULT_CHUNK_BYTES, FeatureSink, LabelSink, check_common, rel, write_csr
from ._read import is_npy, iter_pairs, map_npy, map_raw

__all__ = ["IGB_SIZES", "LABEL_SETS", "import_igb"]

#: papers per IGB size (the node count of a headerless raw feature file when ``num_nodes`` is not given)
IGB_SIZES = {"tiny": 100_000, "small": 1_000_000, "medium": 10_000_000, "large": 100_000_000, "full": 269_346_174}
#: label files: ``node_label_<set>.npy`` (19 or 2,983 classes)
LABEL_SETS = ("19", "2K")
_RAW_DTYPES = tuple(n for n in DTYPES if n != "bfloat16")  # numpy cannot map bfloat16


def _dataset_dir(src: Path, size: str | None) -> tuple[Path, str | None]:
    """The folder holding ``processed/``, and the size it is (when known)."""
    if not src.is_dir():
        raise StoreError(f"{src}: no such directory (expected an IGB dataset folder with processed/)")
    if size is not None:
        for cand in (src / size, src):
            if (cand / "processed").is_dir():
                return cand, size
        raise StoreError(f"{src / size / 'processed'} is missing (expected the IGB {size} dataset's processed/ "
                         f"folder, with paper/node_feat.npy and paper__cites__paper/edge_index.npy)")
    if (src / "processed").is_dir():
        return src, src.name if src.name in IGB_SIZES else None
    found = [s for s in IGB_SIZES if (src / s / "processed").is_dir()]
    if len(found) == 1:
        return src / found[0], found[0]
    if not found:
        raise StoreError(f"{src}: no IGB dataset here: expected {src / 'processed'}/paper/node_feat.npy, or "
                         f"{src}/<size>/processed/... with size one of {', '.join(IGB_SIZES)}")
    raise InvalidOptions(f"{src} holds several IGB sizes; pass size= one of {', '.join(found)}")


def _required(path: Path, what: str) -> Path:
    if not path.is_file():
        raise StoreError(f"{path} is missing (expected {what})")
    return path


def _label_file(paper: Path, label_set: str | None) -> Path | None:
    if label_set is not None:
        return _required(paper / f"node_label_{label_set}.npy", f"the node labels of the {label_set}-class set")
    for s in LABEL_SETS:
        if (paper / f"node_label_{s}.npy").is_file():
            return paper / f"node_label_{s}.npy"
    return None


def _check_options(size: str | None, num_nodes: int | None, feat_dim: int, label_set: str | None,
                   raw: dict[str, str]) -> None:
    if size is not None and size not in IGB_SIZES:
        raise InvalidOptions(f"IGB size {size!r}; valid: {', '.join(IGB_SIZES)}")
    if num_nodes is not None and (not isinstance(num_nodes, int) or num_nodes < 1):
        raise InvalidOptions(f"num_nodes must be a positive integer, got {num_nodes!r}")
    if not isinstance(feat_dim, int) or feat_dim < 1:
        raise InvalidOptions(f"feat_dim must be a positive integer, got {feat_dim!r}")
    if label_set is not None and label_set not in LABEL_SETS:
        raise InvalidOptions(f"label_set {label_set!r}; valid: None (19 if present, else 2K), {', '.join(LABEL_SETS)}")
    for option, value in raw.items():
        if value not in _RAW_DTYPES:
            raise InvalidOptions(f"{option} {value!r}; valid: {', '.join(_RAW_DTYPES)}")


def _features(path: Path, *, num_nodes: int | None, size: str | None, feat_dim: int, dtype: str) -> np.ndarray:
    """The feature table ``[N, D]``, memory-mapped from a ``.npy`` or a headerless raw file."""
    if is_npy(path):
        arr = map_npy(path, "node features [N, D]")
        if arr.ndim != 2:
            raise StoreError(f"{path}: node features have shape {arr.shape}; expected [N, D]")
        if num_nodes is not None and arr.shape[0] != num_nodes:
            raise StoreError(f"{path} holds {arr.shape[0]} feature rows but num_nodes={num_nodes} was given")
        return arr
    rows = num_nodes if num_nodes is not None else IGB_SIZES.get(size or "")
    if rows is None:
        raise StoreError(f"{path} is a headerless raw array: pass num_nodes (or size= one of {', '.join(IGB_SIZES)}) "
                         f"so its shape [num_nodes, feat_dim={feat_dim}] is known")
    return map_raw(path, dtype=DTYPES[dtype][1], width=feat_dim, rows=rows, what="node features",
                   hint="num_nodes, feat_dim or raw_feat_dtype")


def import_igb(src_dir: str | Path, dst_store: str | Path, *, size: str | None = None, name: str | None = None,
               overwrite: bool = False, num_nodes: int | None = None, feat_dim: int = 1024,
               raw_feat_dtype: str = "float32", label_set: str | None = None, raw_label_dtype: str = "float32",
               raw_edge_dtype: str = "int64", symmetrize: bool = False, feature_dtype: str | None = None,
               chunk_bytes: int = DEFAULT_CHUNK_BYTES, allow_nonfinite: bool = False,
               allow_empty_edges: bool = False) -> Path:
    """Import the IGB paper graph at ``src_dir`` into a store at ``dst_store``; returns its path.

    ``size``: tiny / small / medium / large / full, picks ``<src>/<size>/`` and gives a raw file's node count.
    ``num_nodes``, ``feat_dim`` (elements per row), ``raw_*_dtype``: how to read headerless raw files (ignored for
    real ``.npy`` files, whose header says). ``label_set``: "19" or "2K" (None: 19 if present, else 2K, else none).
    ``symmetrize``: add the reverse of every non-self-loop edge (off: the citation edges stay directed, as IGB's own
    loader keeps them). ``feature_dtype``: None keeps the source dtype; or float32 / float16 / bfloat16.
    ``allow_nonfinite`` / ``allow_empty_edges``: keep NaN/inf features / import a graph without edges (both
    refused otherwise, and recorded in the manifest when used).
    """
    started = time.perf_counter()
    check_common(symmetrize=symmetrize, feature_dtype=feature_dtype, chunk_bytes=chunk_bytes,
                 allow_nonfinite=allow_nonfinite, allow_empty_edges=allow_empty_edges)
    raw_dtypes = {"raw_feat_dtype": raw_feat_dtype, "raw_label_dtype": raw_label_dtype,
                  "raw_edge_dtype": raw_edge_dtype}
    _check_options(size, num_nodes, feat_dim, label_set, raw_dtypes)
    base, size = _dataset_dir(Path(src_dir), size)
    paper = base / "processed" / "paper"
    fpath = _required(paper / "node_feat.npy", "the paper features [N, D]")
    epath = _required(base / "processed" / "paper__cites__paper" / "edge_index.npy", "the citation edges [E, 2]")
    lpath = _label_file(paper, label_set)
    feats = _features(fpath, num_nodes=num_nodes, size=size, feat_dim=feat_dim, dtype=raw_feat_dtype)
    n = int(feats.shape[0])
    if lpath is not None:
        labels = map_npy(lpath, "node labels") if is_npy(lpath) else map_raw(
            lpath, dtype=DTYPES[raw_label_dtype][1], width=0, rows=None, what="node labels", hint="raw_label_dtype")
    edges = map_npy(epath, "edges [E, 2]") if is_npy(epath) else map_raw(
        epath, dtype=DTYPES[raw_edge_dtype][1], width=2, rows=None, what="edges [E, 2]", hint="raw_edge_dtype")
    with StoreWriter(dst_store, overwrite=overwrite) as out:
        sink = FeatureSink(out, feature_dtype=feature_dtype, source=str(fpath), allow_nonfinite=allow_nonfinite)
        step = max(1, chunk_bytes // max(1, feats.shape[1] * feats.dtype.itemsize))
        for lo in range(0, n, step):
            sink.add(np.asarray(feats[lo:lo + step]))
        nonfinite = sink.finish()
        classes = None
        if lpath is not None:
            lsink = LabelSink(out, num_nodes=n, collect_train=True, source=str(lpath))
            step = max(1, chunk_bytes // 8)
            for lo in range(0, labels.shape[0], step):
                lsink.add(np.asarray(labels[lo:lo + step]))
            classes = lsink.finish(allow_prefix=True)  # IGB-full labels only a prefix of its papers
        write_csr(out, lambda: iter_pairs(edges, chunk=max(1, chunk_bytes // 16), path=epath), n,
                  symmetrize=symmetrize, what=str(epath), chunk_bytes=chunk_bytes, allow_empty=allow_empty_edges)
        used = [p for p in (fpath, lpath, epath) if p is not None]
        source = {
            "importer": "igb",
            "path": str(base.resolve()),
            "size": size,
            "files": {rel(p, base): ("npy" if is_npy(p) else "raw") for p in used},
            "options": {"num_nodes": num_nodes, "feat_dim": feat_dim, **raw_dtypes, "label_set": label_set,
                        "symmetrize": symmetrize, "feature_dtype": feature_dtype, "chunk_bytes": chunk_bytes,
                        "allow_nonfinite": allow_nonfinite, "allow_empty_edges": allow_empty_edges},
            "notes": sink.notes,
            "train_ids": "labelled nodes" if lpath is not None else None,
            "seconds": round(time.perf_counter() - started, 3),
        }
        return out.finish(name=name or (f"igb-{size}" if size else base.name), num_classes=classes, source=source,
                          nonfinite=nonfinite)

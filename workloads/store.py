"""The on-disk graph store: a directory with ``manifest.json`` and raw little-endian arrays (see docs/FORMAT.md).

``StoreWriter`` streams arrays to disk in chunks (bounded memory) and writes the manifest last, so a store without a
manifest is an incomplete one; a writer that fails removes what it wrote. ``open_store`` validates everything against
the manifest and memory-maps the arrays. The first open of a store checks the full digest of every array (and that
the features are finite, unless the manifest allows otherwise), then records the verified state of its files (size,
mtime_ns, inode) in ``.verified.json`` beside the manifest (or in the per-user cache when the store is read-only), so
later opens are fast until any file changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from accessbench.kernels.errors import StoreError
from accessbench.kernels.types import FeatureFile, GraphData

__all__ = ["DTYPES", "MANIFEST", "SCHEMA_VERSION", "VERIFIED", "StoreWriter", "open_store", "read_manifest",
           "verify_store"]

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
FORMAT_NAME = "accessbench-graph-store"
#: Feature/array dtypes a store may hold: name -> (torch dtype, numpy dtype used to map the bytes).
DTYPES: dict[str, tuple[torch.dtype, str]] = {
    "float32": (torch.float32, "<f4"),
    "float16": (torch.float16, "<f2"),
    "bfloat16": (torch.bfloat16, "<u2"),
    "int8": (torch.int8, "i1"),
    "uint8": (torch.uint8, "u1"),
    "int32": (torch.int32, "<i4"),
    "int64": (torch.int64, "<i8"),
}
_SAMPLE_CHUNK = 1 << 20  # bytes per sampled-digest chunk
_SAMPLE_COUNT = 16  # chunks in a sampled digest
VERIFIED = ".verified.json"  # the record of the last full verification (see _record_paths)
#: a file modified this close before a verification began is not recorded as verified (timestamps are coarse, so a
#: write in the same tick could leave its mtime unchanged); the next open verifies it again
_RACY_NS = 2_000_000_000
_SCAN_BYTES = 8 << 20  # bytes read at a time by the full check
_FLOAT_DTYPES = ("float32", "float16", "bfloat16")


def dtype_name(dtype: torch.dtype) -> str:
    """The store's name for a torch dtype."""
    for name, (td, _) in DTYPES.items():
        if td == dtype:
            return name
    raise StoreError(f"dtype {dtype} cannot be stored; valid: {', '.join(DTYPES)}")


def _sampled_digest(path: Path, size: int) -> str:
    """blake2b over 16 evenly spaced 1 MiB chunks (the whole file when smaller): cheap to check on every open."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        if size <= _SAMPLE_CHUNK * _SAMPLE_COUNT:
            h.update(f.read())
        else:
            step = (size - _SAMPLE_CHUNK) // (_SAMPLE_COUNT - 1)
            for i in range(_SAMPLE_COUNT):
                f.seek(i * step)
                h.update(f.read(_SAMPLE_CHUNK))
    h.update(size.to_bytes(8, "little"))
    return h.hexdigest()


def _itemsize(dtype: str) -> int:
    return np.dtype(DTYPES[dtype][1]).itemsize


def _scan(fpath: Path, *, finite: tuple[str, int, int] | None = None) -> tuple[str, tuple[int, int, int] | None]:
    """The full blake2b digest of ``fpath``, read ``_SCAN_BYTES`` at a time (bounded memory).

    With ``finite=(dtype, row_stride, row_bytes)`` the rows are also checked for NaN/inf; the second value is then
    ``(count, first_row, first_column)`` of the non-finite values, or None when there are none.
    """
    h = hashlib.blake2b(digest_size=16)
    step = _SCAN_BYTES
    if finite is not None:
        step = max(1, _SCAN_BYTES // max(finite[1], 1)) * max(finite[1], 1)
    buf = bytearray(step)
    bad, first, row0 = 0, None, 0
    with open(fpath, "rb") as f:
        while got := f.readinto(buf):
            view = memoryview(buf)[:got]
            h.update(view)
            if finite is not None:
                dtype, stride, row_bytes = finite
                rows = got // stride
                raw = torch.frombuffer(buf, dtype=torch.uint8, count=rows * stride).view(rows, stride)
                vals = raw[:, :row_bytes].contiguous().view(DTYPES[dtype][0])
                ok = torch.isfinite(vals)
                if not bool(ok.all()):
                    where = (~ok).nonzero()
                    bad += int(where.shape[0])
                    if first is None:
                        first = (row0 + int(where[0, 0]), int(where[0, 1]))
                row0 += rows
    return h.hexdigest(), (bad, *first) if first is not None else None


def _full_digest(path: Path) -> str:
    return _scan(path)[0]


@dataclass
class _ArrayOut:
    name: str
    dtype: str
    path: Path
    fh: BinaryIO
    rows: int = 0
    hasher: Any = field(default_factory=lambda: hashlib.blake2b(digest_size=16))


class StoreWriter:
    """Write a store chunk by chunk: ``append(name, tensor)`` for each array, then ``finish(**meta)``.

    Arrays: ``indptr`` (int64), ``indices`` (int32/int64), ``features`` ([rows, D]), optional ``labels`` (int64) and
    ``train_ids`` (int64). Use as a context manager: an exception removes the files written (and the directory, when
    the writer made it), so nothing half-written is left. A directory that is not empty is refused unless
    ``overwrite`` (which first removes the old store's manifest, so a failed rewrite never looks complete).
    """

    def __init__(self, path: str | Path, *, overwrite: bool = False) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise StoreError(f"cannot write a store at {self.path}: it exists and is not a directory")
        if not overwrite:
            if (self.path / MANIFEST).exists():
                raise StoreError(f"a store already exists at {self.path} (pass overwrite to replace it)")
            if self.path.is_dir() and any(self.path.iterdir()):
                raise StoreError(f"{self.path} is not empty; refusing to write a store into it (pass overwrite to "
                                 f"replace its files, or choose an empty or new directory)")
        self._made_dir = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            (self.path / MANIFEST).unlink(missing_ok=True)
            (self.path / VERIFIED).unlink(missing_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot write a store at {self.path}: {exc.strerror or exc}") from None
        self._arrays: dict[str, _ArrayOut] = {}
        self._dims: dict[str, int] = {}
        self._finished = False

    def append(self, name: str, chunk: torch.Tensor) -> None:
        """Append rows to array ``name`` (created on first use with the chunk's dtype and row width)."""
        chunk = chunk.detach().cpu().contiguous()
        dim = int(chunk.shape[1]) if chunk.dim() == 2 else 0
        arr = self._arrays.get(name)
        if arr is None:
            path = self.path / f"{name}.bin"
            arr = _ArrayOut(name, dtype_name(chunk.dtype), path, open(path, "wb"))
            self._arrays[name] = arr
            self._dims[name] = dim
        elif dtype_name(chunk.dtype) != arr.dtype or dim != self._dims[name]:
            raise StoreError(f"array {name}: chunk dtype/width differs from earlier chunks")
        data = chunk.view(torch.uint8).numpy().tobytes() if chunk.numel() else b""
        if sys.byteorder != "little" and chunk.element_size() > 1:  # pragma: no cover - big-endian hosts
            data = chunk.numpy().byteswap().tobytes()
        arr.fh.write(data)
        arr.hasher.update(data)
        arr.rows += int(chunk.shape[0]) if chunk.dim() else 1

    def finish(self, *, name: str, num_classes: int | None = None, source: dict[str, Any] | None = None,
               nonfinite: bool = False) -> Path:
        """Close the arrays, then write the manifest (atomically); returns the store path.

        ``nonfinite``: the features may hold NaN/inf (recorded in the manifest; otherwise verification refuses them).
        """
        for required in ("indptr", "indices", "features"):
            if required not in self._arrays:
                raise StoreError(f"store is missing the {required} array")
        arrays: dict[str, Any] = {}
        for arr in self._arrays.values():
            arr.fh.flush()
            os.fsync(arr.fh.fileno())
            arr.fh.close()
            size = arr.path.stat().st_size
            dim = self._dims[arr.name]
            arrays[arr.name] = {
                "file": arr.path.name,
                "dtype": arr.dtype,
                "shape": [arr.rows, dim] if dim else [arr.rows],
                "bytes": size,
                "blake2b": arr.hasher.hexdigest(),
                "blake2b_sampled": _sampled_digest(arr.path, size),
            }
        feats = arrays["features"]
        elem = _itemsize(feats["dtype"])
        manifest = {
            "format": FORMAT_NAME,
            "schema_version": SCHEMA_VERSION,
            "name": name,
            "byte_order": "little",
            "num_nodes": arrays["indptr"]["shape"][0] - 1,
            "num_edges": arrays["indices"]["shape"][0],
            "feat_dim": feats["shape"][1],
            "dtype": feats["dtype"],
            "row_bytes": feats["shape"][1] * elem,
            "row_stride": feats["shape"][1] * elem,
            "num_classes": num_classes,
            "nonfinite": bool(nonfinite),
            "arrays": arrays,
            "source": source or {},
        }
        tmp = self.path / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
        os.replace(tmp, self.path / MANIFEST)
        self._finished = True
        return self.path

    def abort(self) -> None:
        """Close files without writing a manifest, and remove what this writer wrote."""
        for arr in self._arrays.values():
            if not arr.fh.closed:
                arr.fh.close()
        if self._finished:
            return
        for arr in self._arrays.values():
            arr.path.unlink(missing_ok=True)
        (self.path / (MANIFEST + ".tmp")).unlink(missing_ok=True)
        if self._made_dir:
            try:
                self.path.rmdir()  # only when empty: never removes files this writer did not make
            except OSError:
                pass

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.abort()


def _load_manifest(path: Path) -> tuple[dict[str, Any], str]:
    mpath = path / MANIFEST
    if not path.is_dir():
        raise StoreError(f"no graph store at {path} (not a directory)")
    if not mpath.is_file():
        raise StoreError(f"{path} is not a complete graph store: {MANIFEST} is missing")
    try:
        text = mpath.read_text()
        m = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"{mpath}: unreadable manifest ({exc})") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT_NAME:
        raise StoreError(f"{mpath}: not an accessbench graph store manifest")
    if m.get("schema_version") != SCHEMA_VERSION:
        raise StoreError(f"{mpath}: schema version {m.get('schema_version')} unsupported (this build reads {SCHEMA_VERSION})")
    if m.get("byte_order") != "little":
        raise StoreError(f"{mpath}: byte order {m.get('byte_order')!r} unsupported (arrays must be little-endian)")
    try:
        n, e, d = int(m["num_nodes"]), int(m["num_edges"]), int(m["feat_dim"])
        arrays = m["arrays"]
        for req in ("indptr", "indices", "features"):
            arrays[req]
        if m["dtype"] not in DTYPES:
            raise StoreError(f"{mpath}: feature dtype {m['dtype']!r} unsupported; valid: {', '.join(DTYPES)}")
        if int(m["row_stride"]) < int(m["row_bytes"]):
            raise StoreError(f"{mpath}: row_stride {m['row_stride']} < row_bytes {m['row_bytes']}")
        if int(m["row_bytes"]) != d * _itemsize(m["dtype"]):
            raise StoreError(f"{mpath}: row_bytes {m['row_bytes']} is not feat_dim {d} x {_itemsize(m['dtype'])} "
                             f"bytes ({m['dtype']})")
        for name, spec in arrays.items():
            shape = spec["shape"]
            if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
                raise StoreError(f"{mpath}: array {name} has shape {shape!r}; expected a list of counts")
            if spec.get("dtype") not in DTYPES:
                raise StoreError(f"{mpath}: array {name} has unsupported dtype {spec.get('dtype')!r}; valid: "
                                 f"{', '.join(DTYPES)}")
            int(spec["bytes"]), str(spec["file"]), str(spec["blake2b"]), str(spec["blake2b_sampled"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StoreError(f"{mpath}: manifest field missing or malformed ({exc!r})") from None
    if n < 0 or e < 0 or d < 1:
        raise StoreError(f"{mpath}: bad counts (nodes {n}, edges {e}, feat_dim {d})")
    if not isinstance(m.get("nonfinite", False), bool):
        raise StoreError(f"{mpath}: nonfinite must be true or false, got {m.get('nonfinite')!r}")
    return m, text


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Load and check the manifest's own fields (not the arrays)."""
    return _load_manifest(Path(path))[0]


# --- the record of a full verification ---------------------------------------------------------------------------

def _record_paths(path: Path) -> list[Path]:
    """Where a store's verified state is kept: beside its manifest, else (read-only store) in the per-user cache."""
    cache = Path(os.environ.get("ACCESSBENCH_CACHE", Path.home() / ".cache" / "accessbench")) / "verified"
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:32]
    return [path / VERIFIED, cache / f"{key}.json"]


def _file_state(fpath: Path) -> dict[str, int]:
    st = fpath.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino, "dev": st.st_dev}


def _state(path: Path, m: dict[str, Any], text: str) -> dict[str, Any]:
    """What a verification vouches for: the manifest's digest and every file's size, mtime and inode."""
    files = {MANIFEST: _file_state(path / MANIFEST)}
    for spec in m["arrays"].values():
        fpath = path / spec["file"]
        if fpath.is_file():
            files[spec["file"]] = _file_state(fpath)
    manifest_digest = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
    return {"manifest_blake2b": manifest_digest, "files": files}


def _is_recorded(path: Path, state: dict[str, Any]) -> bool:
    for rpath in _record_paths(path):
        try:
            rec = json.loads(rpath.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(rec, dict) and rec.get("state") == state:
            return True
    return False


def _record(path: Path, state: dict[str, Any], started_ns: int) -> None:
    """Remember a successful full verification (best effort: without a writable place, the next open verifies)."""
    if any(f["mtime_ns"] > started_ns - _RACY_NS for f in state["files"].values()):
        return  # too fresh to trust its mtime: verify again next time
    blob = json.dumps({"store": str(path.resolve()), "verified_at_ns": started_ns, "state": state}) + "\n"
    for rpath in _record_paths(path):
        tmp = rpath.with_name(rpath.name + f".{os.getpid()}.tmp")
        try:
            rpath.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(blob)
            os.replace(tmp, rpath)
            return
        except OSError:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass


def _expected_bytes(name: str, spec: dict[str, Any], m: dict[str, Any]) -> int:
    """The exact byte size that ``dtype`` x ``shape`` (and, for features, the row stride) give."""
    shape = list(spec["shape"])
    if name == "features" and len(shape) == 2:
        return shape[0] * int(m["row_stride"])
    return int(np.prod(shape, dtype=np.int64)) * _itemsize(spec["dtype"]) if shape else 0


def _check_array(path: Path, name: str, spec: dict[str, Any], m: dict[str, Any], *, full: bool) -> Path:
    fpath = path / spec["file"]
    if not fpath.is_file():
        raise StoreError(f"store {path}: array file {spec['file']} ({name}) is missing")
    size = fpath.stat().st_size
    if size != int(spec["bytes"]):
        kind = "truncated" if size < int(spec["bytes"]) else "longer than the manifest says"
        raise StoreError(f"store {path}: {spec['file']} is {kind} ({size} bytes, manifest says {spec['bytes']})")
    want = _expected_bytes(name, spec, m)
    if want != size:
        raise StoreError(f"store {path}: {spec['file']} is {size} bytes but the manifest's {spec['dtype']} "
                         f"{spec['shape']} needs {want} (its dtype or shape is wrong)")
    if not full:
        if _sampled_digest(fpath, size) != spec["blake2b_sampled"]:
            raise StoreError(f"store {path}: {spec['file']} is corrupt (checksum mismatch)")
        return fpath
    finite = None
    if name == "features" and spec["dtype"] in _FLOAT_DTYPES and not m.get("nonfinite", False):
        finite = (spec["dtype"], int(m["row_stride"]), int(m["row_bytes"]))
    digest, bad = _scan(fpath, finite=finite)
    if digest != spec["blake2b"]:
        raise StoreError(f"store {path}: {spec['file']} is corrupt (checksum mismatch)")
    if bad is not None:
        raise StoreError(f"store {path}: features hold {bad[0]} non-finite values (NaN/inf), the first at row "
                         f"{bad[1]}, column {bad[2]}; a store may hold them only when its manifest says "
                         f"\"nonfinite\": true")
    return fpath


def _map(fpath: Path, dtype: str, shape: list[int]) -> torch.Tensor:
    tdtype, npdtype = DTYPES[dtype]
    count = int(np.prod(shape)) if shape else 0
    if count == 0:
        return torch.empty(shape, dtype=tdtype)
    arr = np.memmap(fpath, dtype=npdtype, mode="c", shape=tuple(shape))  # copy-on-write: the file is never written
    t = torch.from_numpy(arr)
    return t.view(tdtype) if tdtype == torch.bfloat16 else t


def _map_strided(fpath: Path, dtype: str, rows: int, dim: int, stride: int) -> torch.Tensor:
    """Map padded rows (``stride`` bytes apart) as a ``[rows, dim]`` view."""
    tdtype = DTYPES[dtype][0]
    raw = torch.from_numpy(np.memmap(fpath, dtype="u1", mode="c", shape=(rows, stride)))
    return raw[:, : dim * _itemsize(dtype)].view(tdtype)


def open_store(path: str | Path, *, verify: bool = False) -> GraphData:
    """Validate a store against its manifest and map it as ``GraphData`` (features stay memory-mapped).

    Always: manifest fields, every file's exact size (manifest bytes and dtype x shape), the sampled digests and the
    CSR's structure (``indptr`` monotone from 0 to E, ``indices`` in range). The full digest of every array and the
    finiteness of the features are checked on first use, and again whenever a file's size, mtime or inode (or the
    manifest) changes since the last full check; always with ``verify``.
    """
    path = Path(path)
    m, text = _load_manifest(path)
    n, e, d = int(m["num_nodes"]), int(m["num_edges"]), int(m["feat_dim"])
    arrays = m["arrays"]
    expected = {
        "indptr": ("int64", [n + 1]),
        "indices": (None, [e]),
        "features": (m["dtype"], [n, d]),
        "labels": ("int64", [n]),
    }
    started_ns = time.time_ns()
    state = _state(path, m, text)
    full = verify or not _is_recorded(path, state)
    tensors: dict[str, torch.Tensor] = {}
    for name, spec in arrays.items():
        want = expected.get(name)
        if want is not None:
            if want[0] is not None and spec.get("dtype") != want[0]:
                raise StoreError(f"store {path}: {name} has dtype {spec.get('dtype')}, expected {want[0]}")
            if list(spec.get("shape", [])) != want[1]:
                raise StoreError(f"store {path}: {name} has shape {spec.get('shape')}, manifest counts say {want[1]}")
        fpath = _check_array(path, name, spec, m, full=full)
        if name == "features" and int(m["row_stride"]) != int(m["row_bytes"]):
            tensors[name] = _map_strided(fpath, spec["dtype"], n, d, int(m["row_stride"]))
        else:
            tensors[name] = _map(fpath, spec["dtype"], list(spec["shape"]))
    indptr, indices = tensors["indptr"], tensors["indices"]
    if indices.dtype not in (torch.int32, torch.int64):
        raise StoreError(f"store {path}: indices must be int32 or int64")
    if int(indptr[0]) != 0 or int(indptr[-1]) != e or bool((indptr[1:] < indptr[:-1]).any()):
        raise StoreError(f"store {path}: indptr is not a valid CSR offset array (0 .. {e}, non-decreasing)")
    if e and (int(indices.min()) < 0 or int(indices.max()) >= n):
        raise StoreError(f"store {path}: indices hold node ids outside [0, {n})")
    train_ids = tensors.get("train_ids")
    if train_ids is not None and train_ids.numel() and (int(train_ids.min()) < 0 or int(train_ids.max()) >= n):
        raise StoreError(f"store {path}: train_ids outside [0, {n})")
    if full and _state(path, m, text) == state:  # unchanged while we checked it
        _record(path, state, started_ns)
    labels = tensors.get("labels")
    fspec = arrays["features"]
    feature_file = FeatureFile(
        path=(path / fspec["file"]).resolve(), offset=0, row_stride=int(m["row_stride"]), row_bytes=int(m["row_bytes"])
    )
    return GraphData(
        num_nodes=n,
        indptr=indptr,
        indices=indices,
        features=tensors["features"],
        feature_file=feature_file,
        labels=labels,
        train_ids=train_ids,
        num_classes=m.get("num_classes"),
        name=str(m.get("name", path.name)),
    )


def verify_store(path: str | Path) -> dict[str, Any]:
    """Full check of every array (sizes, full checksums, finite features, CSR structure); returns the manifest."""
    open_store(path, verify=True)
    return read_manifest(path)


def iter_chunks(total: int, chunk: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` pairs covering ``[0, total)`` in steps of ``chunk``."""
    for start in range(0, total, chunk):
        yield start, min(total, start + chunk)

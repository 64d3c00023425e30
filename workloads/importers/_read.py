"""Readers for the source files, in chunks: csv(.gz) through pandas, ``.npz`` members streamed, ``.npy`` and headerless
raw files memory-mapped. Every reader turns I/O and parse errors into ``StoreError`` naming the file."""

from __future__ import annotations

import gzip
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from accessbench.kernels.errors import StoreError

__all__ = ["NpzArray", "as_ids", "csv_columns", "is_npy", "iter_csv", "iter_pairs", "map_npy", "map_raw", "npz_keys", "reading"]

_READ_ERRORS = (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error)
_NPY_MAGIC = b"\x93NUMPY"
#: the only text a csv value may hold for NaN (an empty field is a missing value, not NaN)
_NAN_TOKENS = ["nan", "NaN", "NAN", "-nan", "-NaN"]


def as_ids(arr: np.ndarray, *, path: Path, what: str) -> np.ndarray:
    """Node ids as int64: integer arrays as they are; float arrays only when every value is a whole number."""
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind != "f":
        raise StoreError(f"{path} ({what}): node ids are {arr.dtype.name}; expected integers")
    nan = np.isnan(arr)
    if nan.any():
        raise StoreError(f"{path} ({what}): holds {int(nan.sum())} NaN node ids (the first at position "
                         f"{int(np.flatnonzero(nan.reshape(-1))[0])}); every id must be a whole number")
    whole = np.isfinite(arr) & (arr == np.rint(arr))
    if not whole.all():
        bad = arr.reshape(-1)[int(np.flatnonzero(~whole.reshape(-1))[0])]
        raise StoreError(f"{path} ({what}): {arr.dtype.name} node id {float(bad)!r} is not a whole number; float ids are "
                         f"accepted only when every value is an integer")
    return arr.astype(np.int64)


@contextmanager
def reading(path: Path, what: str) -> Iterator[None]:
    """Turn read/parse errors inside the block into ``StoreError`` naming ``path`` and what it should hold."""
    try:
        yield
    except StoreError:
        raise
    except _READ_ERRORS as exc:
        raise StoreError(f"cannot read {path} ({what}): {type(exc).__name__}: {exc}") from None


def csv_columns(path: Path, what: str) -> int:
    """Number of comma-separated fields on the first line of a csv or csv.gz file (0 when it is empty)."""
    with reading(path, what):
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt") as fh:  # type: ignore[operator]
            line = fh.readline().strip()
    return line.count(",") + 1 if line else 0


def iter_csv(path: Path, *, dtype: type, rows: int, ncols: int, what: str) -> Iterator[np.ndarray]:
    """Yield ``[rows, ncols]`` arrays of a headerless csv(.gz) (the last chunk shorter); nothing for an empty file.

    Every row must have exactly ``ncols`` fields (the first row's width); an empty field is refused, and ``nan``
    is NaN for float columns and refused, named as NaN, for integer ones.
    """
    with reading(path, what):
        try:
            reader = pd.read_csv(path, header=None, dtype=dtype, chunksize=rows, engine="c",
                                 keep_default_na=False, na_values=_NAN_TOKENS)
        except pd.errors.EmptyDataError:
            return
        with reader:
            done = 0
            while True:
                try:
                    frame = next(reader)
                except StopIteration:
                    return
                except pd.errors.ParserError as exc:
                    raise StoreError(f"{path} ({what}): a row has more fields than the first row's {ncols} ({exc})"
                                     ) from None
                except ValueError as exc:
                    text = str(exc)
                    if "''" in text:
                        raise StoreError(f"{path} ({what}): a row after line {done} has fewer fields than the first "
                                         f"row's {ncols} (or an empty field)") from None
                    if "NA" in text or "nan" in text.lower():
                        raise StoreError(f"{path} ({what}): holds NaN where an integer is expected (after line "
                                         f"{done})") from None
                    raise
                if frame.shape[1] != ncols:
                    raise StoreError(f"{path} ({what}): expected {ncols} comma-separated columns, found "
                                     f"{frame.shape[1]}")
                done += frame.shape[0]
                yield frame.to_numpy(dtype=dtype, copy=False)


def npz_keys(path: Path) -> set[str]:
    """Names of the arrays in an ``.npz`` file."""
    with reading(path, "an .npz archive"), zipfile.ZipFile(path) as zf:
        return {n[:-4] for n in zf.namelist() if n.endswith(".npy")}


class NpzArray:
    """One array inside an ``.npz`` file, read as a stream (works for stored and deflated members alike).

    Only the header is read on construction: ``shape``, ``dtype`` and ``fortran_order`` are known without the data.
    """

    def __init__(self, path: Path, key: str, what: str) -> None:
        self.path, self.key, self.what = path, key, what
        with reading(path, what):
            members = npz_keys(path)
            if key not in members:
                raise StoreError(f"{path}: no array {key!r} ({what}); it holds {', '.join(sorted(members)) or 'none'}")
            with self._open() as fh:
                self.shape, self.fortran_order, self.dtype = self._header(fh)
        if self.dtype.hasobject:
            raise StoreError(f"{path}: array {key!r} holds Python objects, not numbers")

    @contextmanager
    def _open(self) -> Iterator[IO[bytes]]:
        with zipfile.ZipFile(self.path) as zf, zf.open(self.key + ".npy") as fh:
            yield fh

    def _header(self, fh: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise StoreError(f"{self.path}: array {self.key!r} uses .npy format {version}, which this reader "
                             f"does not parse")
        return tuple(int(s) for s in shape), bool(fortran), np.dtype(dtype)

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape)) if self.shape else 1

    def stream(self, *, skip: int = 0, count: int | None = None, chunk: int) -> Iterator[np.ndarray]:
        """Yield ``count`` elements (default: all after ``skip``) in file order, ``chunk`` at a time."""
        item = self.dtype.itemsize
        with reading(self.path, self.what), self._open() as fh:
            self._header(fh)
            left = self.size - skip if count is None else count
            if skip:
                fh.seek(skip * item, 1)
            while left > 0:
                n = min(chunk, left)
                buf = _read_exact(fh, n * item)
                if len(buf) != n * item:
                    raise StoreError(f"{self.path}: array {self.key!r} is truncated ({self.what})")
                left -= n
                yield np.frombuffer(buf, dtype=self.dtype)

    def rows(self, *, rows: int) -> Iterator[np.ndarray]:
        """Yield ``[rows, ...]`` chunks of a C-ordered array (a Fortran-ordered one is loaded whole, then sliced)."""
        width = int(np.prod(self.shape[1:])) if len(self.shape) > 1 else 1
        if self.fortran_order and len(self.shape) > 1:
            with reading(self.path, self.what), np.load(self.path) as z:
                whole = z[self.key]
            for lo in range(0, self.shape[0], rows):
                yield np.ascontiguousarray(whole[lo:lo + rows])
            return
        for flat in self.stream(chunk=rows * width):
            yield flat.reshape((-1, *self.shape[1:]))

    def pairs(self, *, chunk: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(src, dst)`` int64 chunks of an edge array shaped ``[2, E]`` or ``[E, 2]`` (either order)."""
        if len(self.shape) != 2 or 2 not in self.shape:
            raise StoreError(f"{self.path}: array {self.key!r} has shape {self.shape}; expected [2, E] or [E, 2]")
        if self.shape == (2, 2):
            interleaved = self.fortran_order  # [2, 2] is ambiguous: read as OGB's [2, E]
        else:
            interleaved = (self.shape[1] == 2) != self.fortran_order
        num = self.size // 2
        if interleaved:
            for flat in self.stream(chunk=2 * chunk):
                pair = flat.reshape(-1, 2)
                yield self._ids(pair[:, 0]), self._ids(pair[:, 1])
        else:
            for src, dst in zip(self.stream(count=num, chunk=chunk), self.stream(skip=num, chunk=chunk), strict=True):
                yield self._ids(src), self._ids(dst)

    def _ids(self, arr: np.ndarray) -> np.ndarray:
        return as_ids(arr, path=self.path, what=f"array {self.key!r}, {self.what}")


def _read_exact(fh: IO[bytes], nbytes: int) -> bytes:
    parts, got = [], 0
    while got < nbytes:
        part = fh.read(nbytes - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def is_npy(path: Path) -> bool:
    """Whether the file starts with the ``.npy`` magic (else it is treated as a headerless raw array)."""
    with reading(path, "a .npy or raw array"), open(path, "rb") as fh:
        return fh.read(len(_NPY_MAGIC)) == _NPY_MAGIC


def map_npy(path: Path, what: str) -> np.ndarray:
    """Memory-map a real ``.npy`` file read-only."""
    with reading(path, what):
        arr = np.load(path, mmap_mode="r")
    if arr.dtype.hasobject:
        raise StoreError(f"{path}: holds Python objects, not numbers ({what})")
    return arr


def map_raw(path: Path, *, dtype: str, width: int, rows: int | None, what: str, hint: str) -> np.ndarray:
    """Memory-map a headerless raw array of ``dtype`` as ``[rows, width]`` (``[rows]`` for width 0).

    With ``rows`` None the row count is the file size over the row size, which must divide exactly; with ``rows``
    given the size must match exactly. ``hint`` tells the user which option fixes a mismatch.
    """
    item = np.dtype(dtype).itemsize
    row_bytes = item * max(width, 1)
    size = path.stat().st_size
    whole, rest = divmod(size, row_bytes)
    shape_txt = f"[{'N' if rows is None else rows}, {width}]" if width else f"[{'N' if rows is None else rows}]"
    if rest or (rows is not None and whole != rows):
        held = f"{whole} whole rows and {rest} stray bytes" if rest else f"{whole} rows"
        want = "" if rows is None else f" ({rows * row_bytes} bytes)"
        raise StoreError(f"{path} ({what}): a headerless raw {dtype} {shape_txt} file must be a whole number of "
                         f"{row_bytes}-byte rows{want}; it has {size} bytes = {held}. The file is truncated, or "
                         f"{hint} is wrong")
    shape = (whole, width) if width else (whole,)
    if whole == 0:
        return np.empty(shape, dtype=dtype)
    with reading(path, what):
        return np.memmap(path, dtype=dtype, mode="r", shape=shape)


def iter_pairs(arr: np.ndarray, *, chunk: int, path: Path) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(src, dst)`` int64 chunks of an edge array ``[E, 2]`` (IGB) or ``[2, E]`` (OGB) held as an array."""
    if arr.ndim != 2 or 2 not in arr.shape:
        raise StoreError(f"{path}: edge array has shape {tuple(arr.shape)}; expected [E, 2] or [2, E]")
    pairs_rows = arr.shape[1] == 2  # [2, 2] is read as [E, 2], the layout of the files this is used for
    num = arr.shape[0] if pairs_rows else arr.shape[1]
    with reading(path, "an edge list"):
        for lo in range(0, num, chunk):
            hi = min(num, lo + chunk)
            block = arr[lo:hi] if pairs_rows else arr[:, lo:hi].T
            yield (as_ids(np.asarray(block[:, 0]), path=path, what="an edge list"),
                   as_ids(np.asarray(block[:, 1]), path=path, what="an edge list"))

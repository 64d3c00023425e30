"""The packed layout's files: each planned batch's disk rows written back to back (one segment per batch, aligned
to ``PAGE`` so one large direct read serves a batch), and an index that says where each segment is and which ids
it holds, in order.

Integrity: every segment carries a CRC-32 of its payload, checked when it is read; the index carries a blake2b of
itself (trailer) and the data file's exact size. A truncated or corrupt file raises ``PackedFileError``, it is never
served as features. Index layout: ``MAGIC`` (8 B) | header length (8 B, LE) | JSON header | arrays (int64 LE:
segment offsets, segment rows, segment CRCs, ids) | blake2b-128 of all preceding bytes (16 B).
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from accessbench.kernels.errors import StoreError

from .align import PAGE, align_up

__all__ = ["FORMAT", "VERSION", "PackedFileError", "PackedIndex", "PackedWriter", "open_packed", "payload_crc"]

FORMAT = "accessbench-packed"
VERSION = 1
MAGIC = b"ABPACK01"
_TRAILER = 16


class PackedFileError(StoreError):
    """A packed file or index that is missing, truncated, corrupt or does not match the plan."""


def payload_crc(payload: torch.Tensor) -> int:
    """CRC-32 of a contiguous CPU uint8 tensor's bytes."""
    return zlib.crc32(memoryview(payload.numpy()).cast("B")) & 0xFFFFFFFF


@dataclass(frozen=True)
class PackedIndex:
    """Where each batch's segment is in the data file: byte offsets (page-aligned), rows, CRCs and the ids."""

    data_path: Path
    index_path: Path
    row_bytes: int
    dtype: str
    seg_offset: torch.Tensor  # int64 [B]
    seg_rows: torch.Tensor  # int64 [B]
    seg_crc: torch.Tensor  # int64 [B]
    ids: torch.Tensor  # int64 [sum(seg_rows)]
    data_bytes: int
    header: dict[str, Any]

    @property
    def num_segments(self) -> int:
        """Number of batches packed."""
        return int(self.seg_offset.numel())

    def segment_ids(self, b: int) -> torch.Tensor:
        """The ids of segment ``b``, in packed order."""
        start = int(self.seg_rows[:b].sum())
        return self.ids[start:start + int(self.seg_rows[b])]

    def segment_span(self, b: int) -> tuple[int, int]:
        """``(offset, payload bytes)`` of segment ``b`` in the data file."""
        return int(self.seg_offset[b]), int(self.seg_rows[b]) * self.row_bytes

    @property
    def disk_bytes(self) -> int:
        """Bytes the packed layout occupies on disk (data and index)."""
        return self.data_bytes + self.index_path.stat().st_size

    def check_segment(self, b: int, payload: torch.Tensor) -> None:
        """Raise ``PackedFileError`` unless ``payload`` (CPU uint8) matches segment ``b``'s CRC."""
        self.check_crc(b, payload_crc(payload))

    def check_crc(self, b: int, got: int) -> None:
        """Raise ``PackedFileError`` unless ``got`` is segment ``b``'s stored CRC-32."""
        if got != int(self.seg_crc[b]):
            raise PackedFileError(
                f"packed file {self.data_path} is corrupt: batch segment {b} fails its CRC-32 check "
                f"(stored {int(self.seg_crc[b]):08x}, read {got:08x}); refusing to serve it. Delete the packed "
                "directory and run again to re-pack"
            )


class PackedWriter:
    """Write segments with ``add(ids, rows)`` then ``finish()``; the index is written last (atomically)."""

    def __init__(self, data_path: str | os.PathLike[str], *, row_bytes: int, dtype: str, source: dict[str, Any]) -> None:
        self.data_path = Path(data_path)
        self.index_path = self.data_path.with_suffix(".idx")
        self.row_bytes = int(row_bytes)
        self.dtype = dtype
        self.source = source
        self._f = open(self.data_path, "wb")
        self._pos = 0
        self._offsets: list[int] = []
        self._rows: list[int] = []
        self._crcs: list[int] = []
        self._ids: list[torch.Tensor] = []

    def add(self, ids: torch.Tensor, rows: torch.Tensor) -> int:
        """Append one batch's rows (``[n, D]``, in ``ids`` order) as a page-aligned segment; returns its number."""
        if rows.shape[0] != ids.numel():
            raise ValueError("rows and ids disagree in length")
        payload = rows.detach().cpu().contiguous().view(torch.uint8).reshape(-1)
        if payload.numel() != ids.numel() * self.row_bytes:
            raise ValueError(f"rows are not {self.row_bytes}-byte rows")
        self._offsets.append(self._pos)
        self._rows.append(int(ids.numel()))
        self._crcs.append(payload_crc(payload))
        self._ids.append(ids.to(torch.int64).cpu())
        self._f.write(memoryview(payload.numpy()).cast("B"))
        pad = align_up(payload.numel()) - payload.numel()
        if pad:
            self._f.write(b"\0" * pad)
        self._pos += payload.numel() + pad
        return len(self._offsets) - 1

    def finish(self) -> PackedIndex:
        """Flush and fsync the data, write and fsync the index; returns the opened index."""
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        ids = torch.cat(self._ids) if self._ids else torch.empty(0, dtype=torch.int64)
        arrays = [np.asarray(a, dtype="<i8") for a in (self._offsets, self._rows, self._crcs)] + [ids.numpy().astype("<i8")]
        header = {
            "format": FORMAT, "version": VERSION, "row_bytes": self.row_bytes, "dtype": self.dtype,
            "num_segments": len(self._offsets), "num_ids": int(ids.numel()), "data_file": self.data_path.name,
            "data_bytes": self._pos, "page": PAGE, "source": self.source,
        }
        blob = json.dumps(header, sort_keys=True).encode()
        body = MAGIC + len(blob).to_bytes(8, "little") + blob + b"".join(a.tobytes() for a in arrays)
        tmp = self.index_path.with_suffix(".idx.tmp")
        with open(tmp, "wb") as f:
            f.write(body + hashlib.blake2b(body, digest_size=_TRAILER).digest())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.index_path)
        return open_packed(self.data_path)

    def abort(self) -> None:
        """Close and remove what was written."""
        if not self._f.closed:
            self._f.close()
        self.data_path.unlink(missing_ok=True)


def open_packed(data_path: str | os.PathLike[str], *, expect_source: dict[str, Any] | None = None) -> PackedIndex:
    """Open and validate a packed file's index; raises ``PackedFileError`` for anything missing, short or corrupt."""
    data_path = Path(data_path)
    index_path = data_path.with_suffix(".idx")
    for p, what in ((index_path, "index"), (data_path, "data file")):
        if not p.is_file():
            raise PackedFileError(f"packed {what} {p} is missing")
    raw = index_path.read_bytes()
    where = f"packed index {index_path}"
    if len(raw) < len(MAGIC) + 8 + _TRAILER or raw[:len(MAGIC)] != MAGIC:
        raise PackedFileError(f"{where} is truncated or not a packed index")
    body, trailer = raw[:-_TRAILER], raw[-_TRAILER:]
    if hashlib.blake2b(body, digest_size=_TRAILER).digest() != trailer:
        raise PackedFileError(f"{where} is truncated or corrupt (checksum mismatch)")
    hlen = int.from_bytes(body[8:16], "little")
    try:
        header = json.loads(body[16:16 + hlen])
        nseg, nids, row_bytes = int(header["num_segments"]), int(header["num_ids"]), int(header["row_bytes"])
        data_bytes = int(header["data_bytes"])
    except (ValueError, KeyError, TypeError) as exc:
        raise PackedFileError(f"{where}: malformed header ({exc})") from None
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise PackedFileError(f"{where}: format {header.get('format')} v{header.get('version')} unsupported")
    arrays = np.frombuffer(body, dtype="<i8", offset=16 + hlen)
    if arrays.size != 3 * nseg + nids:
        raise PackedFileError(f"{where}: holds {arrays.size} array entries, header says {3 * nseg + nids}")
    t = torch.from_numpy(arrays.astype(np.int64))
    seg_offset, seg_rows, seg_crc, ids = t[:nseg], t[nseg:2 * nseg], t[2 * nseg:3 * nseg], t[3 * nseg:]
    size = data_path.stat().st_size
    if size != data_bytes:
        kind = "truncated" if size < data_bytes else "longer than its index says"
        raise PackedFileError(f"packed data file {data_path} is {kind} ({size} bytes, index says {data_bytes})")
    if nseg and (int(seg_rows.sum()) != nids or bool((seg_offset + seg_rows * row_bytes > data_bytes).any())):
        raise PackedFileError(f"{where}: segments do not fit the data file")
    if expect_source is not None and header.get("source") != expect_source:
        raise PackedFileError(f"{where} was packed from a different store ({header.get('source')}), not {expect_source}")
    return PackedIndex(data_path, index_path, row_bytes, str(header["dtype"]), seg_offset, seg_rows, seg_crc, ids,
                       data_bytes, header)

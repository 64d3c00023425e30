"""Host memory as pinning sees it: sizes and spans of tensors, whole pages, page-aligned buffers, and what backs an
address range (anonymous memory or a file mapping, from ``/proc/self/maps``). Plain Python and torch, no CUDA."""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass

import torch

__all__ = [
    "Backing",
    "aligned_copy",
    "aligned_empty",
    "format_bytes",
    "memlock_limit_text",
    "memory_backing",
    "page_size",
    "page_span",
    "parse_maps",
    "span_bytes",
]


def format_bytes(n: float) -> str:
    """``1536`` -> ``1.50 KiB``."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} B" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} TiB"  # pragma: no cover


def memlock_limit_text() -> str:
    """The soft RLIMIT_MEMLOCK (``ulimit -l``) as text: ``unlimited`` or a size."""
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    return "unlimited" if soft == resource.RLIM_INFINITY else format_bytes(soft)


def span_bytes(t: torch.Tensor) -> int:
    """Bytes from ``t.data_ptr()`` to the end of its last element (strided tensors included)."""
    if t.numel() == 0:
        return 0
    return (sum((s - 1) * st for s, st in zip(t.shape, t.stride())) + 1) * t.element_size()


# ---- pages ----------------------------------------------------------------------------------------------------------
def page_size() -> int:
    """The host page size in bytes (the granularity of ``cuMemHostRegister``)."""
    return os.sysconf("SC_PAGE_SIZE")


def page_span(address: int, nbytes: int) -> tuple[int, int]:
    """The whole pages ``[first, end)`` that the byte range ``[address, address + nbytes)`` touches."""
    page = page_size()
    return address // page * page, -(-(address + max(nbytes, 1)) // page) * page


def aligned_empty(nbytes: int) -> torch.Tensor:
    """A 1-D uint8 host tensor of ``nbytes`` in pages of its own: it starts on a page boundary and nothing else
    lives in the rest of its last page, so registering it never overlaps another registration."""
    page = page_size()
    rounded = -(-max(int(nbytes), 1) // page) * page
    raw = torch.empty(rounded + page, dtype=torch.uint8)  # one spare page to move the start to a boundary
    start = (-raw.data_ptr()) % page
    return raw[start: start + int(nbytes)]


def aligned_copy(t: torch.Tensor) -> torch.Tensor:
    """A dense copy of host tensor ``t`` (same dtype and shape) in pages of its own (see ``aligned_empty``)."""
    out = aligned_empty(t.numel() * t.element_size()).view(t.dtype).view(t.shape)
    return out.copy_(t)


# ---- what backs an address range ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Backing:
    """What a host address range is mapped from: ``anonymous`` memory, ``cuda-pinned`` memory (a mapping of a
    ``/dev/nvidia*`` device file: ``pin_memory()``/``cudaHostAlloc`` allocations, page-locked by CUDA already), a
    ``file-private`` (copy-on-write) or ``file-shared`` mapping of ``path``, or ``unknown`` (no /proc/self/maps);
    ``writable`` is False if any page is not."""

    kind: str
    path: str = ""
    writable: bool = True

    @property
    def needs_care(self) -> bool:
        """True when pinning with write access would copy pages (private file mapping) or cannot work (read-only);
        never for ``cuda-pinned`` memory (page-locked already: it is used as it is, not copied)."""
        return self.kind != "cuda-pinned" and (self.kind == "file-private" or not self.writable)


def parse_maps(text: str, address: int, nbytes: int) -> Backing:
    """Classify ``[address, address + nbytes)`` from the text of ``/proc/<pid>/maps``."""
    end = address + max(nbytes, 1)
    kinds: list[Backing] = []
    for line in text.splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) < 5:
            continue
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        if hi <= address or lo >= end:
            continue
        perms, inode, path = parts[1], int(parts[4]), parts[5].strip() if len(parts) > 5 else ""
        writable = "w" in perms
        if inode == 0 or not path or path.startswith("["):
            kinds.append(Backing("anonymous", "", writable))
        elif path.startswith("/dev/nvidia"):  # driver memory mapped into the process: pinned, not a file to copy
            kinds.append(Backing("cuda-pinned", path, writable))
        else:
            kinds.append(Backing("file-private" if perms[3] == "p" else "file-shared", path, writable))
    if not kinds:
        return Backing("unknown")
    files = [k for k in kinds if k.kind.startswith("file")] or [k for k in kinds if k.kind == "cuda-pinned"]
    chosen = files[0] if files else kinds[0]
    return Backing(chosen.kind, chosen.path, all(k.writable for k in kinds))


def memory_backing(address: int, nbytes: int) -> Backing:
    """What backs ``[address, address + nbytes)`` in this process (Linux; ``unknown`` elsewhere)."""
    try:
        with open("/proc/self/maps") as f:
            return parse_maps(f.read(), address, nbytes)
    except OSError:
        return Backing("unknown")

"""GPUDirect Storage reads through KvikIO: file pages go straight into device memory. Imported lazily; where kvikio
or GDS is missing, ``kvikio_status()`` says why and opening a file raises ``StrategyUnavailable``."""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path
from typing import Any

import torch

from accessbench.kernels.device import cuda_available
from accessbench.kernels.errors import StoreError, StrategyUnavailable

from .counters import IoCounter
from .extents import ReadPlan

__all__ = ["KvikioFile", "kvikio_status"]


def _compat_mode_on(kvikio: Any) -> bool | None:
    """Whether kvikio would do POSIX reads (no GDS); None when this kvikio version does not say."""
    defaults = getattr(kvikio, "defaults", None)
    if defaults is None:
        return None
    probe = getattr(defaults, "is_compat_mode_preferred", None)
    if callable(probe):
        return bool(probe())
    getter = getattr(defaults, "get", None)
    if callable(getter):
        try:
            mode = getter("compat_mode")
            return str(getattr(mode, "name", mode)).upper() in ("ON", "TRUE")
        except Exception:
            pass
    legacy = getattr(defaults, "compat_mode", None)
    if callable(legacy):
        return bool(legacy())
    return None


@functools.cache
def kvikio_status(allow_compat: bool = False) -> tuple[bool, str]:
    """``(ok, reason)``: can io=kvikio run here? ``allow_compat`` accepts kvikio's POSIX compatibility mode."""
    if importlib.util.find_spec("kvikio") is None:
        return False, "io=kvikio needs the kvikio package (pip install kvikio-cu12), which is not installed"
    if not cuda_available():
        return False, "io=kvikio reads into device memory and needs a CUDA device; torch sees none"
    try:
        import kvikio
    except Exception as exc:
        return False, f"io=kvikio: kvikio failed to import ({type(exc).__name__}: {exc})"
    compat = _compat_mode_on(kvikio)
    if compat and not allow_compat:
        return False, ("io=kvikio: kvikio runs in compatibility mode (POSIX reads via host memory): GPUDirect Storage "
                       "(libcufile, nvidia-fs) is not present; set kvikio_compat=true to measure that mode anyway")
    mode = "compat (POSIX reads, no GDS)" if compat else "GPUDirect Storage" if compat is False else "unknown mode"
    return True, f"kvikio {getattr(kvikio, '__version__', '?')}, {mode}"


class KvikioFile:
    """A file read with ``kvikio.CuFile.pread`` into device buffers; counts bytes and reads in ``counter``."""

    def __init__(self, path: str | os.PathLike[str], *, allow_compat: bool = False) -> None:
        ok, reason = kvikio_status(allow_compat)
        if not ok:
            raise StrategyUnavailable(reason)
        import kvikio

        self.path = Path(path)
        self.mode = reason
        self.counter = IoCounter()
        self.size = os.path.getsize(self.path)
        try:
            self._f = kvikio.CuFile(str(self.path), "r")
        except Exception as exc:
            raise StoreError(f"kvikio cannot open {self.path}: {exc}") from None

    def read(self, plan: ReadPlan, buf: torch.Tensor) -> int:
        """Run the plan's reads into device uint8 ``buf``, all submitted before any is awaited; returns bytes read."""
        if buf.device.type != "cuda":
            raise ValueError("kvikio reads need a device buffer")
        futures = []
        for off, length, pos in zip(plan.offsets.tolist(), plan.lengths.tolist(), plan.buf_pos.tolist()):
            length = max(0, min(length, self.size - off))
            if length:
                futures.append(self._f.pread(buf[pos:pos + length], length, off))
        try:
            total = sum(int(f.get()) for f in futures)
        except Exception as exc:
            raise StoreError(f"kvikio read from {self.path} failed: {exc}") from None
        self.counter.add(total, len(futures))
        return total

    def close(self) -> None:
        """Close the cuFile handle. Safe to call twice."""
        f = getattr(self, "_f", None)
        if f is not None:
            f.close()
            self._f = None

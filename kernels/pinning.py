"""Page-lock host tensors where they already are, so a GPU reads them over UVA with no staging copy.

``pin_in_place(tensor, name=..., device=...)`` registers the tensor's bytes with the CUDA driver
(``cuMemHostRegister``, portable + device-mapped; read-only on request), in page-aligned pieces of at most
``chunk_bytes`` for very large buffers, and returns a ``PinnedBuffer`` whose ``view()`` is a CUDA tensor over the
same memory. Registrations are kept in a process-wide registry: the same range pinned twice is shared (reference
counted), a partial overlap is refused, a failure part-way unregisters the pieces already done, and whatever is still
registered at interpreter exit is unregistered then. Failures raise ``PinningError`` naming the buffer, its size, the
driver's error and the lockable-memory limit (``ulimit -l``).

The driver API (libcuda through ctypes) is used rather than ``torch.cuda.cudart().cudaHostRegister``: a failed runtime
call leaves a pending "last error" that torch's next kernel-launch check would report as its own failure, and the
runtime bindings in torch offer no way to ask for a registered range's device address.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import os
import resource
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from kernels.errors import AccessBenchError

__all__ = [
    "PinningError", "Driver", "CudaDriver", "PinnedBuffer", "Piece", "Backing", "pin_in_place", "release_all",
    "pinned_bytes", "memlock_limit_text", "memory_backing", "parse_maps", "span_bytes", "format_bytes",
    "DEFAULT_CHUNK_BYTES",
]

DEFAULT_CHUNK_BYTES = 1 << 30
FLAG_PORTABLE, FLAG_DEVICEMAP, FLAG_READ_ONLY = 0x1, 0x2, 0x8
CUDA_SUCCESS, CUDA_ERROR_OUT_OF_MEMORY, CUDA_ERROR_ALREADY_REGISTERED = 0, 2, 712
_ATTR_READ_ONLY_HOST_REGISTER_SUPPORTED = 113
_POINTER_ATTRIBUTE_DEVICE_POINTER = 3


class PinningError(AccessBenchError):
    """Host memory could not be registered with CUDA (or released); the message says which buffer and why."""


def format_bytes(n: int | float) -> str:
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


# ---- what backs an address range ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Backing:
    """What a host address range is mapped from: ``anonymous`` memory, a ``file-private`` (copy-on-write) or
    ``file-shared`` mapping of ``path``, or ``unknown`` (no /proc/self/maps); ``writable`` is False if any page is not."""

    kind: str
    path: str = ""
    writable: bool = True

    @property
    def needs_care(self) -> bool:
        """True when pinning with write access would copy pages (private file mapping) or cannot work (read-only)."""
        return self.kind == "file-private" or not self.writable


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
        else:
            kinds.append(Backing("file-private" if perms[3] == "p" else "file-shared", path, writable))
    if not kinds:
        return Backing("unknown")
    files = [k for k in kinds if k.kind != "anonymous"]
    chosen = files[0] if files else kinds[0]
    return Backing(chosen.kind, chosen.path, all(k.writable for k in kinds))


def memory_backing(address: int, nbytes: int) -> Backing:
    """What backs ``[address, address + nbytes)`` in this process (Linux; ``unknown`` elsewhere)."""
    try:
        with open("/proc/self/maps") as f:
            return parse_maps(f.read(), address, nbytes)
    except OSError:
        return Backing("unknown")


# ---- the driver ---------------------------------------------------------------------------------------------------
class Driver(Protocol):
    """The four driver calls pinning needs (a fake stands in for it in CPU tests)."""

    def register(self, address: int, nbytes: int, flags: int) -> int: ...
    def unregister(self, address: int) -> int: ...
    def device_pointer(self, address: int) -> tuple[int, int]: ...
    def error_name(self, code: int) -> str: ...
    def read_only_supported(self, device_index: int) -> bool: ...


class CudaDriver:
    """``libcuda.so.1`` through ctypes; calls need a current context (``pin_in_place`` makes the device's current)."""

    def __init__(self) -> None:
        try:
            lib = ctypes.CDLL("libcuda.so.1")
        except OSError as exc:
            raise PinningError(f"cannot load the CUDA driver library libcuda.so.1 ({exc})") from None
        self._lib = lib
        lib.cuMemHostRegister_v2.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint]
        lib.cuMemHostUnregister.argtypes = [ctypes.c_void_p]
        lib.cuPointerGetAttribute.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64]
        lib.cuGetErrorName.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)]
        lib.cuDeviceGetAttribute.argtypes = [ctypes.POINTER(ctypes.c_int), ctypes.c_int, ctypes.c_int]
        for fn in (lib.cuMemHostRegister_v2, lib.cuMemHostUnregister, lib.cuPointerGetAttribute, lib.cuGetErrorName,
                   lib.cuDeviceGetAttribute):
            fn.restype = ctypes.c_int

    def register(self, address: int, nbytes: int, flags: int) -> int:
        return int(self._lib.cuMemHostRegister_v2(ctypes.c_void_p(address), nbytes, flags))

    def unregister(self, address: int) -> int:
        return int(self._lib.cuMemHostUnregister(ctypes.c_void_p(address)))

    def device_pointer(self, address: int) -> tuple[int, int]:
        out = ctypes.c_uint64(0)
        code = int(self._lib.cuPointerGetAttribute(ctypes.byref(out), _POINTER_ATTRIBUTE_DEVICE_POINTER, address))
        return code, int(out.value)

    def error_name(self, code: int) -> str:
        name = ctypes.c_char_p()
        if self._lib.cuGetErrorName(code, ctypes.byref(name)) != 0 or not name.value:
            return f"CUDA error {code}"
        return f"{name.value.decode()} ({code})"

    def read_only_supported(self, device_index: int) -> bool:
        value = ctypes.c_int(0)
        code = self._lib.cuDeviceGetAttribute(ctypes.byref(value), _ATTR_READ_ONLY_HOST_REGISTER_SUPPORTED,
                                               device_index)
        return code == 0 and value.value == 1


@functools.cache
def _cuda_driver() -> CudaDriver:
    return CudaDriver()


# ---- the registry -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Piece:
    """One registered range; ``owned`` is False where the memory was already page-locked by someone else."""

    address: int
    nbytes: int
    owned: bool = True


@dataclass
class _Entry:
    name: str
    address: int
    nbytes: int
    pieces: list[Piece]
    device_address: int
    read_only: bool
    driver: Driver
    device: torch.device
    owner: Any  # keeps the memory alive while it is registered
    refs: int = 1


_LOCK = threading.RLock()
_ACTIVE: dict[tuple[int, int], _Entry] = {}


def pinned_bytes() -> int:
    """Bytes this process currently holds registered through this module."""
    with _LOCK:
        return sum(e.nbytes for e in _ACTIVE.values())


def _pieces(address: int, nbytes: int, chunk_bytes: int) -> list[tuple[int, int]]:
    """Split ``[address, address + nbytes)`` at multiples of ``chunk_bytes`` (page-aligned cut points)."""
    out = []
    start, end = address, address + nbytes
    while start < end:
        cut = min(end, (start // chunk_bytes + 1) * chunk_bytes)
        out.append((start, cut - start))
        start = cut
    return out


def _current(device: torch.device, driver: Driver) -> contextlib.AbstractContextManager[Any]:
    """Make ``device``'s primary context current for real driver calls (a fake driver needs none)."""
    if device.type == "cuda" and isinstance(driver, CudaDriver):
        return torch.cuda.device(device)
    return contextlib.nullcontext()


def _unregister_pieces(driver: Driver, pieces: list[Piece]) -> list[str]:
    errors = []
    for p in reversed(pieces):
        if p.owned:
            code = driver.unregister(p.address)
            if code != CUDA_SUCCESS:
                errors.append(f"0x{p.address:x}: {driver.error_name(code)}")
    return errors


class PinnedBuffer:
    """A host tensor's bytes registered with CUDA in place; ``view()`` reads them from the GPU over UVA."""

    def __init__(self, entry: _Entry | None, *, name: str, tensor: torch.Tensor, device: torch.device) -> None:
        self._entry = entry
        self.name = name
        self.tensor = tensor
        self.device = device
        self.address = int(tensor.data_ptr())
        self.nbytes = entry.nbytes if entry is not None else 0
        self.device_address = entry.device_address if entry is not None else 0
        self.read_only = entry.read_only if entry is not None else False
        self.pieces = tuple(entry.pieces) if entry is not None else ()

    @property
    def released(self) -> bool:
        """True after ``release``."""
        return self._entry is None and self.nbytes > 0

    @property
    def owned_bytes(self) -> int:
        """Bytes this buffer registered itself (the rest was already page-locked, e.g. by ``pin_memory()``)."""
        return sum(p.nbytes for p in self.pieces if p.owned)

    def view(self) -> torch.Tensor:
        """A CUDA tensor with the source tensor's dtype, shape and strides over the pinned bytes (UVA)."""
        t = self.tensor
        if self.nbytes == 0:
            return torch.empty(t.shape, dtype=t.dtype, device=self.device)
        if self._entry is None:
            raise PinningError(f"{self.name}: the pinned buffer was released")
        raw = _uva_bytes(self.device_address, self.nbytes, self.device, owner=self)
        return raw.view(t.dtype).as_strided(t.shape, t.stride())

    def byte_view(self) -> torch.Tensor:
        """The pinned bytes as a 1-D uint8 CUDA tensor (UVA), starting at the tensor's first byte."""
        if self.nbytes == 0:
            return torch.empty(0, dtype=torch.uint8, device=self.device)
        if self._entry is None:
            raise PinningError(f"{self.name}: the pinned buffer was released")
        return _uva_bytes(self.device_address, self.nbytes, self.device, owner=self)

    def release(self) -> None:
        """Unregister (when the last user of the range releases it). Safe to call twice."""
        entry, self._entry = self._entry, None
        if entry is not None:
            _drop(entry)

    def __enter__(self) -> PinnedBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return (f"PinnedBuffer({self.name}, {format_bytes(self.nbytes)} at 0x{self.address:x}, "
                f"pieces={len(self.pieces)}, read_only={self.read_only})")


def _drop(entry: _Entry) -> None:
    with _LOCK:
        entry.refs -= 1
        if entry.refs > 0:
            return
        _ACTIVE.pop((entry.address, entry.nbytes), None)
        with _current(entry.device, entry.driver):
            errors = _unregister_pieces(entry.driver, entry.pieces)
    if errors:
        raise PinningError(f"could not unregister {entry.name} ({format_bytes(entry.nbytes)}): {'; '.join(errors)}")


class _CudaArray:
    """Just enough of ``__cuda_array_interface__`` for ``torch.as_tensor`` to alias device-visible memory."""

    def __init__(self, address: int, nbytes: int, owner: Any) -> None:
        self.owner = owner  # torch keeps this object (and so the owner) alive as long as the tensor
        self.__cuda_array_interface__ = {"shape": (nbytes,), "typestr": "|u1", "data": (address, False),
                                         "strides": None, "version": 3}


def _uva_bytes(device_address: int, nbytes: int, device: torch.device, *, owner: Any) -> torch.Tensor:
    t = torch.as_tensor(_CudaArray(device_address, nbytes, owner), device=device)
    if t.data_ptr() != device_address or t.numel() != nbytes:  # pragma: no cover - defensive
        raise PinningError("torch did not alias the pinned memory as expected")
    return t


def _failure(name: str, address: int, nbytes: int, piece: tuple[int, int], index: int, count: int, code: int,
             driver: Driver, read_only: bool, hint: str) -> PinningError:
    msg = (f"cannot pin {name} in place ({format_bytes(nbytes)} at 0x{address:x}): cuMemHostRegister"
           f"{' (read-only)' if read_only else ''} failed with {driver.error_name(code)} on piece {index + 1}/{count}"
           f" ({format_bytes(piece[1])} at offset {piece[0] - address}); lockable-memory limit (ulimit -l):"
           f" {memlock_limit_text()}; already pinned by accessbench in this process: {format_bytes(pinned_bytes())}")
    backing = memory_backing(address, nbytes)
    if backing.kind.startswith("file"):
        msg += f"; the buffer is mapped from {backing.path} ({backing.kind}{', read-only' if not backing.writable else ''})"
    if code == CUDA_ERROR_OUT_OF_MEMORY:
        msg += ("; raise the limit (ulimit -l unlimited, memlock in /etc/security/limits.conf, or LimitMEMLOCK= for a"
                " service), free host memory, or use a smaller graph")
    return PinningError(msg + (f"; {hint}" if hint else ""))


def pin_in_place(
    tensor: torch.Tensor,
    *,
    name: str,
    device: torch.device,
    read_only: bool = False,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    driver: Driver | None = None,
    hint: str = "",
) -> PinnedBuffer:
    """Register ``tensor``'s bytes (a CPU tensor; any strides) with CUDA without copying them.

    ``read_only`` registers with ``CU_MEMHOSTREGISTER_READ_ONLY`` (needed for read-only or file-backed private
    mappings; the GPU must not write). ``chunk_bytes``: largest piece per driver call (a multiple of the page size).
    ``hint`` is appended to error messages (e.g. the option that avoids the failure).
    """
    if tensor.device.type != "cpu":
        raise PinningError(f"{name}: only host (CPU) tensors can be pinned in place, got {tensor.device}")
    page = os.sysconf("SC_PAGE_SIZE")
    if chunk_bytes < page or chunk_bytes % page:
        raise ValueError(f"chunk_bytes must be a positive multiple of the page size ({page}), got {chunk_bytes}")
    address, nbytes = int(tensor.data_ptr()), span_bytes(tensor)
    if nbytes == 0:
        return PinnedBuffer(None, name=name, tensor=tensor, device=device)
    drv = driver if driver is not None else _cuda_driver()
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    with _current(device, drv):
        if isinstance(drv, CudaDriver):
            torch.cuda.synchronize(device)  # any runtime call makes the device's primary context current
        return _pin(tensor, name, device, read_only, chunk_bytes, drv, hint, address, nbytes)


def _pin(tensor: torch.Tensor, name: str, device: torch.device, read_only: bool, chunk_bytes: int, drv: Driver,
         hint: str, address: int, nbytes: int) -> PinnedBuffer:
    if read_only and device.type == "cuda" and not drv.read_only_supported(device.index or 0):
        raise PinningError(f"cannot pin {name} read-only: {device} does not support read-only host registration"
                           f" (CU_DEVICE_ATTRIBUTE_READ_ONLY_HOST_REGISTER_SUPPORTED = 0)"
                           + (f"; {hint}" if hint else ""))
    with _LOCK:
        key = (address, nbytes)
        same = _ACTIVE.get(key)
        if same is not None:
            if same.read_only != read_only:
                raise PinningError(f"{name} is already pinned as {same.name} with read_only={same.read_only}")
            same.refs += 1
            return PinnedBuffer(same, name=name, tensor=tensor, device=device)
        for e in _ACTIVE.values():
            if e.address < address + nbytes and address < e.address + e.nbytes:
                raise PinningError(f"cannot pin {name} ({format_bytes(nbytes)} at 0x{address:x}): it overlaps {e.name}"
                                   f" ({format_bytes(e.nbytes)} at 0x{e.address:x}), pinned by accessbench already")
        flags = FLAG_PORTABLE | FLAG_DEVICEMAP | (FLAG_READ_ONLY if read_only else 0)
        ranges = _pieces(address, nbytes, chunk_bytes)
        done: list[Piece] = []
        try:
            for i, (start, size) in enumerate(ranges):
                code = drv.register(start, size, flags)
                if code == CUDA_ERROR_ALREADY_REGISTERED:
                    done.append(Piece(start, size, owned=False))
                elif code == CUDA_SUCCESS:
                    done.append(Piece(start, size))
                else:
                    raise _failure(name, address, nbytes, (start, size), i, len(ranges), code, drv, read_only, hint)
            base = _device_address(drv, name, done, address)
        except BaseException:
            _unregister_pieces(drv, done)
            raise
        entry = _Entry(name, address, nbytes, done, base, read_only, drv, device, tensor)
        _ACTIVE[key] = entry
    return PinnedBuffer(entry, name=name, tensor=tensor, device=device)


def _device_address(drv: Driver, name: str, pieces: list[Piece], address: int) -> int:
    """The device address of the first byte; every piece must map at the same offset from it (one UVA range)."""
    code, base = drv.device_pointer(address)
    if code != CUDA_SUCCESS:
        raise PinningError(f"{name}: registered, but the driver gives no device address ({drv.error_name(code)})")
    for p in pieces[1:]:
        code, dptr = drv.device_pointer(p.address)
        if code != CUDA_SUCCESS or dptr != base + (p.address - address):
            raise PinningError(f"{name}: the driver mapped the registered pieces at non-contiguous device addresses"
                               f" (piece at offset {p.address - address}); pin with a larger chunk_bytes")
    return base


def release_all() -> list[str]:
    """Unregister everything still registered (registered to run at interpreter exit); returns the failures."""
    with _LOCK:
        entries = list(_ACTIVE.values())
        _ACTIVE.clear()
    errors = []
    for e in entries:
        try:
            with _current(e.device, e.driver):
                errors += [f"{e.name} {msg}" for msg in _unregister_pieces(e.driver, e.pieces)]
        except Exception as exc:  # pragma: no cover - the driver may already be shutting down at exit
            errors.append(f"{e.name}: {exc}")
    return errors


atexit.register(release_all)

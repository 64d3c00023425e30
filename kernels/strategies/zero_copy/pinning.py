"""Page-lock host tensors where they already are, so a GPU reads them over UVA with no staging copy.

``pin_in_place(tensor, name=..., device=...)`` registers the tensor's bytes with the CUDA driver
(``cuMemHostRegister``, portable + device-mapped; read-only on request), in page-aligned pieces of at most
``chunk_bytes`` for very large buffers, and returns a ``PinnedBuffer`` whose ``view()`` is a CUDA tensor over the
same memory. Registrations are kept in a process-wide registry: the same range pinned twice is shared (reference
counted), a range that overlaps another one, or only shares a memory page with it, is refused (the driver registers
whole pages, so two registrations must never share one: ``aligned_copy`` puts an array in pages of its own), a failure
part-way unregisters the pieces already done, and whatever is still registered at interpreter exit is unregistered
then (after synchronising the device, which also makes its primary context current). Memory page-locked by someone
else (``tensor.pin_memory()``, ``cudaHostAlloc``, another library's register) is recognised before registering, by
asking the driver what the address is (``cuPointerGetAttribute(CU_POINTER_ATTRIBUTE_MEMORY_TYPE)`` = host), and
after a refused register by the codes drivers answer for it (``CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED`` (712),
``CUDA_ERROR_ALREADY_MAPPED`` (208) on older drivers, ``CUDA_ERROR_INVALID_VALUE`` (1) where the address is host
memory the driver knows); it is used only after the driver confirms that existing registrations cover every byte. Failures raise ``PinningError`` naming the
buffer, its size, the driver's error and the lockable-memory limit (``ulimit -l``).

The driver calls live in ``accessbench.kernels.strategies.zero_copy.cuda_driver`` and the host-memory helpers in ``accessbench.kernels.strategies.zero_copy.host_memory`` (both
re-exported here). The driver API (libcuda through ctypes) is used rather than
``torch.cuda.cudart().cudaHostRegister``: a failed runtime call leaves a pending "last error" that torch's next
kernel-launch check would report as its own failure, and the runtime bindings in torch offer no way to ask for a
registered range's device address.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from accessbench.kernels.errors import AccessBenchError

from .cuda_driver import (
    CUDA_ERROR_ALREADY_MAPPED,
    CUDA_ERROR_ALREADY_REGISTERED,
    CUDA_ERROR_INVALID_VALUE,
    CUDA_ERROR_OUT_OF_MEMORY,
    CUDA_SUCCESS,
    FLAG_DEVICEMAP,
    FLAG_PORTABLE,
    FLAG_READ_ONLY,
    MEMORYTYPE_HOST,
    CudaDriver,
    Driver,
    registered_cover,
)
from .host_memory import (
    Backing,
    aligned_copy,
    aligned_empty,
    format_bytes,
    memlock_limit_text,
    memory_backing,
    page_size,
    page_span,
    parse_maps,
    span_bytes,
)

__all__ = [
    "CUDA_ERROR_ALREADY_MAPPED",
    "CUDA_ERROR_ALREADY_REGISTERED",
    "CUDA_ERROR_INVALID_VALUE",
    "CUDA_ERROR_OUT_OF_MEMORY",
    "CUDA_SUCCESS",
    "DEFAULT_CHUNK_BYTES",
    "FLAG_DEVICEMAP",
    "FLAG_PORTABLE",
    "FLAG_READ_ONLY",
    "MEMORYTYPE_HOST",
    "Backing",
    "CudaDriver",
    "Driver",
    "Piece",
    "PinnedBuffer",
    "PinningError",
    "aligned_copy",
    "aligned_empty",
    "format_bytes",
    "memlock_limit_text",
    "memory_backing",
    "page_neighbour",
    "page_size",
    "page_span",
    "parse_maps",
    "pin_in_place",
    "pinned_bytes",
    "release_all",
    "span_bytes",
]

DEFAULT_CHUNK_BYTES = 1 << 30
#: Codes a driver answers ``cuMemHostRegister`` with for memory page-locked already (712 today, 208 on older drivers).
_ALREADY_LOCKED = (CUDA_ERROR_ALREADY_REGISTERED, CUDA_ERROR_ALREADY_MAPPED)


class PinningError(AccessBenchError):
    """Host memory could not be registered with CUDA (or released); the message says which buffer and why."""


@functools.cache
def _cuda_driver() -> CudaDriver:
    try:
        return CudaDriver()
    except OSError as exc:
        raise PinningError(f"cannot load the CUDA driver library libcuda.so.1 ({exc})") from None


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


def _shares_page(e: _Entry, address: int, nbytes: int) -> bool:
    lo, hi = page_span(address, nbytes)
    elo, ehi = page_span(e.address, e.nbytes)
    return elo < hi and lo < ehi


def page_neighbour(tensor: torch.Tensor) -> str | None:
    """The name of a range pinned here that shares a memory page with ``tensor`` without being the same range
    (pinning ``tensor`` in place would then be refused; ``aligned_copy`` gives it pages of its own), else None."""
    address, nbytes = int(tensor.data_ptr()), span_bytes(tensor)
    if nbytes == 0:
        return None
    with _LOCK:
        for key, e in _ACTIVE.items():
            if key != (address, nbytes) and _shares_page(e, address, nbytes):
                return e.name
    return None


def _pieces(address: int, nbytes: int, chunk_bytes: int) -> list[tuple[int, int]]:
    """Split ``[address, address + nbytes)`` at multiples of ``chunk_bytes`` (page-aligned cut points)."""
    out = []
    start, end = address, address + nbytes
    while start < end:
        cut = min(end, (start // chunk_bytes + 1) * chunk_bytes)
        out.append((start, cut - start))
        start = cut
    return out


def _is_real(driver: Driver) -> bool:
    return isinstance(driver, CudaDriver)


@contextlib.contextmanager
def _current(device: torch.device, driver: Driver) -> Iterator[None]:
    """Make ``device``'s primary context current for real driver calls (a fake driver needs none): select the
    device and synchronise it (any runtime call makes its primary context current on this thread, which at
    interpreter exit may have none; and no kernel may still read a range about to be unregistered)."""
    if device.type == "cuda" and _is_real(driver):
        with torch.cuda.device(device):
            torch.cuda.synchronize(device)
            yield
    else:
        yield


def _known_host(drv: Driver, address: int) -> bool:
    """True when the driver already knows ``address`` as page-locked host memory (CU_MEMORYTYPE_HOST)."""
    code, kind = drv.memory_type(address)
    return code == CUDA_SUCCESS and kind == MEMORYTYPE_HOST


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
        ro = ", read-only" if not backing.writable else ""
        msg += f"; the buffer is mapped from {backing.path} ({backing.kind}{ro})"
    if code == CUDA_ERROR_INVALID_VALUE:
        msg += ("; the driver refuses ranges that overlap memory page-locked elsewhere (pin_memory(), cudaHostAlloc)"
                " with this code too: copy the buffer into pages of its own"
                " (accessbench.kernels.strategies.zero_copy.pinning.aligned_copy)")
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
    page = page_size()
    if chunk_bytes < page or chunk_bytes % page:
        raise ValueError(f"chunk_bytes must be a positive multiple of the page size ({page}), got {chunk_bytes}")
    address, nbytes = int(tensor.data_ptr()), span_bytes(tensor)
    if nbytes == 0:
        return PinnedBuffer(None, name=name, tensor=tensor, device=device)
    drv = driver if driver is not None else _cuda_driver()
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    with _current(device, drv):
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
            what = ("overlaps" if e.address < address + nbytes and address < e.address + e.nbytes
                    else "shares a memory page with" if _shares_page(e, address, nbytes) else "")
            if what:
                raise PinningError(f"cannot pin {name} ({format_bytes(nbytes)} at 0x{address:x}): it {what} {e.name}"
                                   f" ({format_bytes(e.nbytes)} at 0x{e.address:x}), pinned by accessbench already;"
                                   f" CUDA registers whole pages, so two registrations must not share one: copy the"
                                   f" array into pages of its own first (accessbench.kernels.strategies.zero_copy.pinning.aligned_copy)")
        flags = FLAG_PORTABLE | FLAG_DEVICEMAP | (FLAG_READ_ONLY if read_only else 0)
        ranges = _pieces(address, nbytes, chunk_bytes)
        done: list[Piece] = []
        points: list[int] = []  # addresses where the device mapping must continue the first byte's
        try:
            for i, (start, size) in enumerate(ranges):
                # asked first: drivers have answered a register of such memory with 712, 208 or even 1
                code = CUDA_ERROR_ALREADY_REGISTERED if _known_host(drv, start) else drv.register(start, size, flags)
                if code == CUDA_ERROR_INVALID_VALUE and _known_host(drv, start):
                    code = CUDA_ERROR_ALREADY_REGISTERED
                if code in _ALREADY_LOCKED:
                    points += _foreign_cover(drv, name, address, nbytes, (start, size), i, len(ranges), hint)
                    done.append(Piece(start, size, owned=False))
                elif code == CUDA_SUCCESS:
                    done.append(Piece(start, size))
                    points.append(start)
                else:
                    raise _failure(name, address, nbytes, (start, size), i, len(ranges), code, drv, read_only, hint)
            base = _device_address(drv, name, points, address)
        except BaseException:
            _unregister_pieces(drv, done)
            raise
        entry = _Entry(name, address, nbytes, done, base, read_only, drv, device, tensor)
        _ACTIVE[key] = entry
    return PinnedBuffer(entry, name=name, tensor=tensor, device=device)


def _foreign_cover(drv: Driver, name: str, address: int, nbytes: int, piece: tuple[int, int], index: int,
                   count: int, hint: str) -> list[int]:
    """On memory page-locked already (see ``_ALREADY_LOCKED``, or known to the driver as host memory): the driver refuses a range that merely overlaps an existing
    registration, registering nothing, so use the piece only if existing registrations cover every byte of it
    (``registered_cover``); returns the start of each covering range. Raises ``PinningError`` otherwise."""
    start, end = piece[0], piece[0] + piece[1]
    covered_to, starts = registered_cover(drv, address, start, end)
    if covered_to >= end:
        return starts
    msg = (f"cannot pin {name} in place ({format_bytes(nbytes)} at 0x{address:x}): piece {index + 1}/{count}"
           f" ({format_bytes(piece[1])} at offset {start - address}) is partly page-locked already"
           f" ({drv.error_name(CUDA_ERROR_ALREADY_REGISTERED)}), but existing registrations cover only its first"
           f" {covered_to - start} bytes (the rest is not registered and the GPU must not read it); CUDA registers"
           f" whole pages, so the buffer shares a page with memory registered elsewhere: copy it into pages of its"
           f" own (accessbench.kernels.strategies.zero_copy.pinning.aligned_copy) or release the other registration")
    raise PinningError(msg + (f"; {hint}" if hint else ""))


def _device_address(drv: Driver, name: str, points: list[int], address: int) -> int:
    """The device address of the first byte; each of ``points`` must map at the same offset from it (one UVA
    range across pieces and across the registrations that cover them)."""
    code, base = drv.device_pointer(address)
    if code != CUDA_SUCCESS:
        raise PinningError(f"{name}: registered, but the driver gives no device address ({drv.error_name(code)})")
    for p in points:
        code, dptr = drv.device_pointer(p)
        if code != CUDA_SUCCESS or dptr != base + (p - address):
            raise PinningError(f"{name}: the driver mapped the registered pieces at non-contiguous device addresses"
                               f" (piece at offset {p - address}); pin with a larger chunk_bytes")
    return base


def release_all() -> list[str]:
    """Unregister everything still registered (registered to run at interpreter exit); returns the failures.

    Each device is synchronised first, inside its primary context made current (``_current``): at exit this thread
    may have no current context, and a kernel still queued must not read a range as it is unregistered."""
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

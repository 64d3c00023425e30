"""The CUDA driver calls that pin host memory (``libcuda.so.1`` through ctypes), behind a small protocol that a fake
driver implements in CPU tests. Every call returns the driver's ``CUresult`` first; nothing here raises on a CUDA
error (``accessbench.kernels.strategies.zero_copy.pinning`` turns codes into ``PinningError``s with context)."""

from __future__ import annotations

import ctypes
import os
from typing import Protocol

__all__ = [
    "CUDA_ERROR_ALREADY_MAPPED",
    "CUDA_ERROR_ALREADY_REGISTERED",
    "CUDA_ERROR_INVALID_VALUE",
    "CUDA_ERROR_OUT_OF_MEMORY",
    "CUDA_SUCCESS",
    "MEMORYTYPE_HOST",
    "FLAG_DEVICEMAP",
    "FLAG_PORTABLE",
    "FLAG_READ_ONLY",
    "CudaDriver",
    "Driver",
    "driver_cuda_version",
    "registered_cover",
]

FLAG_PORTABLE, FLAG_DEVICEMAP, FLAG_READ_ONLY = 0x1, 0x2, 0x8
CUDA_SUCCESS, CUDA_ERROR_INVALID_VALUE, CUDA_ERROR_OUT_OF_MEMORY = 0, 1, 2
CUDA_ERROR_ALREADY_MAPPED, CUDA_ERROR_ALREADY_REGISTERED = 208, 712
#: ``CUmemorytype`` values: host memory the driver knows (page-locked by cudaHostAlloc, pin_memory or a register).
MEMORYTYPE_HOST = 1
_POINTER_ATTRIBUTE_MEMORY_TYPE = 2
_ATTR_READ_ONLY_HOST_REGISTER_SUPPORTED = 113
_POINTER_ATTRIBUTE_DEVICE_POINTER = 3
_POINTER_ATTRIBUTE_RANGE_START_ADDR, _POINTER_ATTRIBUTE_RANGE_SIZE = 11, 12


class Driver(Protocol):
    """The driver calls pinning needs (a fake stands in for it in CPU tests); each returns a CUresult first."""

    def register(self, address: int, nbytes: int, flags: int) -> int: ...
    def unregister(self, address: int) -> int: ...
    def device_pointer(self, address: int) -> tuple[int, int]: ...
    def memory_type(self, address: int) -> tuple[int, int]: ...
    def pointer_range(self, address: int) -> tuple[int, int, int]: ...
    def error_name(self, code: int) -> str: ...
    def read_only_supported(self, device_index: int) -> bool: ...


class CudaDriver:
    """``libcuda.so.1`` through ctypes; calls need a current context (``pin_in_place`` makes the device's current)."""

    def __init__(self) -> None:
        lib = ctypes.CDLL("libcuda.so.1")  # OSError where there is no driver
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

    def memory_type(self, address: int) -> tuple[int, int]:
        """(code, ``CUmemorytype``) of ``address``: ``MEMORYTYPE_HOST`` for host memory CUDA has page-locked; an
        error code (``CUDA_ERROR_INVALID_VALUE``) for memory CUDA does not know."""
        out = ctypes.c_uint(0)
        code = int(self._lib.cuPointerGetAttribute(ctypes.byref(out), _POINTER_ATTRIBUTE_MEMORY_TYPE, address))
        return code, int(out.value)

    def pointer_range(self, address: int) -> tuple[int, int, int]:
        """(code, start, size) of the registration or allocation that ``address`` lies in."""
        start, size = ctypes.c_uint64(0), ctypes.c_size_t(0)
        code = int(self._lib.cuPointerGetAttribute(ctypes.byref(start), _POINTER_ATTRIBUTE_RANGE_START_ADDR, address))
        if code == CUDA_SUCCESS:
            code = int(self._lib.cuPointerGetAttribute(ctypes.byref(size), _POINTER_ATTRIBUTE_RANGE_SIZE, address))
        return code, int(start.value), int(size.value)

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


def driver_cuda_version() -> int | None:
    """The CUDA version the installed driver supports (``cuDriverGetVersion``: 12040 for 12.4); None without a
    driver library. Needs no context and no ``cuInit``."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    value = ctypes.c_int(0)
    if int(lib.cuDriverGetVersion(ctypes.byref(value))) != CUDA_SUCCESS or value.value <= 0:
        return None
    return int(value.value)


def registered_cover(drv: Driver, address: int, start: int, end: int) -> tuple[int, list[int]]:
    """How far from ``start`` (towards ``end``) existing registrations cover host memory without a gap, and the
    start of each covering range met on the way. ``address`` is the first byte of the whole buffer: where the
    driver gives no range for a host pointer, each page is checked instead for a device mapping at the same offset
    from ``address``'s (the driver maps registered pages, whole pages at a time).

    Ranges come from ``cuPointerGetAttribute`` ``RANGE_START_ADDR``/``RANGE_SIZE``, read in host addresses or, if
    they do not contain the host pointer, in device addresses."""
    pos, starts = start, []
    while pos < end and len(starts) < 1024:
        code, lo, size = drv.pointer_range(pos)
        if code != CUDA_SUCCESS or size <= 0:
            if not starts:
                return _pages_mapped_until(drv, address, start, end), [start]
            break
        if lo <= pos < lo + size:
            covered_to = lo + size
        else:
            code, dptr = drv.device_pointer(pos)
            if code != CUDA_SUCCESS or not lo <= dptr < lo + size:
                break
            covered_to = pos + (lo + size - dptr)
        starts.append(pos)
        pos = covered_to
    return min(pos, end), starts


def _pages_mapped_until(drv: Driver, address: int, start: int, end: int) -> int:
    code, base = drv.device_pointer(address)
    if code != CUDA_SUCCESS:
        return start
    page = os.sysconf("SC_PAGE_SIZE")
    pos = start
    while pos < end:
        code, dptr = drv.device_pointer(pos)
        if code != CUDA_SUCCESS or dptr != base + (pos - address):
            return pos
        pos = (pos // page + 1) * page
    return end

"""NVTX ranges for profilers: one domain ``accessbench``, a range per phase and per measured step.

``nvtx_ranges()`` gives the real backend (the ``nvtx`` package) or a null one with the reason; both cost almost
nothing when no profiler is attached (the nvtx library is a no-op then). ``TorchProfilerRanges`` turns the same
ranges into ``torch.profiler.record_function`` labels for the ``--profile`` trace.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

__all__ = ["COLORS", "DOMAIN", "NullRanges", "NvtxRanges", "RangeBackend", "TorchProfilerRanges", "nvtx_ranges"]

DOMAIN = "accessbench"
#: Range colours in nsys: the same phase always has the same colour.
COLORS = {"sample": "green", "gather": "blue", "transfer": "orange", "compute": "purple", "step": "grey",
          "measure": "yellow"}


class RangeBackend(Protocol):
    """Push/pop of named ranges on the calling thread; ``payload`` is an integer (the step number)."""

    def push(self, name: str, payload: int | None = None) -> None: ...

    def pop(self) -> None: ...


class NullRanges:
    """No ranges (NVTX switched off or not installed); ``reason`` says which."""

    def __init__(self, reason: str = "NVTX ranges switched off") -> None:
        self.reason = reason

    def push(self, name: str, payload: int | None = None) -> None:
        pass

    def pop(self) -> None:
        pass


class NvtxRanges:
    """Ranges in the NVTX domain ``accessbench`` (shown by name in Nsight Systems)."""

    def __init__(self, nvtx_module: Any) -> None:
        self._domain = nvtx_module.get_domain(DOMAIN)
        self._attrs: dict[str, Any] = {}

    def push(self, name: str, payload: int | None = None) -> None:
        if payload is None:
            attrs = self._attrs.get(name)
            if attrs is None:
                attrs = self._attrs[name] = self._domain.get_event_attributes(message=name, color=COLORS.get(name))
        else:
            attrs = self._domain.get_event_attributes(message=name, color=COLORS.get(name), payload=payload)
        self._domain.push_range(attrs)

    def pop(self) -> None:
        self._domain.pop_range()


class TorchProfilerRanges:
    """Ranges as ``torch.profiler.record_function`` labels (per thread), shown in the Chrome/Perfetto trace."""

    def __init__(self) -> None:
        self._tls = threading.local()

    def push(self, name: str, payload: int | None = None) -> None:
        import torch.profiler

        label = name if payload is None else f"{name} {payload}"
        rf = torch.profiler.record_function(label)
        rf.__enter__()
        stack = getattr(self._tls, "stack", None)
        if stack is None:
            stack = self._tls.stack = []
        stack.append(rf)

    def pop(self) -> None:
        stack = getattr(self._tls, "stack", None)
        if stack:
            stack.pop().__exit__(None, None, None)


def nvtx_ranges(enabled: bool = True) -> NvtxRanges | NullRanges:
    """The NVTX backend, or a null one when ``enabled`` is False or the ``nvtx`` package is missing."""
    if not enabled:
        return NullRanges("NVTX ranges switched off (--no-nvtx)")
    try:
        import nvtx
    except ImportError:
        return NullRanges("the nvtx package is not installed (pip install nvtx)")
    return NvtxRanges(nvtx)

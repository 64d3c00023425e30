"""Device resolution, synchronisation and cached checks for optional GPU software."""

from __future__ import annotations

import functools
import importlib.util

import torch

from .errors import StrategyUnavailable

__all__ = ["cuda_available", "describe_device", "resolve_device", "synchronize", "triton_available"]


@functools.cache
def cuda_available() -> bool:
    """True when torch sees at least one CUDA device."""
    return bool(torch.cuda.is_available())


@functools.cache
def triton_available() -> bool:
    """True when the ``triton`` package can be imported (it is not imported here)."""
    return importlib.util.find_spec("triton") is not None


def resolve_device(spec: str | torch.device | None) -> torch.device:
    """Turn ``auto``/``cpu``/``cuda``/``cuda:N`` into a device that exists here, or raise naming what is missing."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda", torch.cuda.current_device()) if cuda_available() else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec.startswith("cuda"):
        if not cuda_available():
            raise StrategyUnavailable(f"device {spec!r} requested but torch sees no CUDA device on this machine")
        try:
            dev = torch.device(spec)
        except RuntimeError as exc:
            raise StrategyUnavailable(f"invalid device {spec!r}: {exc}") from None
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise StrategyUnavailable(f"device {spec!r} requested but only {torch.cuda.device_count()} CUDA device(s)")
        return torch.device("cuda", index)
    raise StrategyUnavailable(f"unknown device {spec!r}; valid: auto, cpu, cuda, cuda:N")


def synchronize(device: torch.device) -> None:
    """Wait for all queued work on ``device`` (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def describe_device(device: torch.device) -> str:
    """A short human label: ``cpu`` or ``cuda:0 (NVIDIA H100 ...)``."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return "cpu"

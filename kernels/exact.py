"""Exactness of gathered rows: bit patterns, not values, so NaN rows of a store that allows them still compare equal."""

from __future__ import annotations

import torch

__all__ = ["same_bits"]

_INT_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """True when ``a`` and ``b`` have the same shape, dtype and bytes (NaN == NaN, and +0.0 != -0.0).

    Any devices: both are compared on the CPU. ``torch.equal`` would call rows holding NaN different.
    """
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    a, b = a.detach().cpu().contiguous(), b.detach().cpu().contiguous()
    if a.dtype.is_floating_point and a.element_size() in _INT_VIEW:
        view = _INT_VIEW[a.element_size()]
        return bool(torch.equal(a.view(view), b.view(view)))
    return bool(torch.equal(a, b))

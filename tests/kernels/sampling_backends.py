"""The sampler backends the tests run ``sample_blocks`` under: ``torch`` always, ``numba`` where it is installed
(that leg skips elsewhere). Tests take ``backend`` from ``BACKENDS`` and call ``use_backend`` first."""

from __future__ import annotations

import pytest
import torch

from accessbench.kernels import sampling

__all__ = ["BACKENDS", "use_backend"]

BACKENDS = ["torch", "numba"]


def use_backend(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make ``sample_blocks`` on CPU tensors run backend ``name`` for the rest of the test."""
    if name == "numba":
        pytest.importorskip("numba")
    monkeypatch.setenv("ACCESSBENCH_SAMPLER", name)
    assert sampling.sampler_backend(torch.device("cpu")) == name

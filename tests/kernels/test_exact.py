"""Exactness compares bit patterns: NaN rows equal themselves, any changed byte differs."""

from __future__ import annotations

import pytest
import torch

from accessbench.kernels.exact import same_bits


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_nan_rows_are_equal_to_themselves_and_a_changed_value_is_not(dtype: torch.dtype) -> None:
    rows = torch.randn(8, 5).to(dtype)
    rows[2, 3] = float("nan")
    assert not torch.equal(rows, rows.clone())  # what the runner used before: NaN != NaN
    assert same_bits(rows, rows.clone())
    other = rows.clone()
    other[0, 0] = other[0, 0] + 1
    assert not same_bits(rows, other)


def test_shape_dtype_and_integer_rows() -> None:
    a = torch.arange(12, dtype=torch.int8).reshape(3, 4)
    assert same_bits(a, a.clone())
    assert not same_bits(a, a.reshape(4, 3))
    assert not same_bits(a, a.to(torch.uint8))
    assert not same_bits(torch.tensor([0.0]), torch.tensor([-0.0]))

"""Serving's kernels (``_scoring``) against torch and numpy: ``top_k`` (block maxima,
then an exact top-k over the winning blocks), ``log_sum_exp`` and ``table_product``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pertinent.recipes._scoring import log_sum_exp, table_product, top_k


def _check(logits: torch.Tensor, k: int) -> None:
    values, index = top_k(logits, k)
    expected = torch.topk(logits, k, dim=1).values
    assert torch.equal(values, expected)
    # Each index points at its value: with ties the set may differ, never the values.
    assert torch.equal(logits.gather(1, index), values)
    for row in range(logits.shape[0]):
        assert len(set(index[row].tolist())) == k


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 5),
    width=st.integers(1, 3000),
    k=st.integers(1, 40),
    levels=st.sampled_from([3, 50, 0]),  # few distinct values (ties), or continuous
    masked=st.floats(0.0, 0.99),
    seed=st.integers(0, 2**16),
)
def test_matches_torch_topk(
    rows: int, width: int, k: int, levels: int, masked: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    if levels:
        data = rng.integers(0, levels, size=(rows, width)).astype(np.float32)
    else:
        data = rng.standard_normal((rows, width)).astype(np.float32)
    data[rng.random((rows, width)) < masked] = -np.inf
    _check(torch.from_numpy(data), min(k, width))


@pytest.mark.parametrize("k", [1, 26, 100])
def test_wide_rows_take_the_block_path(k: int) -> None:
    rng = np.random.default_rng(k)
    data = rng.standard_normal((8, 100_003)).astype(np.float32)
    data[3, 50_000] = 50.0  # one dominant item, in the body
    data[4, -1] = 50.0  # and one in the tail past the last whole block
    data[5] = np.round(data[5])  # heavy ties
    _check(torch.from_numpy(data), k)


def test_log_sum_exp_matches_torch() -> None:
    rng = np.random.default_rng(0)
    data = torch.from_numpy((rng.standard_normal((4, 5000)) * 20).astype(np.float32))
    data[1, :100] = float("-inf")
    assert torch.allclose(log_sum_exp(data), torch.logsumexp(data, dim=1), rtol=1e-6)


def test_log_sum_exp_with_items_far_below_the_maximum() -> None:
    # A blended row: a few items lifted far above the rest, which underflow in exp.
    rng = np.random.default_rng(1)
    data = torch.from_numpy((rng.standard_normal((3, 5000)) * 50 - 120).astype(np.float32))
    data[0, 7] = 40.0
    data[1, :3] = torch.tensor([30.0, 29.5, -60.0])
    data[2, 100:] = float("-inf")
    assert torch.allclose(log_sum_exp(data), torch.logsumexp(data, dim=1), rtol=1e-6)


def test_log_sum_exp_keeps_finite_rows_beside_a_row_without_any() -> None:
    # The softmax shortcut gives NaN for a row of -inf; that row alone goes the slow way.
    data = torch.zeros((3, 1000))
    data[1] = float("-inf")
    data[2, :10] = 5.0
    got = log_sum_exp(data)
    expected = torch.logsumexp(data, dim=1)
    assert torch.allclose(got[[0, 2]], expected[[0, 2]], rtol=1e-6)
    assert bool(torch.isfinite(got[0])) and bool(torch.isfinite(got[2]))


@pytest.mark.parametrize("batch", [1, 2, 3, 5, 7, 33])
def test_table_product_is_the_same_product_in_either_blas(batch: int) -> None:
    # 40,000 items: two whole OpenBLAS chunks and a remainder.
    rng = np.random.default_rng(batch)
    table = rng.standard_normal((40_000, 65)).astype(np.float32)
    columns = torch.from_numpy(np.ascontiguousarray(table.T))
    q1 = rng.standard_normal((batch, 65)).astype(np.float32)
    exact = q1.astype(np.float64) @ table.T.astype(np.float64)
    for openblas in (False, True, None):
        got = table_product(table, columns, q1, openblas=openblas)
        assert got.shape == (batch, 40_000) and got.flags.c_contiguous
        np.testing.assert_allclose(got, exact, rtol=1e-4, atol=1e-4)

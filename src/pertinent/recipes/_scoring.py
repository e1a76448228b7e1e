"""Serving's pass over the item table: the product, top-k and the softmax normaliser.

A GetRecommendations batch multiplies its query vectors by the whole item table
(100k x 65 floats) and keeps the best few dozen, scored by a softmax over all of it.
``table_product`` picks the BLAS that runs that shape fast on this CPU; ``top_k`` and
``log_sum_exp`` replace ``torch.topk`` and ``torch.logsumexp`` with faster exact
equivalents.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from pertinent.recipes._cpu import cpu_field

if TYPE_CHECKING:
    import torch

__all__ = [
    "csr_positions",
    "log_sum_exp",
    "nth_largest",
    "numpy_product",
    "table_product",
    "top_k",
]

F32 = npt.NDArray[np.float32]

_BLOCK = 128  # items per block of ``top_k``, ``nth_largest``: fastest of 64-2048 on 100k
_EXP_FLOOR = -80.0  # exp(-80) is a normal float32; below -87 it underflows, slowly


# MKL (torch's BLAS) multiplies a few queries by a tall table near memory speed on
# Intel CPUs (1.3 ms for eight 100k x 65 queries) but at a third of it elsewhere: on an
# AMD EPYC 4.0 ms for eight, 5.3 for sixteen, where OpenBLAS (numpy's) took 2.7 and 4.1
# in ``_row_product``'s shape. A lone query is a matvec, fastest in MKL everywhere.
_MKL_FAST = cpu_field("vendor_id") == "GenuineIntel"
_ROW_CHUNK = 16384  # items per OpenBLAS call: its (chunk x B) result stays in cache
_ROW_MAX_BATCH = 64  # serving's batches; evaluation's larger ones keep MKL
_MATVEC_MAX_BATCH = 2


def table_product(
    table: F32, columns: torch.Tensor, q1: F32, *, openblas: bool | None = None
) -> F32:
    """``q1 @ table.T``, (B, n): ``table`` is the (n, d + 1) item table, ``columns`` its
    transpose as a tensor. ``openblas`` forces the kernel (tests); None picks it."""
    import torch

    b = q1.shape[0]
    if openblas is None:
        openblas = not _MKL_FAST and b <= _ROW_MAX_BATCH
    if not openblas:
        with torch.inference_mode():
            out: F32 = torch.mm(torch.from_numpy(q1), columns).numpy()
        return out
    if b <= _MATVEC_MAX_BATCH:
        # OpenBLAS's matvec over the column block, a query at a time: 0.7 ms for one
        # 100k x 65 query on an AMD EPYC, where MKL's took 0.9-1.0 and the row block's
        # 1.2; two matvecs 1.5-1.6 against the row block's 1.7-1.8 for a pair.
        cols = columns.numpy()
        out = np.empty((b, cols.shape[1]), dtype=np.float32)
        for row in range(b):
            np.dot(q1[row], cols, out=out[row])
        return out
    return _row_product(table, q1)


def numpy_product(table: F32, q: F32) -> F32:
    """``q @ table.T``, (B, n), in numpy alone (the HRNN model's serving loads no torch):
    a matvec for one query, the row kernel for serving's batches (``q @ table.T`` ran
    those as slowly as one matvec each), numpy's matmul for evaluation's."""
    if q.shape[0] == 1:
        one: F32 = (table @ q[0])[None]
        return one
    if q.shape[0] <= _ROW_MAX_BATCH:
        return _row_product(table, np.ascontiguousarray(q, dtype=np.float32))
    many: F32 = q @ table.T
    return many


# OpenBLAS's sgemm takes the queries four or eight at a time, and 3 or 5-7 of them in
# extra passes over the table: 2.2 ms for three 100k x 65 queries against 1.9 for four,
# 2.6-3.3 for five to seven against 2.1 for eight (AMD EPYC). Zero rows fill the pass.
_PADDED: dict[int, int] = {3: 4, 5: 8, 6: 8, 7: 8}


def _row_product(table: F32, q1: F32) -> F32:
    """The product as OpenBLAS runs it fast, ``table @ q1.T`` (items by queries), a chunk
    of items at a time, each transposed into place while it is in cache (a whole
    (n, B) result transposed at the end cost more than the product)."""
    n, b = int(table.shape[0]), int(q1.shape[0])
    width = _PADDED.get(b, b)
    if width != b:
        q1 = np.concatenate([q1, np.zeros((width - b, q1.shape[1]), dtype=np.float32)])
    out = np.empty((b, n), dtype=np.float32)
    part = np.empty((min(_ROW_CHUNK, n), width), dtype=np.float32)
    q_t = q1.T
    for start in range(0, n, _ROW_CHUNK):
        stop = min(start + _ROW_CHUNK, n)
        chunk = part[: stop - start]
        np.matmul(table[start:stop], q_t, out=chunk)
        out[:, start:stop] = chunk[:, :b].T
    return out


def top_k(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.topk(logits, k, dim=1)``'s values, three times faster on wide rows.

    The row is cut into blocks of ``_BLOCK``; every block that holds one of the top k
    values has a maximum at least the k-th largest block maximum ``t``, and there are k
    blocks at or above ``t``, so the top k values lie in those k blocks plus the short
    tail. One cheap pass takes the block maxima; the exact top-k then runs over
    ``k · _BLOCK`` candidates instead of the catalogue. Among equal values the indices
    may differ from ``torch.topk``'s, which leaves ties unspecified too (the caller
    breaks them).
    """
    import torch

    b, n = logits.shape
    blocks = n // _BLOCK
    if k * _BLOCK * 4 > n or logits.stride(1) != 1:
        return torch.topk(logits, k, dim=1)
    body = logits.as_strided((b, blocks, _BLOCK), (logits.stride(0), _BLOCK, 1))
    best = torch.topk(body.amax(dim=2), k, dim=1).indices
    picked = body.gather(1, best[:, :, None].expand(b, k, _BLOCK)).reshape(b, k * _BLOCK)
    values, at = torch.topk(torch.cat([picked, logits[:, blocks * _BLOCK :]], dim=1), k, dim=1)
    in_body = at < k * _BLOCK
    block = best.gather(1, torch.where(in_body, at // _BLOCK, 0))
    index = torch.where(in_body, block * _BLOCK + at % _BLOCK, at + (blocks - k) * _BLOCK)
    return values, index


def nth_largest(scores: npt.NDArray[np.floating[Any]], n: int) -> float:
    """The ``n``-th largest score, by ``top_k``'s argument in numpy (``base.top_n``): on
    a long row only the ``n`` blocks with the largest maxima, and the tail, are searched
    (an ``argpartition`` of 100k scores took 0.45 ms)."""
    size = scores.shape[0]
    blocks = size // _BLOCK
    if n * _BLOCK * 4 > size:
        return float(np.partition(scores, size - n)[size - n])
    body = scores[: blocks * _BLOCK].reshape(blocks, _BLOCK)
    best = np.argpartition(body.max(axis=1), blocks - n)[blocks - n :]
    pool = np.concatenate([body[best].ravel(), scores[blocks * _BLOCK :]])
    return float(np.partition(pool, pool.shape[0] - n)[pool.shape[0] - n])


def csr_positions(
    indptr: npt.NDArray[np.int64], rows: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The positions ``indptr[r]:indptr[r + 1]`` of each of ``rows``, concatenated, and
    each row's length: one vectorised gather of many CSR rows."""
    starts = indptr[rows]
    lengths = indptr[rows + 1] - starts
    positions = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
    positions += np.arange(positions.shape[0])
    return positions, lengths


def log_sum_exp(logits: torch.Tensor) -> torch.Tensor:
    """``torch.logsumexp(logits, dim=1)`` for finite rows, as ``max - log(max softmax)``.

    The largest softmax entry is ``1 / sum(exp(x - max))``, and torch's softmax kernel
    takes its exps faster than ``torch.exp`` (0.61 ms for eight 100k rows against 0.97
    for a row-at-a-time exp and sum, 0.82 for ``torch.logsumexp``). A row holding
    infinities or NaN goes the slow way.
    """
    import torch

    top = logits.amax(dim=1)
    out = top - torch.softmax(logits, dim=1).amax(dim=1).log()
    bad = ~torch.isfinite(out)
    if bool(bad.any()):
        out[bad] = _slow_log_sum_exp(logits[bad])
    return out


def _slow_log_sum_exp(logits: torch.Tensor) -> torch.Tensor:
    """Row by row, each clamped at ``_EXP_FLOOR`` below its maximum: a clamped term adds
    at most ``n · e⁻⁸⁰`` to a sum of at least 1, nothing in float32."""
    import torch

    top = logits.amax(dim=1)
    top = torch.where(torch.isfinite(top), top, 0.0)
    sums = torch.empty_like(top)
    buf = torch.empty(logits.shape[1], dtype=logits.dtype)
    for row in range(logits.shape[0]):
        torch.sub(logits[row], top[row], out=buf)
        buf.clamp_(min=_EXP_FLOOR)
        sums[row] = torch.exp(buf, out=buf).sum()
    return top + sums.log()

"""Implicit ALS (Hu, Koren & Volinsky 2008) item factors, for the blend's low-rank neighbours.

On short-session data (Diginetica: ~4 events a user, most items seen once or twice) a
factorisation generalises across items that never co-occur, where co-occurrence
neighbours (cosine, EASE) see nothing and the transformer has too few events to learn
item vectors from: tuned iALS is the best baseline there (bench/results/quality-up).
``_knn.ItemKNN.low_rank`` turns the factors into item-item weights the blend can use.

The solver is implicit's conjugate-gradient ALS (Takács et al. 2011), vectorised over
all rows with numpy and scipy: three CG steps per half-iteration, warm-started from the
previous factors. Confidence is ``alpha · count`` on observed pairs and 1 elsewhere, with
preference 1 on observed pairs, as ``implicit`` defines them (its defaults below: 64
factors, λ = 1, α = 10, 15 iterations). The ``implicit`` package itself is only a
benchmark dependency: its wheels bring their own thread pools (DEPENDENCIES.md).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

__all__ = ["ALS_ALPHA", "ALS_FACTORS", "ALS_ITERATIONS", "ALS_L2", "item_factors"]

ALS_FACTORS = 64
ALS_L2 = 1.0
ALS_ALPHA = 10.0
ALS_ITERATIONS = 15
CG_STEPS = 3

F32 = npt.NDArray[np.float32]


def item_factors(
    counts: sp.csr_matrix,
    seed: int,
    factors: int = ALS_FACTORS,
    l2: float = ALS_L2,
    alpha: float = ALS_ALPHA,
    iterations: int = ALS_ITERATIONS,
) -> F32:
    """Item factors (n_items, factors) of the user × item ``counts``; same seed, same
    factors."""
    rng = np.random.default_rng(seed)
    confidence = sp.csr_matrix(counts, dtype=np.float32, copy=True)
    confidence.sum_duplicates()
    confidence.data *= np.float32(alpha)
    transposed = confidence.T.tocsr()
    # Each non-zero's row, per orientation: the same for all 2 × iterations half-steps.
    by_user, by_item = _owners(confidence), _owners(transposed)
    users = (rng.standard_normal((confidence.shape[0], factors)) * 0.01).astype(np.float32)
    items = (rng.standard_normal((confidence.shape[1], factors)) * 0.01).astype(np.float32)
    for _ in range(iterations):
        users = _half_step(confidence, by_user, users, items, l2)
        items = _half_step(transposed, by_item, items, users, l2)
    return items


def _owners(matrix: sp.csr_matrix) -> npt.NDArray[np.int64]:
    return np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))


def _half_step(
    confidence: sp.csr_matrix, owner: npt.NDArray[np.int64], x: F32, y: F32, l2: float
) -> F32:
    """``x`` moved CG_STEPS conjugate-gradient steps towards the solution of, per row u,
    ``(YᵀY + Yᵀ(C_u − I)Y + λI) x_u = Yᵀ C_u p_u`` (``owner``: each non-zero's row)."""
    f = y.shape[1]
    gram = y.T @ y + np.float32(l2) * np.eye(f, dtype=np.float32)
    indptr, indices = confidence.indptr, confidence.indices
    observed = y[indices]  # (nnz, f)
    excess = confidence.data - np.float32(1.0)

    def apply(p: F32) -> F32:
        # A p = YᵀY p + Σ_i (c_ui − 1)(y_i · p) y_i, the sum as one sparse product.
        along = np.einsum("nf,nf->n", observed, p[owner]) * excess
        spread = sp.csr_matrix((along, indices, indptr), shape=confidence.shape) @ y
        out: F32 = p @ gram + spread
        return out

    residual: F32 = confidence @ y - apply(x)
    direction = residual.copy()
    norm = (residual * residual).sum(axis=1)
    for _ in range(CG_STEPS):
        step_of = apply(direction)
        step = norm / np.maximum((direction * step_of).sum(axis=1), 1e-20)
        x = x + step[:, None] * direction
        residual = residual - step[:, None] * step_of
        new_norm = (residual * residual).sum(axis=1)
        direction = residual + (new_norm / np.maximum(norm, 1e-20))[:, None] * direction
        norm = new_norm
    return x.astype(np.float32, copy=False)

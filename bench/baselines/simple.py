"""Popularity, item-kNN (cosine, recency-decayed history) and EASE: the counting and linear
baselines the literature says to beat first (quality.md §6.1)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import scipy.linalg.lapack as lapack
from threadpoolctl import threadpool_limits

from pertinent.recipes.base import Query, TrainingData

from . import Baseline, Scores, TooLarge, binary_gram, history_matrix, user_item_matrix

__all__ = ["EASE", "ItemKNN", "Popularity", "ease_weights"]

EASE_MAX_ITEMS = 40_000
"""B is items × items float32 and the fit holds about two of them: 40k items is 12.8 GB,
about half of this box (quality.md §5). Above that EASE refuses rather than swap."""

KNN_MAX_ITEMS = 40_000
"""The similarity matrix is dense for speed; the same memory wall as EASE."""


class Popularity(Baseline):
    """Everyone gets the items with the most distinct users (Personalize's own baseline)."""

    name: ClassVar[str] = "popularity"

    def fit(self, train: TrainingData) -> None:
        matrix = user_item_matrix(train, binary=True)
        self.n_items = train.n_items
        self.counts = np.asarray(matrix.sum(axis=0), dtype=np.float32).ravel()

    def score(self, queries: Sequence[Query]) -> Scores:
        return np.broadcast_to(self.counts, (len(queries), self.n_items)).copy()


class ItemKNN(Baseline):
    """Item-based kNN: cosine similarity with shrinkage, scored from the recent history.

    ``sim(i, j) = co(i, j) / (sqrt(n_i n_j) + shrink)`` on the binary user × item matrix;
    each item keeps its ``neighbors`` most similar items (0 = all). A query scores
    ``sum_a decay**a * sim(h_a, ·)`` over its newest ``history`` items (0 = all), ``a``
    steps back from the newest: quality.md §1.7 measured last 10, decay 0.8 as the best
    simple model on ML-100K under leave-last-out.
    """

    name: ClassVar[str] = "item-knn"
    SPACE: ClassVar[dict[str, tuple[Any, ...]]] = {
        "history": (10, 1, 3, 5, 20, 0),
        "decay": (0.8, 0.6, 0.9, 1.0),
        "shrink": (0.0, 20.0),
        "neighbors": (0, 100),
    }
    DEFAULT: ClassVar[dict[str, Any]] = {
        "neighbors": 0,
        "history": 10,
        "decay": 0.8,
        "shrink": 0.0,
    }

    def fit(self, train: TrainingData) -> None:
        self.n_items = n = train.n_items
        if n > KNN_MAX_ITEMS:
            raise TooLarge(f"item-knn keeps a dense {n} x {n} similarity; limit {KNN_MAX_ITEMS}")
        co = np.ascontiguousarray(binary_gram(train))
        norm = np.sqrt(np.diag(co).astype(np.float64)).astype(np.float32)
        sim = co
        sim /= np.outer(norm, norm) + np.float32(self.params["shrink"]) + np.float32(1e-12)
        np.fill_diagonal(sim, 0.0)
        k = int(self.params["neighbors"])
        if 0 < k < n:
            # Keep each source item's k most similar targets (rows are sources).
            cut = np.argpartition(-sim, k - 1, axis=1)[:, :k]
            kept = np.zeros_like(sim)
            rows = np.arange(n)[:, None]
            kept[rows, cut] = sim[rows, cut]
            sim = kept
        self.sim = sim

    def score(self, queries: Sequence[Query]) -> Scores:
        weights = history_matrix(
            queries,
            self.n_items,
            binary=False,
            last=int(self.params["history"]),
            decay=float(self.params["decay"]),
        )
        out: Scores = np.asarray(weights @ self.sim, dtype=np.float32)
        return out


def ease_weights(gram: npt.NDArray[np.float32], lam: float) -> npt.NDArray[np.float32]:
    """EASE's closed form (Steck 2019): ``P = (G + λI)^-1``, ``B = I - P / diag(P)``, i.e.
    ``B_ij = -P_ij / P_jj`` off the diagonal and 0 on it.

    float32 Cholesky (LAPACK potrf + potri) in place: 2-6x faster than ``np.linalg.inv``
    and half the memory of float64 (quality.md §2); ``gram`` is overwritten.
    """
    n = gram.shape[0]
    gram[np.diag_indices(n)] += np.float32(lam)
    # One BLAS thread: OpenBLAS's threaded potrf/potri ran 10-15x *slower* than a single
    # thread whenever another process held a core (measured on this shared 2-core box).
    with threadpool_limits(1, "blas"):
        chol, info = lapack.spotrf(gram, lower=False, overwrite_a=True, clean=False)
        if info != 0:
            raise np.linalg.LinAlgError(f"EASE: G + {lam} I is not positive definite ({info})")
        inv, info = lapack.spotri(chol, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE: potri failed (info {info})")
    # potri fills the upper triangle only; mirror it.
    upper = np.triu(inv)
    p = upper + np.triu(inv, 1).T
    diag = np.diag(p).copy()
    b: npt.NDArray[np.float32] = (p / -diag[None, :]).astype(np.float32, copy=False)
    np.fill_diagonal(b, 0.0)
    return b


class EASE(Baseline):
    """Embarrassingly Shallow Autoencoder: one ridge regression of every item on all others."""

    name: ClassVar[str] = "ease"
    SPACE: ClassVar[dict[str, tuple[Any, ...]]] = {
        "l2": (100.0, 1.0, 3.0, 10.0, 30.0, 50.0, 200.0, 300.0, 500.0, 1000.0, 3000.0, 1e4),
    }
    DEFAULT: ClassVar[dict[str, Any]] = {"l2": 100.0}

    def fit(self, train: TrainingData) -> None:
        self.n_items = n = train.n_items
        if n > EASE_MAX_ITEMS:
            raise TooLarge(f"EASE needs a dense {n} x {n} inverse; limit {EASE_MAX_ITEMS} items")
        gram = binary_gram(train)
        self.b = ease_weights(gram, float(self.params["l2"]))

    def score(self, queries: Sequence[Query]) -> Scores:
        x = history_matrix(queries, self.n_items, binary=True)
        out: Scores = np.asarray(x @ self.b, dtype=np.float32)
        return out

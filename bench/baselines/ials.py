"""iALS (Hu, Koren & Volinsky 2008) through ``implicit``: the matrix-factorisation baseline
that Rendle et al. 2022 found competitive with everything newer once tuned."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from threadpoolctl import threadpool_limits

from pertinent.recipes.base import Query, TrainingData

from . import Baseline, Scores, history_matrix, user_item_matrix

__all__ = ["IALS"]


class IALS(Baseline):
    """Implicit ALS; a query's user vector is folded in from its history.

    Fold-in (``recalculate_user``, implicit's own solver) instead of the trained user row:
    it is the exact least-squares user vector for the final item factors, it serves users
    the model never saw (the Personalize protocol's test users), and both protocols score
    every query the same way. Repeats count: confidence is ``alpha * count``, as implicit
    defines it.
    """

    name: ClassVar[str] = "ials"
    deterministic: ClassVar[bool] = False
    SPACE: ClassVar[dict[str, tuple[Any, ...]]] = {
        "regularization": (1.0, 0.1, 10.0, 100.0),
        "alpha": (10.0, 1.0, 3.0, 30.0, 100.0),
        "factors": (64, 128, 256),
        "iterations": (15, 30),
    }
    DEFAULT: ClassVar[dict[str, Any]] = {
        "factors": 64,
        "regularization": 1.0,
        "alpha": 10.0,
        "iterations": 15,
    }

    def fit(self, train: TrainingData) -> None:
        from implicit.cpu.als import AlternatingLeastSquares

        self.n_items = train.n_items
        # implicit parallelises itself and warns (at construction) that a multi-threaded
        # BLAS underneath oversubscribes the cores (DEPENDENCIES.md); BLAS is limited only
        # around its calls, so the rest of the process keeps both cores.
        with threadpool_limits(1, "blas"):
            self.model = AlternatingLeastSquares(
                factors=int(self.params["factors"]),
                regularization=float(self.params["regularization"]),
                alpha=float(self.params["alpha"]),
                iterations=int(self.params["iterations"]),
                random_state=self.seed,
                num_threads=0,
            )
            self.model.fit(user_item_matrix(train, binary=False), show_progress=False)

    def score(self, queries: Sequence[Query]) -> Scores:
        hist = history_matrix(queries, self.n_items, binary=False)
        with threadpool_limits(1, "blas"):
            users = self.model.recalculate_user(np.arange(len(queries)), hist)
        users = np.atleast_2d(users)
        out: Scores = np.asarray(users @ self.model.item_factors.T, dtype=np.float32)
        return out

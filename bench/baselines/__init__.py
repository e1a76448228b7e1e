"""Tuned baselines for the quality benchmark (``bench/quality.py``).

Every baseline is a class with ``fit(train: TrainingData)`` and
``score(queries) -> ndarray (len(queries), n_items)``: higher is better, equal scores are
ties. Baselines never remove the query's own history from the scores: seen-item removal
is the evaluator's job (``evaluate_loo(exclude_seen=...)`` and the Personalize protocol
runs with and without it), so every model is filtered the same way.

Hyperparameters are keyword arguments of the constructor; ``SPACE`` lists the values the
tuner may try, most important hyperparameter first, and ``DEFAULT`` the point tried
first (the literature's or quality.md's setting); every baseline gets the same budget of
points (``coordinate_search``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from pertinent.recipes.base import Query, TrainingData

__all__ = [
    "Baseline",
    "TooLarge",
    "binary_gram",
    "coordinate_search",
    "gram_matrix",
    "history_matrix",
    "user_item_matrix",
]

Scores = npt.NDArray[np.float32]


class TooLarge(RuntimeError):
    """The baseline refuses this data set (e.g. EASE's dense item × item matrix)."""


class Baseline(ABC):
    """A model the benchmark compares ours against."""

    name: ClassVar[str]
    SPACE: ClassVar[dict[str, tuple[Any, ...]]] = {}
    DEFAULT: ClassVar[dict[str, Any]] = {}
    # A deterministic baseline gives the same scores for every seed: fit once, and only
    # the evaluator's tie-break RNG varies between seeds.
    deterministic: ClassVar[bool] = True

    def __init__(self, seed: int = 0, **params: Any) -> None:
        unknown = set(params) - set(self.SPACE)
        if unknown:
            raise TypeError(f"{self.name}: unknown hyperparameters {sorted(unknown)}")
        self.seed = seed
        self.params: dict[str, Any] = {**self.DEFAULT, **params}
        self.n_items = 0

    @abstractmethod
    def fit(self, train: TrainingData) -> None: ...

    @abstractmethod
    def score(self, queries: Sequence[Query]) -> Scores: ...


def coordinate_search(
    cls: type[Baseline], evaluate: Callable[[dict[str, Any]], float], budget: int
) -> list[tuple[dict[str, Any], float]]:
    """Greedy coordinate search over ``cls.SPACE``, at most ``budget`` evaluations.

    Starts from ``DEFAULT``; for each hyperparameter in ``SPACE`` order (most important
    first) it tries every other value with the rest fixed at the best so far, and keeps
    the best. With a dozen points this finds better settings than random search over a
    4-d grid, and every baseline gets the same number of points. Returns every
    (point, score) evaluated, in order; the best is ``max(..., key=score)``.
    """
    best = {**{n: values[0] for n, values in cls.SPACE.items()}, **cls.DEFAULT}
    trials = [(best, evaluate(best))] if budget > 0 else []
    for name, values in cls.SPACE.items():
        base = max(trials, key=lambda t: t[1])[0]
        for value in values:
            if value == base[name]:
                continue
            if len(trials) >= budget:
                return trials
            point = {**base, name: value}
            trials.append((point, evaluate(point)))
    return trials


def user_item_matrix(train: TrainingData, *, binary: bool = True) -> sp.csr_matrix:
    """users × items CSR of the training interactions: 1 per pair, or the repeat count."""
    inter = train.interactions
    data = np.ones(len(inter), dtype=np.float32)
    matrix = sp.csr_matrix(
        (data, (inter.user.astype(np.int64), inter.item.astype(np.int64))),
        shape=(train.n_users, train.n_items),
    )
    matrix.sum_duplicates()
    if binary:
        matrix.data[:] = 1.0
    return matrix


_GRAM_CACHE: list[tuple[Any, npt.NDArray[np.float32]]] = []


def gram_matrix(x: sp.csr_matrix, block_bytes: int = 256 << 20) -> npt.NDArray[np.float32]:
    """Dense ``XᵀX`` (items × items, float32, Fortran order for LAPACK).

    A sparse × sparse product whose result is nearly dense is ~50x slower than the
    alternatives (100 s against 2-9 s at 10k items). Two ways, whichever costs less by a
    rough estimate: dense BLAS over blocks of user rows (``2 U I²`` flops at ~50 GFLOP/s)
    or sparse × dense column blocks (``nnz · I`` at ~0.5 GFLOP/s, single-threaded).
    """
    n_users, n_items = x.shape
    out = np.zeros((n_items, n_items), dtype=np.float32, order="F")
    dense_cost = 2.0 * n_users * n_items * n_items / 50e9
    sparse_cost = float(x.nnz) * n_items / 0.5e9
    if dense_cost <= sparse_cost:
        step = max(1, block_bytes // max(4 * n_items, 1))
        for start in range(0, n_users, step):
            block = x[start : start + step].toarray()
            out += block.T @ block
    else:
        xt = x.T.tocsr()
        step = max(1, min(n_items, block_bytes // max(4 * n_users, 1)))
        for start in range(0, n_items, step):
            stop = min(start + step, n_items)
            out[:, start:stop] = xt @ x[:, start:stop].toarray()
    return out


def binary_gram(train: TrainingData) -> npt.NDArray[np.float32]:
    """``gram_matrix`` of the binary user × item matrix of ``train``, as a fresh copy.

    The last result is cached (item-kNN and EASE share it, and tuning fits the same
    training split a dozen times); the entry holds the interactions object, so its id
    can't be reused by another one while cached.
    """
    inter = train.interactions
    for held, gram in _GRAM_CACHE:
        if held is inter:
            return gram.copy(order="F")
    gram = gram_matrix(user_item_matrix(train, binary=True))
    _GRAM_CACHE[:] = [(inter, gram)]
    return gram.copy(order="F")


def history_matrix(
    queries: Sequence[Query],
    n_items: int,
    *,
    binary: bool = True,
    last: int = 0,
    decay: float = 1.0,
) -> sp.csr_matrix:
    """queries × items CSR of the query histories.

    ``last`` > 0 keeps only the newest ``last`` items; ``decay`` < 1 weighs the item ``a``
    steps before the newest by ``decay ** a`` (repeats add up). Items outside the
    catalogue are dropped.
    """
    rows: list[npt.NDArray[np.int64]] = []
    cols: list[npt.NDArray[np.int64]] = []
    vals: list[npt.NDArray[np.float32]] = []
    for r, q in enumerate(queries):
        hist = np.asarray(q.history, dtype=np.int64)
        if last > 0:
            hist = hist[-last:]
        age = np.arange(hist.shape[0] - 1, -1, -1, dtype=np.float64)
        weight = np.power(decay, age).astype(np.float32)
        ok = (hist >= 0) & (hist < n_items)
        rows.append(np.full(int(ok.sum()), r, dtype=np.int64))
        cols.append(hist[ok])
        vals.append(weight[ok])
    matrix = sp.csr_matrix(
        (
            np.concatenate(vals) if vals else np.empty(0, dtype=np.float32),
            (
                np.concatenate(rows) if rows else np.empty(0, dtype=np.int64),
                np.concatenate(cols) if cols else np.empty(0, dtype=np.int64),
            ),
        ),
        shape=(len(queries), n_items),
    )
    matrix.sum_duplicates()
    if binary:
        matrix.data[:] = 1.0
    return matrix

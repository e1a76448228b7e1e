"""Item-kNN on co-occurrence: a cheap second opinion blended into the sequence model.

On small data sets a transformer's ranking of the long tail is noisy, while the
"users who had these also had" signal of a decayed item-kNN (the best simple model on
MovieLens-100K under leave-last-out, spec/quality.md §1.7) is estimated well; the two
err differently, so a blend beats both. The model adds ``β · knn(history)`` to its
logits, with ``β`` chosen on the internal validation split after training (``β = 0``
when the blend doesn't help, as on large data where the transformer knows better).

``knn(history) = Σ_a decay^a · cos(h_a, ·)`` over the newest ``HISTORY`` items (``a``
steps back from the newest), with cosine similarity on the binary user × item matrix,
each item keeping its ``NEIGHBORS`` most similar items (SIMS's blocked co-occurrence).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from pertinent.recipes.sims import _neighbors

__all__ = ["DECAY", "HISTORY", "NEIGHBORS", "ItemKNN"]

NEIGHBORS = 100
HISTORY = 10
DECAY = 0.8

F32 = npt.NDArray[np.float32]


class ItemKNN:
    """Top-``NEIGHBORS`` cosine neighbours of every item, as a CSR matrix."""

    def __init__(self, matrix: sp.csr_matrix) -> None:
        self.matrix = matrix.astype(np.float32).tocsr()
        self.n_items = int(matrix.shape[0])
        self._decay = DECAY ** np.arange(HISTORY, dtype=np.float32)

    @classmethod
    def fit(
        cls,
        user: npt.NDArray[np.int64],
        item: npt.NDArray[np.int64],
        rows: npt.NDArray[np.bool_],
        n_users: int,
        n_items: int,
    ) -> ItemKNN:
        """From the interaction ``rows`` that train (binary: repeats count once)."""
        keys = np.unique(user[rows] * n_items + item[rows])
        users, items = keys // n_items, keys % n_items
        ones = np.ones(keys.shape[0], dtype=np.int32)
        x = sp.csr_matrix((ones, (users, items)), shape=(n_users, n_items))
        indptr, neighbors, scores = _neighbors(
            x, np.ones(n_items, dtype=bool), discount=0.5, min_count=1, max_neighbors=NEIGHBORS
        )
        # SIMS scores co(i, j) / sqrt(n_j); dividing by sqrt(n_i) makes them cosines,
        # comparable across source items, which the history sum needs.
        popularity = np.bincount(items, minlength=n_items).astype(np.float32)
        source = np.repeat(np.arange(n_items), np.diff(indptr))
        cosine = scores / np.sqrt(np.maximum(popularity[source], 1.0))
        return cls(sp.csr_matrix((cosine, neighbors, indptr), shape=(n_items, n_items)))

    def scores(self, histories: Sequence[npt.NDArray[Any]]) -> F32:
        """(len(histories), n_items) kNN scores of each history (items outside ignored)."""
        rows: list[npt.NDArray[np.int64]] = []
        cols: list[npt.NDArray[np.int64]] = []
        vals: list[F32] = []
        for r, history in enumerate(histories):
            h = np.asarray(history, dtype=np.int64)
            h = h[(h >= 0) & (h < self.n_items)][-HISTORY:][::-1]  # newest first
            rows.append(np.full(h.shape[0], r, dtype=np.int64))
            cols.append(h)
            vals.append(self._decay[: h.shape[0]])
        weights = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(len(histories), self.n_items),
        )  # duplicates (repeats) add up
        out: F32 = np.asarray((weights @ self.matrix).toarray(), dtype=np.float32)
        return out

    def contributions(
        self, histories: Sequence[npt.NDArray[Any]], weight: float, width: int
    ) -> tuple[npt.NDArray[np.int64], F32]:
        """``weight · scores(histories)`` as its non-zero terms: positions
        ``row · width + item`` in a flattened (len(histories), width) block, and values
        (repeats to be summed). A request touches at most ``HISTORY × NEIGHBORS`` items,
        far fewer than a catalogue-wide row."""
        m = self.matrix
        owners: list[npt.NDArray[np.int64]] = []
        heads: list[npt.NDArray[np.int64]] = []
        for r, history in enumerate(histories):
            h = np.asarray(history, dtype=np.int64)
            h = h[(h >= 0) & (h < self.n_items)][-HISTORY:][::-1]  # newest first
            heads.append(h)
            owners.append(np.full(h.shape[0], r, dtype=np.int64))
        h = np.concatenate(heads) if heads else np.empty(0, dtype=np.int64)
        if h.shape[0] == 0 or weight == 0.0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        age = np.concatenate([np.arange(x.shape[0]) for x in heads])
        starts, ends = m.indptr[h], m.indptr[h + 1]
        lengths = ends - starts
        take = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
        scale = np.repeat(self._decay[age] * np.float32(weight), lengths)
        flat = np.repeat(np.concatenate(owners) * width, lengths) + m.indices[take]
        values: F32 = m.data[take] * scale
        return flat, values

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        m = self.matrix
        return {"knn_indptr": m.indptr, "knn_indices": m.indices, "knn_data": m.data}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, npt.NDArray[Any]], n_items: int) -> ItemKNN:
        matrix = sp.csr_matrix(
            (arrays["knn_data"], arrays["knn_indices"], arrays["knn_indptr"]),
            shape=(n_items, n_items),
        )
        return cls(matrix)

"""The current visit's item categories: a second opinion on where a session is heading.

Shoppers often hunt inside one category for a visit. A sequence model can learn that
from its inputs' metadata, but on the generated data it did not: split by the held-out
event, user-personalization scored 0.86x the history-only Bayes filter's NDCG@10 when
the target continued a focused session (one subcategory), and 0.99-1.01x everywhere else
(bench/oracle.py's filter, seed 0). This term states the focus outright.

For each categorical metadata value ``c`` of the items (CATEGORY_L1, CATEGORY_L2,
GENRES, ... all of them: the encoder's categorical codes; numeric bins are not
categories), ``share_c`` is the fraction of the visit's events whose item has ``c``
(a visit: the history's events after its last gap over ``VISIT_GAP``; consecutive
repeats, a cart after its view, count once), and ``P(c)`` the fraction of training
interactions whose item has it. Item ``j`` gets

    lift_j = log(1 + Σ_{c ∋ j} share_c / (EPSILON · P(c)))

how far the visit over-represents ``j``'s categories against the catalogue's traffic.
The model adds ``γ · lift`` to its logits, ``γ`` chosen on the validation split
(``γ = 0``: no term). The model's own bias already carries each item's popularity, so
only the ratio enters (a product of experts); items outside the visit's categories get
0, which leaves the softmax unchanged where the term is silent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from pertinent.recipes._features import EncodedRows
from pertinent.recipes._knn import HISTORY, VISIT_GAP

__all__ = ["EPSILON", "WEIGHTS", "SessionAffinity"]

# The floor of the ratio: a category at EPSILON x its traffic share doubles an item's odds
# (post hoc on the generated LOO split, EPSILON 0.1 / 0.3 / 1.0 at the best γ: NDCG@10
# 0.2657 / 0.2654 / 0.2654, so its value hardly matters).
EPSILON = 0.3
# The γ grid the validation split chooses from.
WEIGHTS = (0.0, 0.125, 0.25, 0.5, 1.0)

F32 = npt.NDArray[np.float32]


class SessionAffinity:
    """``item_codes``: the (n_items, n_codes) 0/1 matrix of each item's categorical
    values; ``inverse_share``: ``1 / (EPSILON · P(c))`` per code (0 where no traffic)."""

    def __init__(self, item_codes: sp.csr_matrix, inverse_share: F32) -> None:
        self.item_codes = item_codes.astype(np.float32).tocsr()
        self.code_items = self.item_codes.T.tocsr()
        self.inverse_share = np.asarray(inverse_share, dtype=np.float32)
        self.n_items = int(item_codes.shape[0])

    @classmethod
    def fit(
        cls, items: EncodedRows, n_categorical: int, item: npt.NDArray[np.int64]
    ) -> SessionAffinity | None:
        """From the items' encoded metadata (codes below ``n_categorical`` are
        categorical values) and the training interactions' items; None when the items
        have no categorical metadata."""
        n_items = items.n_rows
        owner = np.repeat(np.arange(n_items, dtype=np.int64), np.diff(items.offsets))
        keep = items.codes < n_categorical
        if n_categorical == 0 or not keep.any():
            return None
        ones = np.ones(int(keep.sum()), dtype=np.float32)
        codes = sp.csr_matrix(
            (ones, (owner[keep], items.codes[keep])), shape=(n_items, n_categorical)
        )
        codes.data[:] = 1.0  # a value listed twice is still one value
        traffic = np.bincount(item, minlength=n_items).astype(np.float64)
        per_code = np.asarray(codes.T @ traffic).ravel() / max(float(traffic.sum()), 1.0)
        inverse = np.where(per_code > 0, 1.0 / (EPSILON * np.maximum(per_code, 1e-300)), 0.0)
        return cls(codes, inverse.astype(np.float32))

    def lift(
        self,
        histories: Sequence[npt.NDArray[Any]],
        times: Sequence[npt.NDArray[np.int64] | None],
    ) -> sp.csr_matrix:
        """(len(histories), n_items) sparse ``lift``: non-zero on the items sharing a
        category with the visit. Without times, a visit is the newest ``HISTORY`` events."""
        rows: list[npt.NDArray[np.int64]] = []
        cols: list[npt.NDArray[np.int64]] = []
        for k, (history, when) in enumerate(zip(histories, times, strict=True)):
            visit = _visit(np.asarray(history, dtype=np.int64), when, self.n_items)
            rows.append(np.full(visit.shape[0], k, dtype=np.int64))
            cols.append(visit)
        events = sp.csr_matrix(
            (
                np.ones(sum(r.shape[0] for r in rows), dtype=np.float32),
                (np.concatenate(rows) if rows else [], np.concatenate(cols) if cols else []),
            ),
            shape=(len(histories), self.n_items),
        )
        share = (events @ self.item_codes).tocsr()  # events per code
        counts = np.asarray(events.sum(axis=1)).ravel()
        share = sp.diags(1.0 / np.maximum(counts, 1.0)).astype(np.float32) @ share
        share = share @ sp.diags(self.inverse_share)
        out = (share @ self.code_items).tocsr()
        np.log1p(out.data, out=out.data)
        return out

    def contributions(
        self,
        histories: Sequence[npt.NDArray[Any]],
        times: Sequence[npt.NDArray[np.int64] | None],
        weight: float,
        width: int,
    ) -> tuple[npt.NDArray[np.int64], F32]:
        """``weight · lift`` as positions ``row · width + item`` of a flattened
        (len(histories), width) block and values, like ``ItemKNN.contributions``."""
        if weight == 0.0 or not histories:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        lift = self.lift(histories, times).tocoo()
        flat = lift.row.astype(np.int64) * width + lift.col.astype(np.int64)
        return flat, (lift.data * np.float32(weight)).astype(np.float32)

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        m = self.item_codes
        return {
            "affinity_indptr": m.indptr,
            "affinity_indices": m.indices,
            "affinity_inverse_share": self.inverse_share,
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, npt.NDArray[Any]]) -> SessionAffinity | None:
        if "affinity_indptr" not in arrays:
            return None
        indptr, indices = arrays["affinity_indptr"], arrays["affinity_indices"]
        inverse = arrays["affinity_inverse_share"]
        ones = np.ones(indices.shape[0], dtype=np.float32)
        shape = (indptr.shape[0] - 1, inverse.shape[0])
        return cls(sp.csr_matrix((ones, indices, indptr), shape=shape), inverse)


def _visit(
    history: npt.NDArray[np.int64], times: npt.NDArray[np.int64] | None, n_items: int
) -> npt.NDArray[np.int64]:
    """The history's current visit, consecutive repeats once, items the model knows."""
    if times is not None and times.shape[0] == history.shape[0] and history.shape[0]:
        breaks = np.flatnonzero(np.diff(times) > VISIT_GAP)
        history = history[breaks[-1] + 1 :] if breaks.shape[0] else history
    else:
        history = history[-HISTORY:]
    if history.shape[0] > 1:
        history = history[np.r_[True, history[1:] != history[:-1]]]
    known: npt.NDArray[np.int64] = history[(history >= 0) & (history < n_items)]
    return known

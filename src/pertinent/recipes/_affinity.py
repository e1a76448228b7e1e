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
from pertinent.recipes._scoring import csr_positions

__all__ = ["EPSILON", "MAX_ITEMS", "WEIGHTS", "SessionAffinity"]

# The floor of the ratio: a category at EPSILON x its traffic share doubles an item's odds
# (post hoc on the generated LOO split, EPSILON 0.1 / 0.3 / 1.0 at the best γ: NDCG@10
# 0.2657 / 0.2654 / 0.2654, so its value hardly matters).
EPSILON = 0.3
# Catalogues above this size get no term. A request spreads the lift over the items of
# its visit's categories, a tenth of a 100k-item shop: in-process on the 100k-item bench
# model, 1 / 2 / 4 / 8 queries took 1.94 / 2.23 / 2.81 / 4.29 ms with it against 1.70 /
# 1.91 / 2.34 / 3.42 without (interleaved), 14-25 %, which that benchmark's throughput
# cannot spare; at 16k items it touches ~1.5k items a request. Grouping the item table by
# value set (contiguous adds) would lift the cap.
MAX_ITEMS = 16_384
# The γ grid the validation split chooses from.
WEIGHTS = (0.0, 0.125, 0.25, 0.5, 1.0)

F32 = npt.NDArray[np.float32]


class SessionAffinity:
    """``item_codes``: the (n_items, n_codes) 0/1 matrix of each item's categorical
    values; ``inverse_share``: ``1 / (EPSILON · P(c))`` per code (0 where no traffic).

    Items with the same set of values (a *signature*: CATEGORY_L1 and _L2 together, say)
    always share their lift, so a request computes one lift per signature and spreads
    the non-zero ones over their items: the work is the items in the visit's categories.
    """

    def __init__(self, item_codes: sp.csr_matrix, inverse_share: F32) -> None:
        codes = item_codes.astype(np.float32).tocsr()
        codes.sort_indices()
        self.item_codes = codes
        self.inverse_share = np.asarray(inverse_share, dtype=np.float32)
        self.n_items = int(codes.shape[0])
        # Signatures: the distinct rows of the code matrix, padded with -1 to compare.
        lengths = np.diff(codes.indptr)
        padded = np.full((self.n_items, max(int(lengths.max(initial=0)), 1)), -1, np.int64)
        col = np.arange(codes.indices.shape[0]) - np.repeat(codes.indptr[:-1], lengths)
        padded[np.repeat(np.arange(self.n_items), lengths), col] = codes.indices
        unique, signature = np.unique(padded, axis=0, return_inverse=True)
        signature = signature.ravel()
        held = unique >= 0
        sig_rows = np.repeat(np.arange(unique.shape[0]), held.sum(axis=1))
        ones = np.ones(sig_rows.shape[0], dtype=np.float32)
        shape = (unique.shape[0], int(codes.shape[1]))
        self.sig_codes = sp.csr_matrix((ones, (sig_rows, unique[held])), shape=shape)
        self.sig_items = np.argsort(signature, kind="stable").astype(np.int64)
        self.sig_offsets = np.zeros(unique.shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(signature, minlength=unique.shape[0]), out=self.sig_offsets[1:])

    @classmethod
    def fit(
        cls, items: EncodedRows, n_categorical: int, item: npt.NDArray[np.int64]
    ) -> SessionAffinity | None:
        """From the items' encoded metadata (codes below ``n_categorical`` are
        categorical values) and the training interactions' items; None when the items
        have no categorical metadata or are more than ``MAX_ITEMS``."""
        n_items = items.n_rows
        owner = np.repeat(np.arange(n_items, dtype=np.int64), np.diff(items.offsets))
        keep = items.codes < n_categorical
        if n_categorical == 0 or not keep.any() or n_items > MAX_ITEMS:
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

    def _lifts(
        self,
        histories: Sequence[npt.NDArray[Any]],
        times: Sequence[npt.NDArray[np.int64] | None],
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], F32]:
        """The non-zero lifts per signature: (signature, query row, value) arrays.
        Without times, a visit is the newest ``HISTORY`` events."""
        visits = [
            _visit(np.asarray(history, dtype=np.int64), when, self.n_items)
            for history, when in zip(histories, times, strict=True)
        ]
        lengths = np.asarray([v.shape[0] for v in visits], dtype=np.int64)
        if not lengths.any():
            empty = np.empty(0, dtype=np.int64)
            return empty, empty, np.empty(0, dtype=np.float32)
        # share_c / (EPSILON P(c)) per query and code, then one lift per signature.
        events = np.concatenate(visits)
        positions, per_event = csr_positions(self.item_codes.indptr, events)
        owner = np.repeat(np.repeat(np.arange(len(visits)), lengths), per_event)
        codes = self.item_codes.indices[positions].astype(np.int64)
        n_codes = self.inverse_share.shape[0]
        counts = np.bincount(owner * n_codes + codes, minlength=len(visits) * n_codes)
        scale = 1.0 / np.maximum(lengths, 1).astype(np.float32)
        weight = counts.reshape(len(visits), n_codes).astype(np.float32)
        weight *= self.inverse_share[None, :]
        weight *= scale[:, None]
        lift = np.log1p(np.asarray(self.sig_codes @ weight.T, dtype=np.float32))  # (sigs, B)
        sig, row = np.nonzero(lift)
        return sig, row, lift[sig, row]

    def lift(
        self,
        histories: Sequence[npt.NDArray[Any]],
        times: Sequence[npt.NDArray[np.int64] | None],
    ) -> sp.csr_matrix:
        """(len(histories), n_items) sparse ``lift``: non-zero on the items sharing a
        category with the visit."""
        flat, values = self.contributions(histories, times, 1.0, self.n_items)
        rows, items = np.divmod(flat, self.n_items)
        return sp.csr_matrix((values, (rows, items)), shape=(len(histories), self.n_items))

    def contributions(
        self,
        histories: Sequence[npt.NDArray[Any]],
        times: Sequence[npt.NDArray[np.int64] | None],
        weight: float,
        width: int,
    ) -> tuple[npt.NDArray[np.int64], F32]:
        """``weight · lift`` as positions ``row · width + item`` of a flattened
        (len(histories), width) block and values, like ``ItemKNN.contributions``: each
        signature's lift spread over its items."""
        if weight == 0.0 or not histories:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        sig, row, lift = self._lifts(histories, times)
        positions, per_sig = csr_positions(self.sig_offsets, sig)
        flat = self.sig_items[positions]
        flat += np.repeat(row * width, per_sig)
        return flat, np.repeat(lift * np.float32(weight), per_sig)

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
        first = np.ones(history.shape[0], dtype=np.bool_)
        np.not_equal(history[1:], history[:-1], out=first[1:])
        history = history[first]
    known: npt.NDArray[np.int64] = history[(history >= 0) & (history < n_items)]
    return known

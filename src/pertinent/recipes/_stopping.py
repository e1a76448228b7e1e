"""Early stopping that waits for a network to learn something before it loses patience.

A narrow network (``hidden_dimension=32`` on Diginetica: ~4 events per user, most items
seen once or twice) can sit at the noise floor of validation NDCG@10 (0.001-0.003) for
about twenty epochs before it starts to rise; patience 8 stopped it at epoch 12 with a
useless model (leave-last-out NDCG@10 0.0033, against 0.0325 when let run). Such epochs
carry no evidence that training is over, so the patience counter starts only once the
network beats the validation NDCG@10 of ranking by training popularity, which a network
that has learnt anything does within its first epochs. A network that never does trains
to its epoch cap (and the recipe's time cap).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

__all__ = ["Patience", "popularity_ndcg"]


def popularity_ndcg(
    popularity: npt.NDArray[np.float32],
    target: npt.NDArray[np.int64],
    seen: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]],
) -> float:
    """Validation NDCG@10 of ranking every item by ``popularity`` (the row's ``seen``
    items, CSR, removed; ties in the target's favour, as ``evaluate`` counts them)."""
    if target.shape[0] == 0:
        return 0.0
    pop = popularity.astype(np.float64)
    ordered = np.sort(pop)
    mine = pop[target]
    above = pop.shape[0] - np.searchsorted(ordered, mine, side="right")
    offsets, items = seen
    owner = np.repeat(np.arange(target.shape[0]), np.diff(offsets))
    # A seen list may repeat an item (a history's repeats); each item is removed once.
    n_items = pop.shape[0]
    keys = np.unique(owner * n_items + items)
    owner, items = keys // n_items, keys % n_items
    seen_above = np.bincount(owner, weights=pop[items] > mine[owner], minlength=target.shape[0])
    rank = above - seen_above.astype(np.int64)
    gain = np.where(rank < 10, 1.0 / np.log2(rank + 2.0), 0.0)
    return float(gain.mean())


class Patience:
    """Counts epochs without a new best validation score once the best has passed
    ``floor``; ``update`` says whether the epoch is the new best and whether to stop."""

    def __init__(self, patience: int, floor: float) -> None:
        self.patience = patience
        self.floor = floor
        self.best = -np.inf
        self.bad = 0

    @classmethod
    def above_popularity(
        cls,
        patience: int,
        popularity: npt.NDArray[np.float32],
        target: npt.NDArray[np.int64],
        seen: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]],
        log: Callable[[str], None] | None,
    ) -> Patience:
        """Patience whose floor is ``popularity_ndcg`` of these validation rows."""
        floor = popularity_ndcg(popularity, target, seen)
        if log is not None:
            log(f"popularity val ndcg@10 {floor:.4f} (patience counts above it)")
        return cls(patience, floor)

    def update(self, score: float) -> tuple[bool, bool]:
        if score > self.best:
            self.best, self.bad = score, 0
            return True, False
        if self.best > self.floor:
            self.bad += 1
        return False, self.bad >= self.patience

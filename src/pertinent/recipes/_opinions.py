"""The second opinions added to the network's logits, and their weights chosen on the
validation split after training: the visit-category term (``_affinity``, weight γ) and
the neighbour model (``_knn``, weight β), in that order, β with γ's term in place.

Both are judged by ``sequential.evaluate``: full ranking of the held-out validation
targets, the user's seen items removed, one NDCG@10 per weight of the grid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from pertinent.recipes._affinity import WEIGHTS as AFFINITY_WEIGHTS
from pertinent.recipes._affinity import SessionAffinity
from pertinent.recipes._knn import Builder, ItemKNN, choose_blend, smoothed

if TYPE_CHECKING:
    import torch

    from pertinent.recipes.sequential import SequentialNet, TorchRows, TrainingSet

__all__ = ["BLEND_WEIGHTS", "Validation", "choose_affinity", "choose_knn"]

# Blend weights of the item-kNN component tried on the validation split (0: none). The
# top ones leave the network little more than tie-breaking: on short-session data
# (Diginetica, ~4 events a user) validation NDCG still rose at 16.
BLEND_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0)

Scores = Callable[[int, int], npt.NDArray[np.float32]]  # validation rows start:stop


@dataclass
class Validation:
    """The trained network and its validation queries: each one's input history and
    times (the user's rows before the held-out one)."""

    net: SequentialNet
    tset: TrainingSet
    device: torch.device
    histories: list[npt.NDArray[np.int64]]
    times: list[npt.NDArray[np.int64]]
    users: TorchRows | None
    context: TorchRows | None

    @classmethod
    def of(
        cls,
        net: SequentialNet,
        tset: TrainingSet,
        user: npt.NDArray[np.int64],
        item: npt.NDArray[np.int64],
        timestamp: npt.NDArray[np.int64],
        device: torch.device,
    ) -> Validation:
        from pertinent.recipes.sequential import TorchRows

        starts = np.searchsorted(user, tset.val_users, side="left").tolist()
        ends = tset.val_rows.tolist()
        return cls(
            net,
            tset,
            device,
            [item[a:b] for a, b in zip(starts, ends, strict=True)],
            [timestamp[a:b] for a, b in zip(starts, ends, strict=True)],
            None if tset.users is None else TorchRows.of(tset.users, device),
            None if tset.context is None else TorchRows.of(tset.context, device),
        )

    def ndcg(
        self, extra: Scores, weights: tuple[float, ...], fixed: Scores | None = None
    ) -> npt.NDArray[np.float64]:
        """Validation NDCG@10 of ``logits + fixed + w · extra`` for each ``w``."""
        from pertinent.recipes.sequential import evaluate

        return np.asarray(
            evaluate(
                self.net,
                self.tset,
                self.device,
                self.users,
                self.context,
                extra=extra,
                betas=weights,
                fixed=fixed,
            )
        )


def choose_affinity(
    val: Validation, affinity: SessionAffinity, log: bool, gamma: float | None = None
) -> tuple[float, Scores | None]:
    """γ with the best smoothed validation NDCG@10, on the network alone (or the given
    ``gamma``), and the term's validation scores at that γ (None when γ is 0), which the
    kNN blend is then chosen with."""

    def lift(a: int, b: int) -> npt.NDArray[np.float32]:
        out: npt.NDArray[np.float32] = affinity.lift(val.histories[a:b], val.times[a:b]).toarray()
        return out

    if gamma is not None:
        fixed = float(gamma)
        return fixed, (lambda a, b: np.float32(fixed) * lift(a, b)) if fixed > 0 else None
    curve = smoothed(val.ndcg(lift, AFFINITY_WEIGHTS))
    gamma = float(AFFINITY_WEIGHTS[int(np.argmax(curve))])
    if log:
        rounded = np.round(curve, 4).tolist()
        print("affinity (smoothed)", dict(zip(AFFINITY_WEIGHTS, rounded, strict=True)))
    if gamma <= 0:
        return 0.0, None
    return gamma, lambda a, b: np.float32(gamma) * lift(a, b)


def choose_knn(
    val: Validation,
    models: list[tuple[str, Builder]],
    rows: tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]],
    log: bool,
    fixed: Scores | None = None,
) -> tuple[ItemKNN | None, float]:
    """The neighbour model and β with the best validation NDCG@10; ``rows``: the
    interactions to fit candidates on (validation held out), then the winner;
    ``fixed``: validation scores already in the model (the affinity term)."""

    def ndcg_of(knn: ItemKNN) -> npt.NDArray[np.float64]:
        return val.ndcg(lambda a, b: knn.scores(val.histories[a:b]), BLEND_WEIGHTS, fixed)

    return choose_blend(models, rows[0], rows[1], ndcg_of, BLEND_WEIGHTS, log)

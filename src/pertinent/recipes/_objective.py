"""Objective optimisation (``solutionConfig.optimizationObjective``): relevance blended
with a business attribute of each item, such as price or margin.

The attribute becomes a per-item addition to the model's item bias, so every answer
(recommend, rank, the offline metrics) sees the same blend. Its size is set in units of
the model's own logit spread, measured on training users, so a sensitivity means the
same trade-off whatever the catalogue or the scale of the attribute: HIGH moves an item
by up to ~1.7 spreads from the cheapest to the dearest, LOW by a quarter of that.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pertinent.recipes.base import FloatArray, Query, TrainingData

SENSITIVITY = {"OFF": 0.0, "LOW": 0.25, "MEDIUM": 0.5, "HIGH": 1.0}
_SAMPLE_USERS = 256


@dataclass(frozen=True)
class Objective:
    """The attribute of every item (NaN where unknown) and how much it counts."""

    values: npt.NDArray[np.float64]
    sensitivity: str = "LOW"


def standardised_rank(values: npt.NDArray[np.float64]) -> FloatArray:
    """Each value's rank among the known ones, mapped to mean 0 and variance 1 (a
    uniform's); unknown values get 0. Ranks make skewed attributes (prices) behave."""
    z = np.zeros(values.shape[0], dtype=np.float32)
    known = np.isfinite(values)
    if known.sum() < 2:
        return z
    ranks = np.argsort(np.argsort(values[known], kind="stable"), kind="stable")
    z[known] = ((ranks / (known.sum() - 1)) - 0.5) * np.sqrt(12.0)
    return z


def item_boost(
    objective: Objective,
    data: TrainingData,
    logits: Callable[[Sequence[Query]], FloatArray],
    *,
    seed: int = 0,
) -> FloatArray:
    """What to add to each item's logit for ``objective``."""
    weight = SENSITIVITY[objective.sensitivity]
    if weight == 0.0:
        return np.zeros(data.n_items, dtype=np.float32)
    inter = data.interactions
    offsets = inter.user_offsets()
    users = np.flatnonzero(np.diff(offsets) > 0)
    rng = np.random.default_rng(seed)
    if users.shape[0] > _SAMPLE_USERS:
        users = np.sort(rng.choice(users, _SAMPLE_USERS, replace=False))
    queries = [
        Query(
            history=inter.item[offsets[u] : offsets[u + 1]],
            history_times=inter.timestamp[offsets[u] : offsets[u + 1]],
            user=int(u),
        )
        for u in users
    ]
    spread = float(np.mean(np.std(logits(queries), axis=1))) if queries else 1.0
    return (weight * spread * standardised_rank(objective.values)).astype(np.float32)

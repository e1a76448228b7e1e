"""Offline evaluation as Personalize does it: the user split and the metrics (spec §12)."""

from pertinent.evaluation.metrics import (
    METRIC_KEYS,
    coverage,
    evaluate,
    hit_matrix,
    mean_reciprocal_rank,
    ndcg,
    precision,
)
from pertinent.evaluation.split import UserSplit, split_users

__all__ = [
    "METRIC_KEYS",
    "UserSplit",
    "coverage",
    "evaluate",
    "hit_matrix",
    "mean_reciprocal_rank",
    "ndcg",
    "precision",
    "split_users",
]

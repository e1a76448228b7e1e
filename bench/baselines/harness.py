"""The two evaluation protocols, tuning, and the runs of each kind of model for quality.py.

Protocols (spec/quality.md §0, §6):

* **LOO**: ``pertinent.evaluation.loo`` (leave-last-out, full ranking, seen removed,
  random tie-break); NDCG@10, HR@10, MRR. The split is deterministic; a *seed* is the
  model's init seed and the evaluator's tie-break RNG.
* **Personalize**: ``split_users`` (10 % of users held out, their oldest 90 % as input,
  newest 10 % relevant); NDCG@10, precision@10, MRR@25, coverage of the top-25 lists,
  with the input items left in the candidates (as Personalize computes it) and removed;
  a *seed* here is the user split's seed (and the model's).

Baselines are tuned on the LOO validation split (each user's second-to-last item) and the
chosen point is used for both protocols; ours run with default hyperparameters.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from pertinent.evaluation.loo import LooSplit, evaluate_loo
from pertinent.evaluation.metrics import (
    NUM_RESULTS,
    coverage,
    hit_matrix,
    mean_reciprocal_rank,
    ndcg,
    precision,
    recommend_for_split,
)
from pertinent.evaluation.split import UserSplit
from pertinent.recipes.base import Model, Query, Recipe, TrainingData, top_n

from . import Baseline, TooLarge, coordinate_search

__all__ = [
    "ModelResult",
    "Scorer",
    "loo_metrics",
    "personalize_metrics",
    "precomputed",
    "queries_of",
    "ranked_from_scores",
    "run_baseline",
    "run_ours",
]

Scorer = Callable[[Sequence[Query]], npt.NDArray[np.floating[Any]]]
Log = Callable[[str], None]
SEEN = ("kept", "removed")
"""Personalize protocol variants: input items left among the candidates, or removed."""


@dataclass
class ModelResult:
    """Everything reported for one model on one data set (lists are per seed)."""

    name: str
    kind: str  # "baseline", "recbole" or "ours"
    params: dict[str, Any] = field(default_factory=dict)
    loo: list[dict[str, float]] = field(default_factory=list)
    personalize: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    fit_seconds: list[float] = field(default_factory=list)
    tuning: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "params": self.params,
            "loo": self.loo,
            "personalize": self.personalize,
            "fit_seconds": self.fit_seconds,
            "tuning": self.tuning,
            "note": self.note,
        }


def queries_of(split: LooSplit) -> list[Query]:
    return [split.query(k) for k in range(len(split))]


def precomputed(matrix: npt.NDArray[np.float32], split: LooSplit) -> Scorer:
    """A scorer that reads rows of a score matrix computed elsewhere (one row per split user)."""
    row = {int(u): k for k, u in enumerate(split.users)}

    def score(queries: Sequence[Query]) -> npt.NDArray[np.float32]:
        return matrix[[row[int(q.user)] for q in queries]]  # type: ignore[arg-type]

    return score


def loo_metrics(score: Scorer, split: LooSplit, seed: int) -> dict[str, float]:
    out = evaluate_loo(score, split, k=10, seed=seed, exclude_seen=True)
    out.pop("users", None)
    return out


def ranked_from_scores(
    score: Scorer, split: UserSplit, *, exclude_history: bool, batch: int = 256
) -> npt.NDArray[np.int64]:
    """Each test user's top-25 from a score matrix (padded with -1), as ``top_n`` ranks:
    ties keep the lower index first, like the recipes' own ``recommend``."""
    out = np.full((len(split), NUM_RESULTS), -1, dtype=np.int64)
    n_items = split.train.n_items
    allowed = np.ones(n_items, dtype=bool)
    for start in range(0, len(split), batch):
        stop = min(start + batch, len(split))
        queries = [split.query(k) for k in range(start, stop)]
        matrix = np.asarray(score(queries), dtype=np.float64)
        for row, k in enumerate(range(start, stop)):
            history = split.history(k)
            if exclude_history:
                allowed[history] = False
            items = top_n(matrix[row], NUM_RESULTS, allowed if exclude_history else None)
            allowed[history] = True
            out[k, : items.shape[0]] = items
    return out


def personalize_metrics(ranked: npt.NDArray[np.int64], split: UserSplit) -> dict[str, float]:
    """NDCG@10, precision@10, MRR@25 and coverage as Personalize defines them (metrics.py)."""
    relevant = [split.relevant(k) for k in range(len(split))]
    n_relevant = np.diff(split.relevant_offsets)
    hits = hit_matrix(ranked, relevant, NUM_RESULTS)

    def mean(values: npt.NDArray[np.float64]) -> float:
        return float(values.mean()) if values.shape[0] else 0.0

    return {
        "ndcg@10": mean(ndcg(hits, n_relevant, 10)),
        "precision@10": mean(precision(hits, 10)),
        "mrr@25": mean(mean_reciprocal_rank(hits, 25)),
        "coverage": coverage(ranked, split.train.n_items),
    }


def _timed_fit(
    cls: type[Baseline], params: dict[str, Any], seed: int, train: TrainingData
) -> tuple[Baseline, float]:
    model = cls(seed=seed, **params)
    started = time.perf_counter()
    model.fit(train)
    return model, time.perf_counter() - started


def run_baseline(
    cls: type[Baseline],
    val: LooSplit,
    test: LooSplit,
    user_splits: Sequence[UserSplit],
    seeds: Sequence[int],
    budget: int,
    log: Log,
) -> ModelResult:
    """Tune ``cls`` on the validation split, then evaluate the best point on both protocols."""
    result = ModelResult(cls.name, "baseline")
    trials: list[dict[str, Any]] = []
    started = time.perf_counter()

    def evaluate(params: dict[str, Any]) -> float:
        model, fit_s = _timed_fit(cls, params, seeds[0], val.train)
        metrics = loo_metrics(model.score, val, seed=seeds[0])
        trials.append({"params": params, "fit_seconds": fit_s, **metrics})
        return metrics["ndcg@10"]

    try:
        coordinate_search(cls, evaluate, budget)
    except TooLarge as exc:
        result.note = f"skipped: {exc}"
        log(f"  {cls.name}: {result.note}")
        return result
    best = max(trials, key=lambda t: t["ndcg@10"])
    result.params = dict(best["params"])
    result.tuning = {
        "trials": len(trials),
        "seconds": time.perf_counter() - started,
        "val_ndcg@10": best["ndcg@10"],
        "points": trials,
    }
    log(
        f"  {cls.name}: tuned {len(trials)} points in {result.tuning['seconds']:.1f} s, "
        f"best {result.params} (val NDCG@10 {best['ndcg@10']:.4f})"
    )
    model: Baseline | None = None
    for seed in seeds:
        if model is None or not cls.deterministic:
            model, fit_s = _timed_fit(cls, result.params, seed, test.train)
            result.fit_seconds.append(fit_s)
        result.loo.append(loo_metrics(model.score, test, seed=seed))
    # No user splits: LOO only (bench/train.py).
    result.personalize = {v: [] for v in SEEN} if user_splits else {}
    for seed, split in zip(seeds, user_splits, strict=False):
        model, _ = _timed_fit(cls, result.params, seed, split.train)
        for variant in SEEN:
            ranked = ranked_from_scores(model.score, split, exclude_history=variant == "removed")
            result.personalize[variant].append(personalize_metrics(ranked, split))
    return result


def _scores_catalogue(model: Model, query: Query) -> bool:
    try:
        model.score_items([query])
    except NotImplementedError:
        return False
    return True


def run_ours(
    name: str,
    recipe_cls: type[Recipe],
    test: LooSplit,
    user_splits: Sequence[UserSplit],
    seeds: Sequence[int],
    log: Log,
) -> ModelResult:
    """A recipe through its public API: default hyperparameters, ``fit``, ``score_items``
    (LOO) and ``recommend`` (Personalize protocol, exactly what a campaign would return)."""
    result = ModelResult(name, "ours", params={"recipe_type": recipe_cls.recipe_type})
    for seed in seeds:
        recipe = recipe_cls()
        started = time.perf_counter()
        model = recipe.fit(replace(test.train, seed=seed))
        result.fit_seconds.append(time.perf_counter() - started)
        if len(test) and not _scores_catalogue(model, test.query(0)):
            result.note = "no score_items: LOO not computed"
            break
        result.loo.append(loo_metrics(model.score_items, test, seed=seed))
    result.personalize = {v: [] for v in SEEN} if user_splits else {}
    for seed, split in zip(seeds, user_splits, strict=False):
        model = recipe_cls().fit(replace(split.train, seed=seed))
        for variant in SEEN:
            ranked = recommend_for_split(model, split, exclude_history=variant == "removed")
            result.personalize[variant].append(personalize_metrics(ranked, split))
    fits = result.fit_seconds
    log(f"  {name}: fit {np.mean(fits):.1f} s/seed" + (f" ({result.note})" if result.note else ""))
    return result

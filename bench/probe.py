"""One recipe, one data set, one seed: the LOO figures of a hyperparameter or option change.

The quick loop before a full ``bench/quality.py`` run (which takes about an hour for
the personal recipes on 2 cores): trains ``RECIPE`` on the LOO test split of ``DATASET``
exactly as bench/quality.py does, with hyperparameters (``name=value``) and training
options (``opt.name=value``: ``TrainingOptions`` for user-personalization and
personalized-ranking, ``HrnnOptions`` for the HRNN recipes), and prints NDCG@10, HR@10,
MRR, the fit time and the blend weight it chose. Nothing is written, unless ``--save DIR``
keeps the fitted model there (``Model.save``) for post-hoc analysis.

    .venv/bin/python bench/probe.py movielens-100k aws-user-personalization
    .venv/bin/python bench/probe.py generated aws-user-personalization hidden_dimension=128
    .venv/bin/python bench/probe.py generated aws-user-personalization opt.lr=0.003
"""

from __future__ import annotations

import argparse
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import datasets
from baselines.harness import loo_metrics
from pertinent.evaluation.loo import leave_last_out
from pertinent.recipes.hrnn import HrnnOptions, _HrnnRecipe
from pertinent.recipes.registry import get_recipe
from pertinent.recipes.user_personalization import TrainingOptions, _SequenceRecipe


def _options_class(cls: type[Any]) -> type[Any] | None:
    """The options dataclass a recipe's constructor takes, if any."""
    if issubclass(cls, _SequenceRecipe):
        return TrainingOptions
    if issubclass(cls, _HrnnRecipe):
        return HrnnOptions
    return None


def _value(raw: str) -> Any:
    if raw in ("true", "false"):
        return raw == "true"
    return float(raw) if any(c in raw for c in ".e") else int(raw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", choices=sorted(datasets.LOADERS))
    parser.add_argument("recipe")
    parser.add_argument("settings", nargs="*", help="name=value or opt.name=value")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", type=Path, default=None, help="keep the fitted model here")
    args = parser.parse_args()
    pairs = [s.split("=", 1) for s in args.settings]
    params = {k: v for k, v in pairs if not k.startswith("opt.")}
    options = {k[4:]: _value(v) for k, v in pairs if k.startswith("opt.")}
    cls = get_recipe(args.recipe)
    parsed = cls.parse_params(params)
    if options:
        kind = _options_class(cls)
        if kind is None:
            raise SystemExit(f"{args.recipe} takes no training options")
        unknown = set(options) - {f.name for f in fields(kind)}
        if unknown:
            raise SystemExit(f"{kind.__name__} has no field(s) {sorted(unknown)}")
        recipe = cls(parsed, kind(**options))
    else:
        recipe = cls(parsed)
    _, test = leave_last_out(datasets.LOADERS[args.dataset]().data)
    started = time.perf_counter()
    model = recipe.fit(replace(test.train, seed=args.seed))
    fit = time.perf_counter() - started
    if args.save is not None:
        args.save.mkdir(parents=True, exist_ok=True)
        model.save(args.save)
    metrics = loo_metrics(model.score_items, test, seed=args.seed)
    meta = getattr(model, "meta", {})
    print(
        f"{args.dataset} {args.recipe} {params} {options}: "
        + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        + f"; fit {fit:.0f} s; blend weight {meta.get('knn_weight')}"
    )


if __name__ == "__main__":
    main()

"""Training time to quality: aws-user-personalization on ~1M generated interactions.

    .venv/bin/python bench/train.py                  # 42k users x 6k items, >= 1M rows
    .venv/bin/python bench/train.py --users 8000     # a smaller, faster check

Trains the recipe once (default hyperparameters, through the recipe API) on the LOO test
split of the demo generator's data, reports the wall time of ``fit`` and the LOO NDCG@10
/ HR@10 it reaches (full ranking, seen removed, random ties) against the best of the
tuned baselines on the same split (popularity, item-kNN, EASE, iALS; tuned on the LOO
validation split as in bench/quality.py). The issue's target: reach the best baseline's
quality within 20 minutes on 2 cores. Baseline results are cached in bench/.work/ (keyed
by data size and seed), so re-runs only train the recipe. Writes bench/results/train.json.

When the recipe is not trainable yet (not in ``TRAINABLE``), says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import datasets
from baselines.harness import loo_metrics, run_baseline
from baselines.ials import IALS
from baselines.simple import EASE, ItemKNN, Popularity
from pertinent.evaluation.loo import leave_last_out
from pertinent.recipes.registry import TRAINABLE, get_recipe

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "train.json"
WORK = ROOT / ".work"
TARGET_SECONDS = 20 * 60
MIN_INTERACTIONS = 1_000_000


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--recipe", default="aws-user-personalization")
    p.add_argument("--users", type=int, default=42_000)
    p.add_argument("--items", type=int, default=6_000)
    p.add_argument("--seed", type=int, default=7, help="data generator seed")
    p.add_argument("--budget", type=int, default=12, help="tuning points per baseline")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f} s] {message}", flush=True)

    if args.recipe not in TRAINABLE:
        print(
            f"{args.recipe} is not trainable yet (TRAINABLE: {', '.join(sorted(TRAINABLE))}); "
            "nothing to measure."
        )
        return 0

    loaded = datasets.generated(users=args.users, items=args.items, seed=args.seed)
    data = loaded.data
    n_rows = len(data.interactions)
    log(f"generated: {data.n_users:,} users, {data.n_items:,} items, {n_rows:,} interactions")
    if n_rows < MIN_INTERACTIONS and args.users >= 42_000:
        print(f"warning: only {n_rows:,} interactions (< 1M); raise --users", file=sys.stderr)
    val, test = leave_last_out(data)

    # "novel": scored on new targets only (evaluation.loo); older caches used the leaky rule.
    key = f"{args.users}-{args.items}-{args.seed}-{args.budget}-novel"
    cache = WORK / f"train-baselines-{key}.json"
    if cache.exists():
        baselines: dict[str, Any] = json.loads(cache.read_text())
        log(f"baselines from {cache}")
    else:
        baselines = {}
        for cls in (Popularity, ItemKNN, EASE, IALS):
            r = run_baseline(cls, val, test, [], [0], args.budget, log)
            if r.loo:
                baselines[r.name] = {
                    "params": r.params,
                    **r.loo[0],
                    "fit_seconds": r.fit_seconds[0],
                    "tuning_seconds": r.tuning["seconds"],
                }
        WORK.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(baselines, indent=2) + "\n")
    best_name = max(baselines, key=lambda n: baselines[n]["ndcg@10"])
    best = baselines[best_name]

    recipe = get_recipe(args.recipe)()
    log(f"training {args.recipe} on {len(test.train.interactions):,} interactions ...")
    fit_started = time.perf_counter()
    model = recipe.fit(replace(test.train, seed=0))
    fit_seconds = time.perf_counter() - fit_started
    ours = loo_metrics(model.score_items, test, seed=0)
    ratio = ours["ndcg@10"] / best["ndcg@10"] if best["ndcg@10"] > 0 else float("nan")
    met = fit_seconds <= TARGET_SECONDS and ours["ndcg@10"] >= best["ndcg@10"]

    print()
    print("| model | NDCG@10 | HR@10 | MRR | fit s |\n|---|---|---|---|---|")
    for name, r in sorted(baselines.items(), key=lambda kv: -kv[1]["ndcg@10"]):
        print(f"| {name} | {r['ndcg@10']:.4f} | {r['hr@10']:.4f} | {r['mrr']:.4f} | "
              f"{r['fit_seconds']:.1f} |")  # fmt: skip
    print(f"| **{args.recipe}** | {ours['ndcg@10']:.4f} | {ours['hr@10']:.4f} | "
          f"{ours['mrr']:.4f} | {fit_seconds:.1f} |")  # fmt: skip
    print(
        f"\n{args.recipe}: fit {fit_seconds / 60:.1f} min, NDCG@10 {ours['ndcg@10']:.4f} = "
        f"{ratio:.2f} x best baseline ({best_name} {best['ndcg@10']:.4f}); target (<= 20 min "
        f"and >= best baseline): {'met' if met else 'NOT met'}"
    )
    report = {
        "recipe": args.recipe,
        "params": recipe.params.model_dump(),
        "data": {
            "generator": {"users": args.users, "items": args.items, "seed": args.seed},
            "users": data.n_users,
            "items": data.n_items,
            "interactions": n_rows,
            "train_interactions": len(test.train.interactions),
            "loo_users": len(test),
        },
        "fit_seconds": fit_seconds,
        "loo": ours,
        "baselines": baselines,
        "best_baseline": best_name,
        "ratio_to_best_ndcg@10": ratio,
        "target": {"seconds": TARGET_SECONDS, "met": met},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "wall_seconds": time.perf_counter() - started,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

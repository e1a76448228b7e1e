"""Objective optimisation: relevance given up for the business attribute gained.

Trains aws-user-personalization on generated shop data (Items carry PRICE) once per
objectiveSensitivity (OFF, LOW, MEDIUM, HIGH) on the same leave-last-out split, and
reports for each: NDCG@10 and HR@10 (full ranking, seen items removed, random ties),
the mean PRICE of every evaluated user's top 10, and Personalize's
average_rewards_at_k on its own split. OFF is the baseline of the same run.

    .venv/bin/python bench/objective.py [--users 3000] [--items 1500]

Prints a table and writes bench/results/objective.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from pertinent.data.csv_import import read_location
from pertinent.data.schema import parse_schema
from pertinent.data.snapshot import build_snapshot
from pertinent.demo.generate import generate
from pertinent.evaluation.loo import evaluate_loo, leave_last_out
from pertinent.evaluation.metrics import evaluate
from pertinent.recipes._objective import Objective
from pertinent.recipes.registry import get_recipe

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--items", type=int, default=1500)
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pertinent-bench-objective-"))
    shop = generate(work, users=args.users, items=args.items, seed=3)
    schemas = {
        "INTERACTIONS": parse_schema(shop.interactions_schema),
        "ITEMS": parse_schema(shop.items_schema),
    }
    parts = {}
    for kind, csv in (("INTERACTIONS", shop.interactions_csv), ("ITEMS", shop.items_csv)):
        parts[kind] = [work / f"{kind}.parquet"]
        read_location(csv.as_uri(), schemas[kind], kind).write_parquet(parts[kind][0])
    snap = build_snapshot(parts["INTERACTIONS"], parts["ITEMS"], seed=42, schemas=schemas)
    assert snap.items is not None
    price = snap.items["PRICE"].to_numpy().astype(np.float64)
    validation, test = leave_last_out(snap.data)
    del validation
    recipe_cls = get_recipe("aws-user-personalization")
    rows: dict[str, Any] = {}
    for sensitivity in ("OFF", "LOW", "MEDIUM", "HIGH"):
        objective = Objective(values=price, sensitivity=sensitivity)
        train = replace(test.train, extra={"objective": objective})
        recipe = recipe_cls(recipe_cls.Params(hidden_dimension=64))
        recipe.max_epochs = args.epochs
        started = time.perf_counter()
        model = recipe.fit(train)
        fit_s = time.perf_counter() - started
        loo = evaluate_loo(model.score_items, test, seed=0)
        tops = []
        for k in range(len(test)):
            query = test.query(k)
            seen = np.zeros(model.n_items, dtype=bool)
            seen[query.history] = True
            tops.append(model.recommend(query, 10, ~seen).items)
        mean_price = float(np.nanmean(price[np.concatenate(tops)]))
        data = replace(snap.data, extra={"objective": objective})
        rewards = evaluate(recipe_cls(recipe.params), data, seed=42)["average_rewards_at_k"]
        rows[sensitivity] = {
            "ndcg@10": loo["ndcg@10"],
            "hr@10": loo["hr@10"],
            "mean_price_top10": mean_price,
            "average_rewards_at_k": rewards,
            "fit_seconds": fit_s,
        }
    base = rows["OFF"]
    print(f"{'sensitivity':12} {'NDCG@10':>8} {'HR@10':>7} {'Δ NDCG':>8} {'mean PRICE':>10} "
          f"{'Δ PRICE':>8} {'avg reward@k':>12}")  # fmt: skip
    for name, r in rows.items():
        r["ndcg_change"] = r["ndcg@10"] / base["ndcg@10"] - 1 if base["ndcg@10"] else 0.0
        r["price_change"] = r["mean_price_top10"] / base["mean_price_top10"] - 1
        print(f"{name:12} {r['ndcg@10']:8.4f} {r['hr@10']:7.4f} {r['ndcg_change']:+8.1%} "
              f"{r['mean_price_top10']:10.2f} {r['price_change']:+8.1%} "
              f"{r['average_rewards_at_k']:12.4f}")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    out = {
        "machine": {"cpus": os.cpu_count()},
        "args": vars(args),
        "data": {
            "users": snap.data.n_users,
            "items": snap.data.n_items,
            "interactions": len(snap.data.interactions),
        },  # fmt: skip
        "rows": rows,
    }
    (RESULTS / "objective.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"written {RESULTS / 'objective.json'}")


if __name__ == "__main__":
    main()

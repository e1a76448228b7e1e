"""Offline quality of our recipes against tuned baselines, on the same splits.

    .venv/bin/python bench/quality.py                       # everything (~45 min, 2 cores)
    .venv/bin/python bench/quality.py --quick --no-recbole  # smoke run, about a minute
    .venv/bin/python bench/quality.py --datasets movielens-100k --recipes aws-sims

Two protocols (bench/baselines/harness.py, spec/quality.md §0 and §6):

* **LOO**: leave-last-out, full ranking, seen items removed, random tie-break;
  NDCG@10, HR@10, MRR; mean ± sd over seeds (model init + tie-break RNG).
* **Personalize**: 10 % of users held out, oldest 90 % of their history as input, newest
  10 % relevant; NDCG@10, precision@10, MRR@25, coverage; mean ± sd over user-split
  seeds, with the input items kept among the candidates (Personalize's own numbers) and
  removed (the papers' convention).

Baselines (bench/baselines): popularity, item-kNN (cosine, recency decay), EASE, iALS,
each tuned on the LOO validation split with the same budget of points (``--budget``); and
RecBole's SASRec and GRU4Rec trained in their own venv under a time budget (see
``RecBoleSettings`` for why they get less tuning). Ours: every recipe named in
``--recipes`` (default: all trainable USER_PERSONALIZATION and PERSONALIZED_RANKING
recipes plus aws-sims and aws-popularity-count), default hyperparameters, through the
recipe API. Prints tables and writes bench/results/quality.json and quality.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import datasets
from baselines import Baseline
from baselines.harness import ModelResult, run_baseline, run_ours
from baselines.ials import IALS
from baselines.recbole_models import (
    RECBOLE_CONFIGS,
    RecBoleSettings,
    ensure_venv,
    run_recbole_baseline,
)
from baselines.simple import EASE, ItemKNN, Popularity
from pertinent.evaluation.loo import leave_last_out
from pertinent.evaluation.split import split_users
from pertinent.recipes.registry import TRAINABLE, get_recipe

RESULTS = Path(__file__).resolve().parent / "results"
BASELINES: tuple[type[Baseline], ...] = (Popularity, ItemKNN, EASE, IALS)
ALWAYS = ("aws-sims", "aws-popularity-count")
# The legacy and v2 recipes cost as much per fit as user-personalization; on 2 cores the
# full grid (3 seeds x 2 protocols x 4 data sets) for all of them takes most of a day.
LIGHT = (
    "aws-hrnn",
    "aws-hrnn-metadata",
    "aws-hrnn-coldstart",
    "aws-user-personalization-v2",
    "aws-personalized-ranking-v2",
)
SAME_FIT = {
    "aws-personalized-ranking": "aws-user-personalization",
    "aws-personalized-ranking-v2": "aws-user-personalization-v2",
}
PERSONAL_TYPES = ("USER_PERSONALIZATION", "PERSONALIZED_RANKING")
LOO_KEYS = (("ndcg@10", "NDCG@10"), ("hr@10", "HR@10"), ("mrr", "MRR"))
PERS_KEYS = (
    ("ndcg@10", "NDCG@10"),
    ("precision@10", "P@10"),
    ("mrr@25", "MRR@25"),
    ("coverage", "cov"),
)


def default_recipes() -> list[str]:
    """Looked up at run time, so recipes registered later are picked up without edits."""
    personal = [
        n
        for n, r in sorted(TRAINABLE.items(), key=lambda kv: (kv[0] in SAME_FIT, kv[0]))
        if r.recipe_type in PERSONAL_TYPES
    ]
    return personal + [n for n in ALWAYS if n in TRAINABLE and n not in personal]


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    array = np.asarray(values, dtype=np.float64)
    if array.shape[0] == 0:
        return float("nan"), float("nan")
    sd = float(array.std(ddof=1)) if array.shape[0] > 1 else 0.0
    return float(array.mean()), sd


def cell(runs: Sequence[dict[str, float]], key: str) -> str:
    if not runs:
        return "n/a"
    mean, sd = mean_sd([r[key] for r in runs])
    return f"{mean:.4f} ± {sd:.4f}"


def metric_mean(runs: Sequence[dict[str, float]], key: str) -> float:
    return mean_sd([r[key] for r in runs])[0] if runs else float("nan")


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table (readable as plain text too)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    return "\n".join(lines)


def best_baseline(
    results: Sequence[ModelResult], pick: Callable[[ModelResult], float]
) -> tuple[str, float]:
    scored = [(r.name, pick(r)) for r in results if r.kind != "ours"]
    scored = [(n, v) for n, v in scored if np.isfinite(v)]
    return max(scored, key=lambda x: x[1]) if scored else ("", float("nan"))


def ratio(value: float, best: float) -> str:
    return f"{value / best:.2f}" if np.isfinite(value) and best > 0 else "n/a"


def fit_cell(r: ModelResult) -> str:
    if not r.fit_seconds:
        return "n/a"
    text = f"{np.mean(r.fit_seconds):.2f}"
    if r.tuning and r.tuning["trials"]:
        text += f" (tune {r.tuning['trials']} pts, {r.tuning['seconds']:.0f} s)"
    return text


def dataset_report(name: str, stats: dict[str, Any], results: Sequence[ModelResult]) -> str:
    """The LOO and Personalize-protocol tables of one data set, ratios to the best baseline."""
    loo_best = best_baseline(results, lambda r: metric_mean(r.loo, "ndcg@10"))
    kept_best = best_baseline(
        results, lambda r: metric_mean(r.personalize.get("kept", []), "ndcg@10")
    )
    out = [
        f"### {name}",
        "",
        f"{stats['users']:,} users, {stats['items']:,} items, {stats['interactions']:,} "
        f"interactions; LOO: {stats['loo_users']:,} users; Personalize protocol: "
        f"{stats['personalize_test_users']:,} test users per split.",
        "",
        f"**Leave-last-out** (seen removed, random ties; best baseline {loo_best[0]})",
        "",
    ]
    rows = []
    for r in results:
        ours = r.kind == "ours"
        rows.append(
            [r.name, r.kind]
            + [cell(r.loo, k) for k, _ in LOO_KEYS]
            + [fit_cell(r), ratio(metric_mean(r.loo, "ndcg@10"), loo_best[1]) if ours else ""]
        )
    header = ["model", "kind", *(h for _, h in LOO_KEYS), "fit s", "ours/best NDCG"]
    out += [table(header, rows), ""]
    for variant, title in (("kept", "input items kept"), ("removed", "input items removed")):
        line = f"**Personalize protocol, {title}**"
        if variant == "kept":
            line += f" (best baseline {kept_best[0]})"
        out += [line, ""]
        rows = []
        for r in results:
            runs = r.personalize.get(variant, [])
            if not runs:
                continue
            extra = []
            if variant == "kept":
                value = metric_mean(runs, "ndcg@10")
                extra = [ratio(value, kept_best[1]) if r.kind == "ours" else ""]
            rows.append([r.name, *(cell(runs, k) for k, _ in PERS_KEYS), *extra])
        header = ["model", *(h for _, h in PERS_KEYS)]
        if variant == "kept":
            header.append("ours/best NDCG")
        out += [table(header, rows) if rows else "(none)", ""]
    notes = [f"- {r.name}: {r.note}" for r in results if r.note]
    tuned = [f"- {r.name}: {json.dumps(r.params)}" for r in results if r.tuning]
    if tuned:
        out += ["Tuned hyperparameters (LOO validation NDCG@10):", "", *tuned, ""]
    if notes:
        out += ["Notes:", "", *notes, ""]
    return "\n".join(out)


def summary_report(summary: dict[str, dict[str, list[ModelResult]]], recipes: Sequence[str]) -> str:
    """Ours against the best baseline of each data set, NDCG@10 ratios, both protocols."""
    names = list(summary)
    rows = []
    for recipe in recipes:
        row = [recipe]
        for name in names:
            results = summary[name]["results"]
            ours = next((r for r in results if r.kind == "ours" and r.name == recipe), None)
            loo = best_baseline(results, lambda r: metric_mean(r.loo, "ndcg@10"))[1]
            kept = best_baseline(
                results, lambda r: metric_mean(r.personalize.get("kept", []), "ndcg@10")
            )[1]
            if ours is None:
                row.append("n/a")
                continue
            pers = metric_mean(ours.personalize.get("kept", []), "ndcg@10")
            row.append(f"{ratio(metric_mean(ours.loo, 'ndcg@10'), loo)} / {ratio(pers, kept)}")
        rows.append(row)
    header = ["ours: NDCG@10 / best baseline (LOO / Personalize)", *names]
    return "### Summary\n\n" + table(header, rows) if rows and names else ""


def run_dataset(
    name: str, args: argparse.Namespace, recipes: Sequence[str], log: Callable[[str], None]
) -> tuple[dict[str, Any], list[ModelResult]]:
    loaded = datasets.LOADERS[name]()
    data = loaded.data
    started = time.perf_counter()
    val, test = leave_last_out(data)
    user_splits = [split_users(data, seed=s) for s in args.seed_list[: args.personalize_seeds]]
    stats = {
        "users": data.n_users,
        "items": data.n_items,
        "interactions": len(data.interactions),
        "loo_users": len(test),
        "personalize_test_users": len(user_splits[0]) if user_splits else 0,
    }
    log(f"{name}: {stats}")
    results: list[ModelResult] = []
    for cls in BASELINES:
        results.append(
            run_baseline(cls, val, test, user_splits, args.seed_list, args.budget_points, log)
        )
    if args.recbole:
        for model in RECBOLE_CONFIGS:
            try:
                results.append(
                    run_recbole_baseline(model, val, test, args.seed_list, args.rb_settings, log)
                )
            except Exception as exc:  # a broken external run must not sink the whole report
                failed = ModelResult(f"recbole-{model.lower()}", "recbole", note=f"failed: {exc}")
                log(f"  {failed.name}: {str(exc)[-500:]}")
                results.append(failed)
    fitted: dict[str, ModelResult] = {}
    for recipe in recipes:
        cls = get_recipe(recipe)
        same = next((fitted[b] for b in _same_model(cls) if b in fitted), None)
        if same is not None:
            results.append(_reuse(recipe, cls, same, log))
            continue
        light = recipe in args.light
        try:
            result = run_ours(
                recipe,
                cls,
                test,
                [] if light else user_splits,
                args.seed_list[:1] if light else args.seed_list,
                log,
            )
            if light:
                result.note = (result.note + "; " if result.note else "") + "1 seed, LOO only"
            fitted[recipe] = result
            results.append(result)
        except Exception as exc:  # report a recipe that crashes, then go on with the rest
            log(f"  {recipe}: failed: {exc!r}")
            results.append(ModelResult(recipe, "ours", note=f"failed: {exc!r}"))
    stats["seconds"] = time.perf_counter() - started
    return stats, results


def _same_model(cls: type[Any]) -> list[str]:
    """Recipes that train exactly this one's model: personalized-ranking is
    user-personalization's network and fit (it only lacks exploration statistics, which
    change nothing without an exploration config), so a second training would repeat
    the first with the same data and seed."""
    pairs = [*SAME_FIT.items(), *((b, a) for a, b in SAME_FIT.items())]
    return [b for a, b in pairs if a == cls.name]


def _reuse(
    recipe: str, cls: type[Any], same: ModelResult, log: Callable[[str], None]
) -> ModelResult:
    log(f"  {recipe}: same fit as {same.name}, its trained model is reused")
    return ModelResult(
        recipe,
        "ours",
        params={"recipe_type": cls.recipe_type},
        loo=same.loo,
        personalize=same.personalize,
        fit_seconds=same.fit_seconds,
        note=(same.note + "; " if same.note else "") + f"same trained model as {same.name}",
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--datasets", default=",".join(datasets.LOADERS))
    p.add_argument("--recipes", default=None, help="comma-separated (default: see above)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument(
        "--personalize-seeds",
        type=int,
        default=None,
        help="user splits for the Personalize protocol (default: --seeds; 0: LOO only)",
    )
    p.add_argument(
        "--light",
        default=",".join(LIGHT),
        help="recipes trained with one seed on the LOO protocol only (time on 2 cores)",
    )
    p.add_argument("--budget", type=int, default=12, help="tuning points per baseline")
    p.add_argument("--no-recbole", dest="recbole", action="store_false")
    p.add_argument("--recbole-budget-s", type=float, default=RecBoleSettings.budget_s)
    p.add_argument("--recbole-configs", type=int, default=RecBoleSettings.configs)
    p.add_argument("--recbole-train-seeds", type=int, default=RecBoleSettings.train_seeds)
    p.add_argument("--quick", action="store_true", help="1 seed, 1 tuning point, short RecBole")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.budget = 1, 1
        args.recbole_budget_s, args.recbole_configs, args.recbole_train_seeds = 20.0, 1, 1
    args.seed_list = list(range(args.seeds))
    args.light = set(filter(None, args.light.split(",")))
    if args.personalize_seeds is None:
        args.personalize_seeds = args.seeds
    args.budget_points = args.budget
    args.rb_settings = RecBoleSettings(
        budget_s=args.recbole_budget_s,
        configs=args.recbole_configs,
        train_seeds=args.recbole_train_seeds,
        max_epochs=1 if args.quick else RecBoleSettings.max_epochs,
    )
    return args


def _write(
    out: Path,
    report: dict[str, Any],
    markdown: list[str],
    summary: dict[str, dict[str, list[ModelResult]]],
    recipes: Sequence[str],
    started: float,
) -> float:
    wall = time.perf_counter() - started
    report["meta"]["wall_seconds"] = wall
    text = [*markdown, summary_report(summary, recipes), ""]
    text.append(f"Wall time {wall / 60:.1f} min on {report['meta']['machine']}.")
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "quality.md").write_text("\n".join(text) + "\n")
    return wall


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f} s] {message}", flush=True)

    recipes = args.recipes.split(",") if args.recipes else default_recipes()
    unknown = [r for r in recipes if r not in TRAINABLE]
    if unknown:
        print(f"unknown recipes {unknown}; trainable: {sorted(TRAINABLE)}", file=sys.stderr)
        return 2
    venv_seconds = None
    if args.recbole:
        venv_seconds = ensure_venv(log)
    report: dict[str, Any] = {
        "meta": {
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
            "python": platform.python_version(),
            "seeds": args.seed_list,
            "personalize_seeds": args.personalize_seeds,
            "light": sorted(args.light),
            "tuning_points_per_baseline": args.budget,
            "recipes": recipes,
            "recbole": vars(args.rb_settings) if args.recbole else None,
            "recbole_venv_build_seconds": venv_seconds,
            "quick": args.quick,
        },
        "datasets": {},
    }
    rb = args.rb_settings
    markdown = [
        "# Quality benchmark",
        "",
        f"Seeds {args.seed_list} (LOO); the Personalize protocol over "
        f"{args.personalize_seeds} user split(s). Baselines tuned on the LOO validation "
        f"split by greedy coordinate search, at most {args.budget} points each "
        "(popularity has none), the "
        "chosen point then used for both protocols; ours with default hyperparameters. "
        "`fit s` is the mean fit time on the LOO test split (tuning points and time in "
        "brackets).",
        "",
        (
            f"RecBole (LOO only): {rb.configs} config(s), {rb.train_seeds} training(s) per "
            f"model and data set, at most {rb.budget_s:.0f} s / {rb.max_epochs} epochs each, "
            "1 torch thread; seeds beyond the trainings re-draw the tie-break only."
            if args.recbole
            else "RecBole skipped (--no-recbole)."
        ),
        "",
    ]
    summary: dict[str, dict[str, list[ModelResult]]] = {}
    for name in args.datasets.split(","):
        try:
            stats, results = run_dataset(name, args, recipes, log)
        except datasets.Missing as exc:
            log(f"{name}: skipped ({exc})")
            report["datasets"][name] = {"skipped": str(exc)}
            markdown += [f"### {name}", "", f"Skipped: {exc}", ""]
            continue
        summary[name] = {"results": results}
        text = dataset_report(name, stats, results)
        print("\n" + text, flush=True)
        markdown.append(text)
        report["datasets"][name] = {
            "stats": stats,
            "models": {r.name: r.as_json() for r in results},
        }
        # Written after every data set: a long run cut short still leaves its tables.
        _write(args.out, report, markdown, summary, recipes, started)
    wall = _write(args.out, report, markdown, summary, recipes, started)
    log(f"done in {wall / 60:.1f} min; wrote {args.out / 'quality.json'} and quality.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

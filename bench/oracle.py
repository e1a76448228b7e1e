"""The Bayes-oracle ceiling of NDCG@10, HR@10 and MRR on the generated data set (LOO).

Builds the ``generated`` data set exactly as bench/quality.py does, takes the same
leave-last-out test split and scores it with the same metric code (seen items removed,
random tie-break, seed 0), but ranks every item by the probability the generator gave
it for the held-out event, knowing that event's hidden session state (session category,
focused flag, focus subcategory) and timestamp. No model that sees only the history can
beat that ranking in expectation, so it bounds what the recipes and baselines can reach.

Rows printed: the full oracle, one that knows only the session category (focus mixed
out: focused half the time, focus subcategory from the anchor-item draw), and a filter
that knows the generator but sees only the history, as a model does (``history_scores``):
the realistic ceiling, once with the whole current session and once with its last
event. Users whose target repeats an item of their input are not evaluated
(``evaluation.loo``): this script found that keeping such a target rankable while
removing the rest of the input handed it to any model that scores its input high. The
ratio to the best baseline of bench/results/quality-up/quality.json is printed and
written with the figures to bench/results/oracle.json.

    .venv/bin/python bench/oracle.py

Exactness: the redraws of items not yet created (up to 8, then the group's top item) are
modelled exactly per group; the one redraw of a view equal to the previous event's first
draw is not (it only lowers that one item, almost always in the history and so removed).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import datasets
from baselines.harness import loo_metrics
from pertinent.demo.generate import (
    _FOCUS_STRENGTH,
    _FOCUSED_SESSION,
    _MAX_TRIES,
    _MEAN_SESSION_EVENTS,
    _SESSION_IN_TASTE,
    _STAY_IN_SESSION_CATEGORY,
    Latent,
)
from pertinent.evaluation.loo import LooSplit, _collapse_repeats, leave_last_out, repeat_targets
from pertinent.recipes.base import Interactions, Query

Matrix = npt.NDArray[np.float64]
RESULTS = Path(__file__).resolve().parent / "results"
QUALITY = RESULTS / "quality-up" / "quality.json"
SESSION_GAP = 3600  # seconds: the generator's gaps are ~80 s inside a session, days between


def target_rows(inter: Interactions, split: LooSplit) -> npt.NDArray[np.int64]:
    """The interactions row of each split user's target: the first row of their last run.

    ``from_frame`` sorts by user, time and file order; the generator writes users in id
    order with time ascending, so these rows are interactions.csv rows (checked by
    ``check_alignment``).
    """
    kept = np.flatnonzero(_collapse_repeats(inter))
    last_of_user = kept[np.r_[inter.user[kept][1:] != inter.user[kept][:-1], True]]
    rows = last_of_user[np.searchsorted(inter.user[last_of_user], split.users)]
    assert np.array_equal(inter.item[rows], split.targets), "targets do not match the split"
    return rows.astype(np.int64)


def check_alignment(
    latent: Latent, gen_item: npt.NDArray[np.int64], ts: Any, rows: npt.NDArray[np.int64]
) -> None:
    """Rows are events: items are live, and every target (a drawn view, never a cart copy)
    is in its session's category unless the event drifted."""
    assert gen_item.shape[0] == latent.session_category.shape[0], "row counts differ"
    assert np.all(latent.item_created[gen_item] <= ts), "an item was used before it existed"
    same = latent.item_category[gen_item[rows]] == latent.session_category[rows]
    assert np.all(same | latent.drift[rows]), "targets and hidden state are misaligned"


def group_draw(latent: Latent, group: npt.NDArray[np.int64], live: npt.NDArray[np.bool_]) -> Matrix:
    """P(a draw from item i's own group yields i), per event row (``live``: items created).

    A draw is redrawn up to ``_MAX_TRIES`` times while the item does not exist yet, then
    falls back to the group's most popular item (which always exists).
    """
    w = latent.item_weight
    n_groups = int(group.max()) + 1
    onehot = np.zeros((w.shape[0], n_groups))
    onehot[np.arange(w.shape[0]), group] = 1.0
    total = np.bincount(group, weights=w, minlength=n_groups)
    live_share = (live * w) @ onehot / np.maximum(total, 1e-300)  # events x groups
    miss = 1.0 - live_share
    tries = _MAX_TRIES + 1
    factor = np.where(miss < 1e-12, 1.0, (1.0 - miss**tries) / np.maximum(live_share, 1e-300))
    order = np.lexsort((-w, group))
    top = order[np.r_[True, group[order][1:] != group[order][:-1]]]
    p = live * (w / total[group]) * factor[:, group]
    p[:, top] += miss[:, group[top]] ** tries
    return p


def oracle_scores(latent: Latent, rows: npt.NDArray[np.int64], ts: Any) -> tuple[Matrix, Matrix]:
    """(full oracle, session-category-only oracle) over the generator's items, per row."""
    cat, sub, w = latent.item_category, latent.item_subcategory, latent.item_weight
    live = latent.item_created[None, :] <= np.asarray(ts)[:, None]
    p_cat, p_sub = group_draw(latent, cat, live), group_draw(latent, sub, live)
    s_cat = latent.session_category[rows][:, None]
    in_cat = p_cat * (cat[None, :] == s_cat)
    in_focus = p_sub * (sub[None, :] == latent.focus_subcategory[rows][:, None])
    drift = p_cat / latent.nonempty_categories.shape[0]
    stay = _STAY_IN_SESSION_CATEGORY
    focused = latent.focused[rows][:, None]
    mix = _FOCUS_STRENGTH * in_focus + (1 - _FOCUS_STRENGTH) * in_cat
    full = stay * np.where(focused, mix, in_cat) + (1 - stay) * drift
    # Focus subcategory = that of an anchor drawn from the category (no creation check).
    anchor = np.bincount(sub, weights=w)[sub] / np.bincount(cat, weights=w)[cat]
    any_focus = anchor[None, :] * p_sub * (cat[None, :] == s_cat)
    mix = _FOCUS_STRENGTH * any_focus + (1 - _FOCUS_STRENGTH) * in_cat
    category_only = (
        stay * (_FOCUSED_SESSION * mix + (1 - _FOCUSED_SESSION) * in_cat) + (1 - stay) * drift
    )
    return full, category_only


def _taste(votes: Matrix, population: Matrix, explore: Matrix) -> Matrix:
    """P(a new session's category): the user's earlier sessions' categories, smoothed by
    the population's, or an exploring session's uniform draw."""
    liked = (votes + population) / (votes.sum() + 1)
    out: Matrix = _SESSION_IN_TASTE * liked + (1 - _SESSION_IN_TASTE) * explore
    return out


def history_scores(
    latent: Latent,
    items: npt.NDArray[np.int64],
    ts: npt.NDArray[np.int64],
    first: npt.NDArray[np.int64],
    rows: npt.NDArray[np.int64],
    session_memory: bool = True,
) -> Matrix:
    """A Bayes filter over the hidden session state that sees only the history, as a
    model does: the ceiling for a model that knows the generator's parameters but not
    the held-out event's state.

    The current session is the run of events after the last gap over ``SESSION_GAP``.
    The next event continues it with probability ``1 - 1/_MEAN_SESSION_EVENTS``; its
    state (category, focused, focus subcategory) has a posterior from the session's
    events (funnel copies dropped), with the user's taste as the prior (the majority
    category of each earlier session, smoothed by the population's session categories).
    Otherwise a new session starts, drawn from that taste. With ``session_memory=False``
    the posterior sees only the last event, which a model ignoring the session's earlier
    events (and so its focus) would reach.
    """
    cat, sub, w = latent.item_category, latent.item_subcategory, latent.item_weight
    n_cat, n_sub = int(cat.max()) + 1, int(sub.max()) + 1
    sub_cat = np.zeros(n_sub, dtype=np.int64)
    sub_cat[sub] = cat
    anchor = np.bincount(sub, weights=w, minlength=n_sub) / np.maximum(
        np.bincount(cat, weights=w, minlength=n_cat)[sub_cat], 1e-300
    )
    population = np.bincount(latent.session_category, minlength=n_cat) + 1e-9
    population = population / population.sum()
    explore = np.isin(np.arange(n_cat), latent.nonempty_categories)
    explore = explore / explore.sum()
    stay, focus, p_new = _STAY_IN_SESSION_CATEGORY, _FOCUS_STRENGTH, 1 / _MEAN_SESSION_EVENTS
    # Items live at each user's last history event (the request's time is unknown).
    live = latent.item_created[None, :] <= ts[rows - 1][:, None]
    draw_cat, draw_sub = group_draw(latent, cat, live), group_draw(latent, sub, live)
    of_cat = cat[None, :] == np.arange(n_cat)[:, None]
    of_sub = sub[None, :] == np.arange(n_sub)[:, None]
    out = np.zeros((rows.shape[0], w.shape[0]))
    for k, (lo, hi) in enumerate(zip(first.tolist(), rows.tolist(), strict=True)):
        hist, when = items[lo:hi], ts[lo:hi]
        p_cat, p_sub = draw_cat[k], draw_sub[k]
        drift = (1 - stay) * p_cat / latent.nonempty_categories.shape[0]
        in_cat, in_sub = p_cat * of_cat, p_sub * of_sub
        loose = stay * in_cat + drift  # category x item
        focused = stay * (focus * in_sub + (1 - focus) * in_cat[sub_cat]) + drift  # sub x item
        session = np.cumsum(np.r_[True, np.diff(when) > SESSION_GAP])
        keep = np.r_[True, hist[1:] != hist[:-1]]  # funnel copies repeat the view
        hist, session = hist[keep], session[keep]
        current = session == session[-1]
        votes = np.zeros(n_cat)
        for s in np.unique(session[~current]):
            votes[np.argmax(np.bincount(cat[hist[session == s]], minlength=n_cat))] += 1
        prior = _taste(votes, population, explore)
        seen = hist[current] if session_memory else hist[-1:]
        log_loose = np.log(prior * (1 - _FOCUSED_SESSION) + 1e-300)
        log_loose += np.log(loose[:, seen] + 1e-300).sum(1)
        log_focused = np.log(prior[sub_cat] * anchor * _FOCUSED_SESSION + 1e-300)
        log_focused += np.log(focused[:, seen] + 1e-300).sum(1)
        top = max(log_loose.max(), log_focused.max())
        post_loose, post_focused = np.exp(log_loose - top), np.exp(log_focused - top)
        same = (post_loose @ loose + post_focused @ focused) / (
            post_loose.sum() + post_focused.sum()
        )
        votes[np.argmax(np.bincount(cat[hist[current]], minlength=n_cat))] += 1
        fresh = _taste(votes, population, explore)
        new = (fresh * (1 - _FOCUSED_SESSION)) @ loose
        new += (fresh[sub_cat] * anchor * _FOCUSED_SESSION) @ focused
        out[k] = (1 - p_new) * same + p_new * new
    return out


def scorer(matrix: Matrix, split: LooSplit) -> Any:
    row = {int(u): k for k, u in enumerate(split.users)}

    def score(queries: Sequence[Query]) -> Matrix:
        out: Matrix = matrix[[row[int(q.user)] for q in queries]]
        return out

    return score


def reference() -> tuple[dict[str, float], str]:
    """Mean LOO NDCG@10 per model on ``generated`` in the last full quality run, and the
    best baseline's name."""
    models = json.loads(QUALITY.read_text())["datasets"]["generated"]["models"]
    means = {n: float(np.mean([s["ndcg@10"] for s in m["loo"]])) for n, m in models.items()}
    best = max((n for n in means if models[n]["kind"] == "baseline"), key=means.__getitem__)
    return means, best


def main() -> None:
    loaded, latent = datasets.generated_with_truth()
    inter = loaded.data.interactions
    _, test = leave_last_out(loaded.data)
    gen_item = np.array([int(i[1:]) - 1 for i in loaded.item_ids], dtype=np.int64)
    rows = target_rows(inter, test)
    check_alignment(latent, gen_item[inter.item], inter.timestamp, rows)
    full, category_only = oracle_scores(latent, rows, inter.timestamp[rows])
    first = np.searchsorted(inter.user, inter.user[rows])
    ts = np.asarray(inter.timestamp, dtype=np.int64)
    history = {
        f"history only{'' if memory else ', last event'}": history_scores(
            latent, gen_item[inter.item], ts, first, rows, memory
        )
        for memory in (True, False)
    }
    figures: dict[str, dict[str, float]] = {}
    named = {"session state": full, "session category only": category_only, **history}
    for name, matrix in named.items():
        figures[f"oracle, {name}"] = loo_metrics(scorer(matrix[:, gen_item], test), test, seed=0)
    means, best = reference()
    target = 1.10 * means[best]
    repeats = float(np.mean(repeat_targets(test)))
    print(f"generated: {len(test)} test users, {repeats:.1%} of targets repeat an input item")
    print(f"{'':46} {'NDCG@10':>8} {'HR@10':>7} {'MRR':>7} {'/best':>6}")
    for label, m in figures.items():
        ratio = m["ndcg@10"] / means[best]
        print(f"{label:46} {m['ndcg@10']:8.4f} {m['hr@10']:7.4f} {m['mrr']:7.4f} {ratio:6.3f}")
    for name in (best, "aws-user-personalization"):
        print(f"{name + ' (quality-up, 3 seeds)':46} {means[name]:8.4f}")
    oracle = figures["oracle, session state"]["ndcg@10"]
    verdict = "under" if target <= oracle else "OVER"
    print(f"1.10 x {best} = {target:.4f}: {verdict} the oracle {oracle:.4f}")
    out = {
        "command": " ".join([".venv/bin/python", *sys.argv]),
        "dataset": "generated (users=6000, items=1500, seed=7), LOO test split, tie seed 0",
        "test_users": len(test),
        "target_repeats_history_share": repeats,
        "oracle": figures,
        "baselines_ndcg@10": {"source": str(QUALITY.relative_to(RESULTS.parent)), **means},
        "best_baseline": best,
        "ratio_to_best": {k: m["ndcg@10"] / means[best] for k, m in figures.items()},
        "target_1.10x": target,
        "attainable": bool(oracle >= target),
    }
    (RESULTS / "oracle.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()

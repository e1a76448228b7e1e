"""Two inputs of user-personalization beyond the item sequence: item creation times
(an item is out of a target's softmax before it exists, and out of an offline query's
answer after the query's time) and the current visit's item categories (_affinity)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from pertinent.evaluation.loo import leave_last_out
from pertinent.recipes._affinity import EPSILON, SessionAffinity
from pertinent.recipes._features import FeatureEncoder
from pertinent.recipes._knn import HISTORY, VISIT_GAP
from pertinent.recipes._softmax import catalogue_loss
from pertinent.recipes.base import CategoricalFeature, FeatureTable, Query, TrainingData
from pertinent.recipes.user_personalization import SequentialModel, UserPersonalization

from .contract import ITEMS_PER_BLOCK, block_data, user_history
from .test_user_personalization import FAST, make

N_WARM = 4 * ITEMS_PER_BLOCK


def categories(n_items: int, values: list[list[str]]) -> FeatureTable:
    vocabulary = tuple(sorted({v for row in values for v in row}))
    offsets = np.zeros(n_items + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(row) for row in values])
    codes = np.asarray([vocabulary.index(v) for row in values for v in row], dtype=np.int32)
    return FeatureTable(n_items, (CategoricalFeature("CATEGORY", offsets, codes, vocabulary),))


@pytest.fixture(scope="module")
def shop() -> tuple[SessionAffinity, np.ndarray]:
    # Items 0-2 are shoes, 3-4 hats, 5 is both; item 6 has no category.
    table = categories(7, [["shoe"], ["shoe"], ["shoe"], ["hat"], ["hat"], ["hat", "shoe"], []])
    encoder = FeatureEncoder.fit(table)
    traffic = np.asarray([0, 0, 1, 1, 3, 3, 4, 5, 6, 6], dtype=np.int64)
    affinity = SessionAffinity.fit(encoder.encode(table, 7), encoder.n_categorical_codes, traffic)
    assert affinity is not None
    return affinity, traffic


def test_lift_is_the_visits_share_over_the_traffic_share(shop: tuple) -> None:
    affinity, _ = shop
    # Traffic: shoe items 0, 0, 1, 1, 5 (5 of 10), hat items 3, 3, 4, 5 (4 of 10).
    shoe, hat = 5 / 10, 4 / 10
    # A visit of three events (two shoes, then one hat): share 2/3 shoe, 1/3 hat.
    lift = affinity.lift([np.asarray([0, 1, 3])], [None]).toarray()[0]
    expected_shoe = math.log1p((2 / 3) / (EPSILON * shoe))
    expected_hat = math.log1p((1 / 3) / (EPSILON * hat))
    np.testing.assert_allclose(lift[[0, 1, 2]], expected_shoe, rtol=1e-6)
    np.testing.assert_allclose(lift[[3, 4]], expected_hat, rtol=1e-6)
    both = math.log1p((2 / 3) / (EPSILON * shoe) + (1 / 3) / (EPSILON * hat))
    np.testing.assert_allclose(lift[5], both, rtol=1e-6)
    assert lift[6] == 0.0  # no category, no opinion


def test_the_visit_starts_after_the_last_long_gap(shop: tuple) -> None:
    affinity, _ = shop
    history = np.asarray([3, 4, 0, 0, 1])  # hats yesterday; today shoes, 0 repeated (cart)
    times = np.asarray([0, 60, 90_000, 90_010, 90_070])
    lift = affinity.lift([history], [times]).toarray()[0]
    assert lift[3] == lift[4] == 0.0 and lift[0] > 0
    # Consecutive repeats count once: the visit is two shoe events, share 1.
    np.testing.assert_allclose(lift[0], math.log1p(1.0 / (EPSILON * 0.5)), rtol=1e-6)
    # Without times the newest HISTORY events are the visit: hats count again.
    untimed = affinity.lift([history], [None]).toarray()[0]
    assert untimed[3] > 0
    assert VISIT_GAP < 90_000 - 60 and HISTORY >= history.shape[0]


def test_unknown_and_empty_histories_get_nothing(shop: tuple) -> None:
    affinity, _ = shop
    lift = affinity.lift([np.asarray([], dtype=np.int64), np.asarray([99])], [None, None])
    assert lift.nnz == 0 and lift.shape == (2, 7)


def test_no_categorical_metadata_means_no_term() -> None:
    encoder = FeatureEncoder.fit(None)
    rows = encoder.encode(None, 4)
    assert SessionAffinity.fit(rows, encoder.n_categorical_codes, np.arange(4)) is None


def block_shop() -> TrainingData:
    data = block_data()
    # Each block is a category; the cold items take no category.
    values = [[f"c{i // ITEMS_PER_BLOCK}"] for i in range(N_WARM)]
    values += [[] for _ in range(data.n_items - N_WARM)]
    return replace(data, item_features=categories(data.n_items, values))


def test_affinity_is_part_of_the_model(tmp_path: Path) -> None:
    data = block_shop()
    options = replace(FAST, knn_blend=False, max_epochs=10)
    with_term = make(UserPersonalization, replace(options, affinity_weight=1.5)).fit(data)
    without = make(UserPersonalization, replace(options, affinity=False)).fit(data)
    assert isinstance(with_term, SequentialModel) and isinstance(without, SequentialModel)
    assert with_term.affinity is not None and without.affinity is None
    history = user_history(data, 7)
    query = Query(user=7, history=history, history_times=np.arange(history.shape[0]))
    difference = with_term.score_items([query])[0] - without.score_items([query])[0]
    expected = 1.5 * with_term.affinity.lift([query.history], [query.history_times]).toarray()[0]
    np.testing.assert_allclose(difference, expected, rtol=1e-4, atol=1e-4)
    with_term.save(tmp_path)
    loaded = SequentialModel.load(tmp_path)
    np.testing.assert_array_equal(loaded.score_items([query]), with_term.score_items([query]))
    cands = np.asarray([0, 9, 3, 17], dtype=np.int32)
    ranked = with_term.rank(query, cands)
    np.testing.assert_array_equal(loaded.rank(query, cands), ranked)
    # rank is the softmax of the same logits over the candidates: the term included.
    logits = with_term.score_items([query])[0][cands].astype(np.float64)
    softmax = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(ranked, softmax, rtol=1e-4, atol=1e-6)


def test_a_fixed_affinity_weight_is_in_place_when_the_blend_is_chosen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pertinent.recipes import user_personalization

    seen: list[object] = []
    real = user_personalization.choose_knn

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(args[4] if len(args) > 4 else kwargs.get("fixed"))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(user_personalization, "choose_knn", spy)
    options = replace(FAST, validation_users=36, max_epochs=5, affinity_weight=0.5)
    model = make(UserPersonalization, options).fit(block_shop())
    assert isinstance(model, SequentialModel) and model.meta["affinity_weight"] == 0.5
    assert len(seen) == 1 and callable(seen[0])


def test_affinity_weight_is_tuned_on_validation() -> None:
    data = block_shop()
    options = replace(FAST, validation_users=36, max_epochs=10, patience=10, knn_blend=False)
    model = make(UserPersonalization, options).fit(data)
    assert isinstance(model, SequentialModel)
    assert model.meta["affinity_weight"] in (0.0, 0.125, 0.25, 0.5, 1.0)
    assert (model.affinity is None) == (model.meta["affinity_weight"] == 0.0)


# --- item creation times -------------------------------------------------------------------


def test_absent_items_are_out_of_their_rows_softmax() -> None:
    g = torch.Generator().manual_seed(0)
    n, v, d = 9, 13, 4
    q = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)
    vec = torch.randn(v, d, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(v, generator=g, dtype=torch.float64, requires_grad=True)
    absent = torch.rand(n, v, generator=g) < 0.3
    label = torch.tensor([int((~absent[r]).nonzero()[0, 0]) for r in range(n)])
    future = torch.randint(0, v, (n, 3), generator=g)
    ours = catalogue_loss(q, vec, bias, label, future, 0.5, absent=absent)
    logits = (q @ vec.T + bias).masked_fill(absent, float("-inf"))
    logp = torch.log_softmax(logits, dim=1)
    has = ~absent.gather(1, future)  # a future target absent at the row's time: no term
    fut = torch.where(has, -logp.gather(1, future), 0.0).sum(1) / has.sum(1).clamp_min(1)
    expected = -logp.gather(1, label[:, None])[:, 0] + 0.5 * fut
    torch.testing.assert_close(ours, expected)
    ours.sum().backward()  # type: ignore[no-untyped-call]
    got = [t.grad.clone() for t in (q, vec, bias)]  # type: ignore[union-attr]
    for t in (q, vec, bias):
        t.grad = None
    expected.sum().backward()  # type: ignore[no-untyped-call]
    for mine, theirs in zip(got, (q.grad, vec.grad, bias.grad), strict=True):
        torch.testing.assert_close(mine, theirs)


def with_creation(data: TrainingData, late: int, when: int) -> TrainingData:
    created = np.zeros(data.n_items, dtype=np.int64)
    created[late] = when
    return replace(data, item_creation_time=created)


def test_a_query_with_a_time_leaves_out_items_created_after_it(tmp_path: Path) -> None:
    data = block_data()
    # Cold item 20 (no interactions) "arrives" at t = 10**9.
    model = make(UserPersonalization, replace(FAST, max_epochs=20)).fit(
        with_creation(data, 20, 10**9)
    )
    assert isinstance(model, SequentialModel) and model.created is not None
    history = user_history(data, 7)[:2]
    before = Query(user=7, history=history, time=10**9 - 1)
    after = Query(user=7, history=history, time=10**9)
    now = Query(user=7, history=history)
    s_before, s_after, s_now = model.score_items([before, after, now])
    assert s_before[20] == -np.inf and np.isfinite(s_after[20]) and np.isfinite(s_now[20])
    everything = data.n_items
    assert 20 not in model.recommend(before, everything).items.tolist()
    assert 20 in model.recommend(now, everything).items.tolist()
    # The other items' scores are a softmax over what existed: they sum to 1.
    assert model.recommend(before, everything).scores.sum() == pytest.approx(1.0, rel=1e-5)
    # A candidate not created by the query's time ranks as an unknown one: 0.
    cands = np.asarray([20, 0, 1], dtype=np.int32)
    assert model.rank(before, cands)[0] == 0.0 and model.rank(now, cands)[0] > 0.0
    model.save(tmp_path)
    loaded = SequentialModel.load(tmp_path)
    np.testing.assert_array_equal(loaded.created, model.created)
    np.testing.assert_array_equal(loaded.score_items([before]), model.score_items([before]))


def test_the_sampled_softmax_honours_creation_times() -> None:
    # 8 sampled negatives of a 23-item catalogue: ``absent`` over the sampled candidates.
    data = with_creation(block_data(), 20, 10**9)
    options = replace(FAST, max_epochs=20, negatives=8)
    model = make(UserPersonalization, options).fit(data)
    assert isinstance(model, SequentialModel) and model.created is not None
    query = Query(user=7, history=user_history(data, 7)[:2], time=10**9 - 1)
    scores = model.score_items([query])[0]
    assert scores[20] == -np.inf and np.isfinite(np.delete(scores, 20)).all()


def test_training_counts_an_interaction_before_the_stated_creation() -> None:
    # Item 8 is said to arrive after every event that has it: the events win (its
    # creation becomes its first interaction), so its targets stay in their softmax.
    data = with_creation(block_data(), 8, 10**12)
    model = make(UserPersonalization, replace(FAST, max_epochs=20)).fit(data)
    assert isinstance(model, SequentialModel) and model.created is not None
    first = int(data.interactions.timestamp[data.interactions.item == 8].min())
    assert int(model.created[8]) == first
    user = int(data.interactions.user[data.interactions.item == 8][0])
    history = user_history(data, user)[:2]
    assert 8 in model.recommend(Query(user=user, history=history), ITEMS_PER_BLOCK).items


def test_offline_queries_stand_at_the_newest_input_event() -> None:
    _, test = leave_last_out(block_data())
    for k in range(len(test)):
        query = test.query(k)
        assert query.history_times is not None
        assert query.time == int(query.history_times[-1])


def test_large_catalogues_get_no_term(monkeypatch: pytest.MonkeyPatch) -> None:
    from pertinent.recipes import _affinity

    table = categories(7, [["shoe"]] * 7)
    encoder = FeatureEncoder.fit(table)
    rows = encoder.encode(table, 7)
    assert SessionAffinity.fit(rows, encoder.n_categorical_codes, np.arange(7)) is not None
    monkeypatch.setattr(_affinity, "MAX_ITEMS", 6)
    assert SessionAffinity.fit(rows, encoder.n_categorical_codes, np.arange(7)) is None

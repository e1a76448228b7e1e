"""The legacy HRNN recipes: the contract, then sessions, metadata, cold start and
exploration, hyperparameters, determinism, stopping, and the numpy GRU against torch."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from pertinent.evaluation.loo import subset_interactions
from pertinent.recipes import _recurrent
from pertinent.recipes._features import FeatureEncoder
from pertinent.recipes.base import (
    CategoricalFeature,
    Exploration,
    FeatureTable,
    Interactions,
    NumericFeature,
    Query,
    Recipe,
    TrainingData,
)
from pertinent.recipes.hrnn import (
    SESSION_GAP,
    Hrnn,
    HrnnColdstart,
    HrnnColdstartParams,
    HrnnMetadata,
    HrnnOptions,
    HrnnParams,
    RecurrentModel,
)
from pertinent.recipes.registry import TRAINABLE

from .contract import (
    ITEMS_PER_BLOCK,
    RecipeContract,
    block_data,
    scores_in_each_precision,
    user_history,
)

# Tiny and quick: the block data needs no more to learn its known answer.
FAST = HrnnOptions(max_epochs=30, lr=1e-2, validation_users=0, threads=1)
SMALL = {"hidden_dimension": "32", "bptt": "8"}
N_WARM = 4 * ITEMS_PER_BLOCK  # block_data's items with interactions; 20, 21, 22 are cold
COLD = (20, 21, 22)
RECIPES: tuple[type[Recipe], ...] = (Hrnn, HrnnMetadata, HrnnColdstart)


def make(cls: type[Recipe] = Hrnn, options: HrnnOptions = FAST, **params: str) -> Recipe:
    return cls(cls.parse_params({**SMALL, **params}), options)  # type: ignore[call-arg]


def fit(data: TrainingData, cls: type[Recipe] = Hrnn, **params: str) -> RecurrentModel:
    model = make(cls, **params).fit(data)
    assert isinstance(model, RecurrentModel)
    return model


class _Contract(RecipeContract):
    @classmethod
    def make_recipe(cls) -> Recipe:
        return make(cls.recipe_class)


class TestHrnnContract(_Contract):
    recipe_class = Hrnn


class TestHrnnMetadataContract(_Contract):
    recipe_class = HrnnMetadata


class TestHrnnColdstartContract(_Contract):
    recipe_class = HrnnColdstart


@pytest.fixture(scope="module")
def data() -> TrainingData:
    return block_data()


@pytest.fixture(scope="module")
def coldstart(data: TrainingData) -> RecurrentModel:
    return fit(data, HrnnColdstart)


def top(model: RecurrentModel, query: Query, n: int = 5) -> list[int]:
    return model.recommend(query, n).items.tolist()


def known(data: TrainingData, user: int, **extra: object) -> Query:
    return Query(user=user, history=user_history(data, user), **extra)  # type: ignore[arg-type]


# --- hyperparameters -----------------------------------------------------------------------


def test_registered_as_user_personalization() -> None:
    for cls in RECIPES:
        assert TRAINABLE[cls.name] is cls
        assert cls.recipe_type == "USER_PERSONALIZATION"


def test_defaults_follow_the_spec() -> None:
    for cls in (Hrnn, HrnnMetadata):
        p = cls.parse_params()
        assert isinstance(p, HrnnParams)
        assert (p.hidden_dimension, p.bptt, p.recency_mask) == (43, 32, True)
        assert p.min_user_history_length_percentile == 0.0
        assert p.max_user_history_length_percentile == 0.99
    c = HrnnColdstart.parse_params()
    assert isinstance(c, HrnnColdstartParams)
    assert (c.hidden_dimension, c.bptt) == (149, 32)
    assert c.cold_start_max_interactions == 15
    assert c.cold_start_max_duration == 5.0
    assert c.cold_start_relative_from == "latestItem"
    wire = {"cold_start_relative_from": "currentTime", "cold_start_max_duration": "0.5"}
    parsed = HrnnColdstart.parse_params(wire)
    assert isinstance(parsed, HrnnColdstartParams)
    assert (parsed.cold_start_relative_from, parsed.cold_start_max_duration) == ("currentTime", 0.5)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("hidden_dimension", "31"),
        ("hidden_dimension", "257"),
        ("bptt", "1"),
        ("bptt", "33"),
        ("recency_mask", "maybe"),
        ("min_user_history_length_percentile", "-0.1"),
        ("max_user_history_length_percentile", "1.5"),
    ],
)
def test_bad_values_name_the_parameter(name: str, value: str) -> None:
    for cls in RECIPES:
        with pytest.raises(ValueError, match=f"hyperparameter {name} of recipe {cls.name}"):
            cls.parse_params({name: value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("cold_start_max_interactions", "0"),
        ("cold_start_max_interactions", "2.5"),
        ("cold_start_max_duration", "0"),
        ("cold_start_max_duration", "inf"),
        ("cold_start_relative_from", "yesterday"),
    ],
)
def test_bad_cold_start_values_name_the_parameter(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"hyperparameter {name} of recipe aws-hrnn-coldstart"):
        HrnnColdstart.parse_params({name: value})
    with pytest.raises(ValueError, match=f"Unknown hyperparameter '{name}'"):
        Hrnn.parse_params({name: value})  # cold start is coldstart's alone


def test_percentiles_drop_users_from_training(data: TrainingData) -> None:
    # Block-0 users keep 3 events, the others 5: at min 0.5 block 0 is not trained on.
    inter = data.interactions
    offsets = inter.user_offsets()
    short = np.ones(len(inter), dtype=bool)
    for u in range(12):
        short[offsets[u] + 3 : offsets[u + 1]] = False
    uneven = replace(data, interactions=subset_interactions(inter, short))
    query = known(data, 1)
    assert set(top(fit(uneven), query)) == set(range(5))
    dropped = fit(uneven, min_user_history_length_percentile="0.5")
    assert not set(top(dropped, query)) & set(range(5))


def test_recency_mask_favours_recent_events(data: TrainingData) -> None:
    # block_data's block-0 users are the oldest, block 3's the newest: weighting recent
    # events more moves an empty history's scores from block 0 towards block 3.
    def lean(model: RecurrentModel) -> float:
        scores = model.score_items([Query()])[0]
        return float(scores[15:20].mean() - scores[0:5].mean())

    assert lean(fit(data, recency_mask="true")) > lean(fit(data, recency_mask="false")) + 0.3


def test_hidden_dimension_is_the_width(data: TrainingData) -> None:
    assert fit(data, hidden_dimension="40").V.shape == (data.n_items, 40)


def test_sampled_softmax_learns_too(data: TrainingData) -> None:
    # 8 sampled negatives of a 23-item catalogue exercise the large-catalogue path.
    model = make(HrnnMetadata, replace(FAST, negatives=8, max_epochs=60)).fit(data)
    assert isinstance(model, RecurrentModel)
    hits = 0
    for user in (0, 5, 12, 20, 30):
        block = int(user_history(data, user)[0]) // ITEMS_PER_BLOCK
        hits += len(set(top(model, known(data, user))) & set(range(5 * block, 5 * block + 5)))
    assert hits >= 20


# --- sessions ------------------------------------------------------------------------------


def session_data(n_users: int = 48, seed: int = 0) -> TrainingData:
    """Users with 4 sessions of 4 events, each session of one taste (block 0 or 1), the
    taste changing at random between sessions; sessions are 2 hours apart."""
    rng = np.random.default_rng(seed)
    users, items, times = [], [], []
    for u in range(n_users):
        for s in range(4):
            taste = int(rng.integers(2))
            for k, i in enumerate(rng.permutation(ITEMS_PER_BLOCK)[:4]):
                users.append(u)
                items.append(taste * ITEMS_PER_BLOCK + int(i))
                times.append(1_000_000 * u + 7_200 * s + 60 * k)
    inter = Interactions(
        user=np.asarray(users, dtype=np.int32),
        item=np.asarray(items, dtype=np.int32),
        timestamp=np.asarray(times, dtype=np.int64),
        n_users=n_users,
        n_items=2 * ITEMS_PER_BLOCK,
    )
    return TrainingData(inter, seed=seed)


def test_the_newest_session_decides() -> None:
    model = fit(session_data(), Hrnn, bptt="16")
    a, b = [0, 1, 2, 3], [5, 6, 7]
    history = np.asarray(a + a[::-1] + b, dtype=np.int32)
    times = np.concatenate(
        [np.arange(4) * 60, 7_200 + np.arange(4) * 60, 14_400 + np.arange(3) * 60]
    )
    query = Query(history=history, history_times=times.astype(np.int64))
    assert set(top(model, query, 2)) <= set(range(5, 10))  # taste B, from a session of 3
    flipped = Query(history=np.asarray(b + a, dtype=np.int32))
    assert set(top(model, flipped, 2)) <= set(range(5))


def test_history_times_split_sessions(data: TrainingData) -> None:
    model = fit(data)
    history = np.asarray([0, 1, 2, 3], dtype=np.int32)
    one = model.score_items([Query(history=history)])
    close = np.asarray([0, 60, 120, 180], dtype=np.int64)
    apart = np.asarray([0, 60, 60 + 2 * SESSION_GAP, 120 + 2 * SESSION_GAP], dtype=np.int64)
    np.testing.assert_array_equal(one, model.score_items([Query(history, history_times=close)]))
    split = model.score_items([Query(history, history_times=apart)])
    assert not np.allclose(one, split)  # the user GRU ran and the session restarted


def test_only_the_newest_bptt_events_count(data: TrainingData) -> None:
    model = fit(data, bptt="4")
    tail = np.asarray([6, 7, 8, 9], dtype=np.int32)
    long = np.concatenate([np.asarray([15, 16, 17], dtype=np.int32), tail])
    np.testing.assert_array_equal(
        model.score_items([Query(history=tail)]), model.score_items([Query(history=long)])
    )


# --- metadata, cold start, exploration ------------------------------------------------------


def with_item_genres(data: TrainingData, genres: list[str]) -> TrainingData:
    vocabulary = tuple(sorted(set(genres)))
    codes = np.asarray([vocabulary.index(g) for g in genres], dtype=np.int32)
    offsets = np.arange(data.n_items + 1, dtype=np.int64)
    table = FeatureTable(
        data.n_items,
        (CategoricalFeature("GENRE", offsets, codes, vocabulary),),
        (NumericFeature("PRICE", np.linspace(1, 100, data.n_items).astype(np.float32)),),
    )
    return replace(data, item_features=table)


GENRES = [f"g{i // ITEMS_PER_BLOCK}" for i in range(N_WARM)] + ["g0", "g1", "g3"]


def test_metadata_scores_cold_items(data: TrainingData) -> None:
    # Cold item 20 looks like block 0, 22 like block 3.
    with_meta = with_item_genres(data, GENRES)
    s0, s3 = fit(with_meta, HrnnMetadata).score_items([known(data, 0), known(data, 35)])
    assert s0[20] > s0[22]
    assert s3[22] > s3[20]
    plain = fit(with_meta, Hrnn).score_items([known(data, 0)])[0]
    assert plain[20] == plain[22]  # aws-hrnn reads interactions only


def test_new_items_are_scored_by_metadata(data: TrainingData) -> None:
    model = fit(with_item_genres(data, GENRES), HrnnColdstart)
    extended = model.with_new_items([{"GENRE": "g3"}, {"GENRE": "g0", "PRICE": "3"}])
    assert extended.n_items == data.n_items + 2
    scores = extended.score_items([known(data, 1)])[0]
    assert scores[data.n_items + 1] > scores[data.n_items]  # a block-0 user
    query = known(data, 1, exploration=Exploration(weight=1.0))
    assert set(top(extended, query, 5)) == set(COLD) | {data.n_items, data.n_items + 1}


def test_exploration_only_with_positive_weight(
    data: TrainingData, coldstart: RecurrentModel
) -> None:
    for user in (0, 15, 33):
        query = known(data, user)
        never = top(coldstart, replace(query, exploration=Exploration(weight=0.0)), 5)
        assert not set(never) & set(COLD), user
        assert top(coldstart, query, 5) == never  # no exploration config: pure relevance
        always = top(coldstart, replace(query, exploration=Exploration(weight=1.0)), 5)
        assert set(always[:3]) == set(COLD), user
    metadata = fit(data, HrnnMetadata)  # explores nothing
    query = known(data, 0)
    assert top(metadata, replace(query, exploration=Exploration(weight=1.0)), 5) == top(
        metadata, query, 5
    )


def test_cold_start_hyperparameters_say_which_items_are_cold(data: TrainingData) -> None:
    newest = int(data.interactions.timestamp.max())
    created = np.full(data.n_items, newest - 100 * 86_400, dtype=np.int64)
    created[[0, 20]] = newest  # warm item 0 (12 interactions) and cold 20 are brand new
    created[21] = newest - 3 * 86_400
    with_times = replace(data, item_creation_time=created)
    default = fit(with_times, HrnnColdstart)
    assert np.flatnonzero(default.cold_items()).tolist() == [0, 20, 21]
    strict = fit(with_times, HrnnColdstart, cold_start_max_interactions="5")
    assert np.flatnonzero(strict.cold_items()).tolist() == [20, 21]
    short = fit(with_times, HrnnColdstart, cold_start_max_duration="1.5")
    assert np.flatnonzero(short.cold_items()).tolist() == [0, 20]
    now = fit(with_times, HrnnColdstart, cold_start_relative_from="currentTime")
    assert np.flatnonzero(now.cold_items(now=newest + 2 * 86_400)).tolist() == [0, 20, 21]
    assert not now.cold_items().any()  # today, the items of the data are long past
    query = known(data, 30, exploration=Exploration(weight=1.0))
    assert set(top(strict, query, 2)) == {20, 21}
    assert 22 not in top(strict, query, 5)  # 100 days old: not cold


# --- determinism, stopping, persistence -------------------------------------------------------


def test_either_precision_is_reproducible_and_honoured(data: TrainingData) -> None:
    queries = [known(data, u) for u in (0, 13)]
    scores_in_each_precision(lambda bf16: make(Hrnn, replace(FAST, bf16=bf16)), data, queries)


def test_same_seed_identical_scores(data: TrainingData) -> None:
    queries = [known(data, u) for u in (0, 13, 30)] + [Query()]
    first = fit(data, HrnnColdstart).score_items(queries)
    np.testing.assert_array_equal(first, fit(data, HrnnColdstart).score_items(queries))
    other = make(HrnnColdstart).fit(replace(data, seed=1))
    assert isinstance(other, RecurrentModel)
    assert not np.array_equal(first, other.score_items(queries))


def test_max_epochs_caps_and_stop_is_polled_per_epoch(data: TrainingData) -> None:
    recipe = make(Hrnn, replace(FAST, max_epochs=50))
    polls: list[int] = []
    recipe.stop_requested = lambda: bool(polls.append(1))
    recipe.max_epochs = 3  # the operator's cap wins over the recipe's 50
    recipe.fit(data)
    assert len(polls) == 3

    stopping = make(Hrnn, replace(FAST, max_epochs=50))
    calls: list[int] = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 2

    stopping.stop_requested = stop
    model = stopping.fit(data)
    assert len(calls) == 3
    assert len(top(model, known(data, 0), 5)) == 5  # usable, if undertrained


def test_validation_and_knn_blend(data: TrainingData, tmp_path: Path) -> None:
    options = replace(FAST, validation_users=36, patience=3)
    model = make(HrnnColdstart, options).fit(data)
    assert isinstance(model, RecurrentModel)
    assert model.meta["knn_weight"] in (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
    assert (model.knn is None) == (model.meta["knn_weight"] == 0.0)
    model.save(tmp_path)
    loaded = RecurrentModel.load(tmp_path)
    query = known(data, 7, exploration=Exploration(weight=0.5))
    np.testing.assert_array_equal(loaded.score_items([query]), model.score_items([query]))


def test_scores_and_rank_are_softmaxes(coldstart: RecurrentModel, data: TrainingData) -> None:
    ranked = coldstart.recommend(known(data, 3), data.n_items)
    assert ranked.scores is not None
    assert ranked.scores.sum() == pytest.approx(1.0, abs=1e-4)
    probs = coldstart.rank(known(data, 3), np.asarray([0, 9, 99, 3], dtype=np.int32))
    assert probs[2] == 0.0 and probs.sum() == pytest.approx(1.0, abs=1e-5)


def test_score_items_batches_like_single_queries(
    coldstart: RecurrentModel, data: TrainingData
) -> None:
    queries = [known(data, u) for u in (0, 12, 33)] + [Query(), Query(history=np.asarray([4]))]
    batched = coldstart.score_items(queries)
    for row, query in enumerate(queries):
        np.testing.assert_allclose(batched[row], coldstart.score_items([query])[0], atol=1e-5)


def test_the_hrnn_model_batches(coldstart: RecurrentModel) -> None:
    # Served through serving/batching.py's scoring threads; the contract suite checks
    # that recommend_many answers as recommend does.
    assert coldstart.batches


def test_load_rejects_other_formats(tmp_path: Path) -> None:
    (tmp_path / "model.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="does not hold"):
        RecurrentModel.load(tmp_path)


def test_numpy_gru_matches_torch() -> None:
    torch.manual_seed(0)
    cfg = _recurrent.HrnnConfig(n_items=12, dim=8, max_len=6, dropout=0.0)
    net = _recurrent.HrnnNet(cfg)
    net.has_id.fill_(1.0)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.5)
    net.eval()
    tokens = torch.tensor([[3, 5, 7, 1, 2, 9], [13, 13, 4, 4, 11, 0]])  # 13: padding
    boundary = torch.tensor([[0, 1, 0, 0, 1, 0], [0, 0, 0, 1, 0, 0]], dtype=torch.bool)
    with torch.no_grad():
        vec, _ = net.item_vectors()
        expected = net.query(net.states(tokens, boundary, vec)[:, -1]).numpy()
    empty = FeatureEncoder([], [])
    model = RecurrentModel(
        _recurrent.numpy_state(net),
        item_rows=empty.encode(None, cfg.n_items),
        user_rows=empty.encode(None, 0),
        encoders={"item": empty, "user": empty, "context": empty},
        cold=None,
        meta={"n_items": 12, "max_len": 6},
    )
    # Session boundary after position p: the gap between items p and p + 1.
    times0 = np.cumsum([0, 60, 2 * SESSION_GAP, 60, 60, 2 * SESSION_GAP])
    times1 = np.cumsum([0, 60, 2 * SESSION_GAP, 60])
    got = model.query_vectors(
        [
            Query(history=np.asarray([3, 5, 7, 1, 2, 9]), history_times=times0),
            Query(history=np.asarray([4, 4, 11, 0]), history_times=times1),
        ]
    )
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)

"""User-Personalization (v1, v2) and Personalized-Ranking (v1, v2): the contract, then
what each input and knob does: metadata, context, impressions, weights, exploration,
ranking, determinism, persistence, stopping, and the serving encoder against training's."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from pertinent.recipes import _torch
from pertinent.recipes._features import FeatureEncoder
from pertinent.recipes._knn import ItemKNN
from pertinent.recipes.base import (
    CategoricalFeature,
    Exploration,
    FeatureTable,
    Interactions,
    NumericFeature,
    Query,
    Recipe,
    TrainingData,
    WarmStart,
)
from pertinent.recipes.registry import TRAINABLE
from pertinent.recipes.sequential import session_mask
from pertinent.recipes.user_personalization import (
    UPDATE_EPOCHS,
    PersonalizedRanking,
    PersonalizedRankingV2,
    SequentialModel,
    TrainingOptions,
    UserPersonalization,
    UserPersonalizationV2,
    _validation_rows,
    default_negatives,
    planned_epochs,
    within_percentiles,
)

from .contract import (
    ITEMS_PER_BLOCK,
    RecipeContract,
    block_data,
    scores_in_each_precision,
    user_history,
)

# Tiny and quick: the block data needs no more to learn its known answer.
FAST = TrainingOptions(
    max_epochs=60, lr=1e-2, layers=1, dim=32, max_len=8, validation_users=0, threads=1
)
SMALL_V1 = {"hidden_dimension": "32", "bptt": "8"}
N_WARM = 4 * ITEMS_PER_BLOCK  # block_data's items with interactions; 20, 21, 22 are cold
COLD = (20, 21, 22)


def make(cls: type[Recipe], options: TrainingOptions = FAST, **params: str) -> Recipe:
    if cls in (UserPersonalization, PersonalizedRanking):
        params = {**SMALL_V1, **params}
    recipe = cls(cls.parse_params(params), options)  # type: ignore[call-arg]
    return recipe


def fit(
    data: TrainingData, cls: type[Recipe] = UserPersonalization, **params: str
) -> SequentialModel:
    model = make(cls, **params).fit(data)
    assert isinstance(model, SequentialModel)
    return model


class _Contract(RecipeContract):
    @classmethod
    def make_recipe(cls) -> Recipe:
        return make(cls.recipe_class)


class TestUserPersonalizationContract(_Contract):
    recipe_class = UserPersonalization


class TestUserPersonalizationV2Contract(_Contract):
    recipe_class = UserPersonalizationV2


class TestPersonalizedRankingContract(_Contract):
    recipe_class = PersonalizedRanking


class TestPersonalizedRankingV2Contract(_Contract):
    recipe_class = PersonalizedRankingV2


@pytest.fixture(scope="module")
def data() -> TrainingData:
    return block_data()


@pytest.fixture(scope="module")
def model(data: TrainingData) -> SequentialModel:
    return fit(data)


def top(model: SequentialModel, query: Query, n: int = 5) -> list[int]:
    return model.recommend(query, n).items.tolist()


def known(data: TrainingData, user: int, **extra: object) -> Query:
    return Query(user=user, history=user_history(data, user), **extra)  # type: ignore[arg-type]


# --- hyperparameters -----------------------------------------------------------------------


def test_registered() -> None:
    for cls in (UserPersonalization, UserPersonalizationV2, PersonalizedRanking):
        assert TRAINABLE[cls.name] is cls
    assert TRAINABLE["aws-personalized-ranking-v2"] is PersonalizedRankingV2


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("hidden_dimension", "31"),
        ("hidden_dimension", "257"),
        ("hidden_dimension", "64.5"),
        ("bptt", "1"),
        ("bptt", "33"),
        ("recency_mask", "maybe"),
        ("min_user_history_length_percentile", "-0.1"),
        ("max_user_history_length_percentile", "1.5"),
        ("max_user_history_length_percentile", "nan"),
    ],
)
def test_bad_v1_values_name_the_parameter(name: str, value: str) -> None:
    for cls in (UserPersonalization, PersonalizedRanking):
        with pytest.raises(ValueError, match=f"hyperparameter {name} of recipe {cls.name}"):
            cls.parse_params({name: value})


def test_percentiles_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="max_user_history_length_percentile.*at least min"):
        UserPersonalization.parse_params(
            {
                "min_user_history_length_percentile": "0.6",
                "max_user_history_length_percentile": "0.5",
            }
        )


def test_v1_values_parse_from_strings() -> None:
    params = UserPersonalization.parse_params(
        {"hidden_dimension": "64", "bptt": "2", "recency_mask": "false"}
    )
    assert params.model_dump() == {
        "hidden_dimension": 64,
        "bptt": 2,
        "recency_mask": False,
        "min_user_history_length_percentile": 0.0,
        "max_user_history_length_percentile": 0.99,
    }


def test_v2_has_only_apply_recency_bias() -> None:
    for cls in (UserPersonalizationV2, PersonalizedRankingV2):
        assert cls.parse_params({"apply_recency_bias": "false"}).model_dump() == {
            "apply_recency_bias": False
        }
        with pytest.raises(ValueError, match="Unknown hyperparameter 'hidden_dimension'"):
            cls.parse_params({"hidden_dimension": "64"})
        with pytest.raises(ValueError, match="hyperparameter apply_recency_bias"):
            cls.parse_params({"apply_recency_bias": "often"})


def test_within_percentiles() -> None:
    counts = np.asarray([0, 1, 2, 3, 4, 100], dtype=np.int64)
    assert within_percentiles(counts, 0.0, 1.0).tolist() == [False] + [True] * 5
    assert within_percentiles(counts, 0.0, 0.75).tolist() == [False, True, True, True, True, False]
    assert within_percentiles(counts, 0.25, 1.0).tolist() == [False, False, True, True, True, True]


def test_validation_holds_out_new_items_only() -> None:
    # Rows by user: 0 ends on an item it had before, 1 and 3 on new ones, 2 is too short.
    user = np.asarray([0, 0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3], dtype=np.int64)
    item = np.asarray([5, 6, 7, 5, 1, 2, 3, 4, 5, 6, 6, 7], dtype=np.int64)
    lengths = np.bincount(user)
    kept = np.ones(4, dtype=bool)
    rows = _validation_rows(user, item, kept, lengths, 10, np.random.default_rng(0))
    assert rows.tolist() == [6, 11]
    assert _validation_rows(user, item, kept, lengths, 1, np.random.default_rng(0)).shape == (1,)


def test_history_percentiles_drop_users_from_training(data: TrainingData) -> None:
    # A "bot" with a 60-event history is the only one to touch items 20-22.
    inter = data.interactions
    bot = data.n_users
    with_bot = replace(
        data,
        interactions=replace(
            inter,
            user=np.concatenate([inter.user, np.full(60, bot, dtype=np.int32)]),
            item=np.concatenate([inter.item, np.resize(np.asarray(COLD, dtype=np.int32), 60)]),
            timestamp=np.concatenate([inter.timestamp, np.arange(60, dtype=np.int64) + 10**6]),
            n_users=bot + 1,
        ),
    )
    kept = fit(with_bot, max_user_history_length_percentile="1.0")
    dropped = fit(with_bot, max_user_history_length_percentile="0.95")
    assert kept.net.has_id[list(COLD)].tolist() == [1.0, 1.0, 1.0]
    assert dropped.net.has_id[list(COLD)].tolist() == [0.0, 0.0, 0.0]  # never trained on
    # The dropped user is still answered (the model has no per-user parameters).
    assert len(top(dropped, Query(user=bot, history=np.asarray(COLD, dtype=np.int32)))) == 5


# --- answers -------------------------------------------------------------------------------


def test_scores_are_a_softmax_over_the_catalogue(
    model: SequentialModel, data: TrainingData
) -> None:
    query = known(data, 3)
    ranked = model.recommend(query, data.n_items)
    assert ranked.scores is not None
    assert abs(float(ranked.scores.sum()) - 1.0) < 1e-4
    logits = model.score_items([query])[0].astype(np.float64)
    softmax = np.exp(logits - logits.max())
    softmax /= softmax.sum()
    np.testing.assert_allclose(ranked.scores, softmax[ranked.items], rtol=1e-4, atol=1e-7)
    # A filtered list keeps the whole-catalogue scores.
    allowed = np.zeros(data.n_items, dtype=bool)
    allowed[ranked.items[3:8]] = True
    filtered = model.recommend(query, 3, allowed)
    assert filtered.scores is not None
    np.testing.assert_allclose(filtered.scores, ranked.scores[3:6], rtol=1e-5)


def test_rank_is_a_softmax_over_the_candidates(data: TrainingData) -> None:
    model = fit(data, PersonalizedRanking)
    query = known(data, 0)
    candidates = np.asarray([7, 2, 15, 0, 21], dtype=np.int32)
    scores = model.rank(query, candidates)
    assert scores.shape == (5,)
    assert abs(float(scores.sum()) - 1.0) < 1e-5
    # Same order as the catalogue logits; the block-0 items win.
    logits = model.score_items([query])[0][candidates]
    assert np.argsort(-scores).tolist() == np.argsort(-logits).tolist()
    assert set(candidates[np.argsort(-scores)[:2]].tolist()) == {0, 2}


def test_rank_gives_unknown_candidates_zero(data: TrainingData) -> None:
    model = fit(data, PersonalizedRankingV2)
    scores = model.rank(known(data, 0), np.asarray([1, data.n_items, -1, 3], dtype=np.int32))
    assert scores[1] == 0.0 and scores[2] == 0.0
    assert abs(float(scores[[0, 3]].sum()) - 1.0) < 1e-5
    assert model.rank(Query(), np.asarray([data.n_items + 4], dtype=np.int32)).tolist() == [0.0]


def test_score_items_batches_like_single_queries(
    model: SequentialModel, data: TrainingData
) -> None:
    queries = [known(data, u) for u in (0, 13, 25)] + [Query(), Query(history=np.arange(12))]
    batch = model.score_items(queries)
    for row, query in enumerate(queries):
        np.testing.assert_allclose(batch[row], model.score_items([query])[0], rtol=1e-5, atol=1e-5)


def test_ties_across_the_cut_go_to_the_lower_index(data: TrainingData) -> None:
    # Exploration weight 0 pushes every never-seen item to one equal lowest logit.
    model = fit(data, UserPersonalization)
    query = replace(known(data, 0), exploration=Exploration(weight=0.0))
    n_seen = N_WARM
    ranked = model.recommend(query, n_seen + 2)
    assert ranked.items[n_seen:].tolist() == [COLD[0], COLD[1]]


@pytest.fixture(scope="module")
def two_block_model(data: TrainingData) -> SequentialModel:
    trained = make(UserPersonalization, replace(FAST, layers=2, max_epochs=5)).fit(data)
    assert isinstance(trained, SequentialModel) and trained.cfg.layers == 2
    return trained


@pytest.mark.parametrize("blocks", [1, 2])
def test_serving_encoder_matches_the_training_module(
    blocks: int, model: SequentialModel, two_block_model: SequentialModel
) -> None:
    # Serving runs every block but the last in full and the last for one row: both paths.
    model = model if blocks == 1 else two_block_model
    rng = np.random.default_rng(0)
    net = model.net.eval()
    # Each block's same-session bias was learnt (on by default), so both paths use it.
    assert all(b.session_bias is not None and bool(b.session_bias.ne(0).all()) for b in net.blocks)
    vec = torch.tensor(model.V)
    for length in (0, 1, 3, 7, 8, 20):  # 8 = max_len: longer histories keep the newest
        history = rng.integers(0, N_WARM, size=length).astype(np.int32)
        times = np.cumsum(rng.integers(0, 100_000, size=length)).astype(np.int64)
        query = Query(history=history, history_times=times)
        tokens, gaps = model._tokens(query)
        assert gaps.max(initial=0) > 0 or length < 2
        with torch.no_grad():
            expected = net.encode(
                torch.from_numpy(tokens[None]), vec, gaps=torch.from_numpy(gaps[None])
            )[0, -1].numpy()
        got = model.query_vectors([query])[0]
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_a_padded_batch_encodes_like_its_queries_alone(two_block_model: SequentialModel) -> None:
    # Rows of different lengths (right padding), sessions of several events, two blocks.
    rng = np.random.default_rng(1)
    queries = []
    for length in (0, 2, 5, 8, 13):
        history = rng.integers(0, N_WARM, size=length).astype(np.int32)
        gaps = np.where(rng.random(length) < 0.3, 10_000, 60)  # 30 % open a session
        queries.append(Query(history=history, history_times=np.cumsum(gaps).astype(np.int64)))
    batch = two_block_model.query_vectors(queries)
    for row, query in enumerate(queries):
        alone = two_block_model.query_vectors([query])[0]
        np.testing.assert_allclose(batch[row], alone, rtol=1e-5, atol=1e-6)


def test_session_mask_groups_tokens_between_long_gaps() -> None:
    # Buckets: 0 at BOS, then the tokens' gaps; 12 or more opens a session.
    gaps = torch.tensor([[0, 3, 12, 5, 20, 0], [0, 0, 1, 2, 3, 4]])
    same = session_mask(gaps, 12)
    assert same[0, 3].tolist() == [False, False, True, True, False, False]
    assert same[0, 0].tolist() == [True, True, False, False, False, False]
    assert same[0, 5].tolist() == [False, False, False, False, True, True]
    assert bool(same[1].all())


def test_unknown_history_items_are_ignored(model: SequentialModel) -> None:
    with_junk = Query(history=np.asarray([0, 999, 1, -5], dtype=np.int32))
    clean = Query(history=np.asarray([0, 1], dtype=np.int32))
    np.testing.assert_array_equal(model.score_items([with_junk]), model.score_items([clean]))


def test_time_gaps_between_events_are_read() -> None:
    # Every user takes item 0, then item 1, then item 2 when item 1 came a minute after
    # item 0 and item 3 when it came days later: only the gap tells the two apart.
    rows = []
    for u in range(40):
        gap = 30 if u % 2 == 0 else 5 * 86_400
        start = u * 10**7
        rows += [(u, 0, start), (u, 1, start + gap), (u, 2 + u % 2, start + gap + 60)]
    user = np.asarray([r[0] for r in rows], dtype=np.int32)
    item = np.asarray([r[1] for r in rows], dtype=np.int32)
    time = np.asarray([r[2] for r in rows], dtype=np.int64)
    data = TrainingData(Interactions(user=user, item=item, timestamp=time, n_users=40, n_items=4))

    def first(model: SequentialModel, gap: int) -> int:
        times = np.asarray([0, gap], dtype=np.int64)
        query = Query(history=np.asarray([0, 1], dtype=np.int32), history_times=times)
        return top(model, query, 1)[0]

    model = fit(data)
    assert (first(model, 30), first(model, 5 * 86_400)) == (2, 3)
    blind = make(UserPersonalization, replace(FAST, gaps=False)).fit(data)
    assert isinstance(blind, SequentialModel)
    assert first(blind, 30) == first(blind, 5 * 86_400)


def test_empty_history_gets_popular_items() -> None:
    # Without recency weighting, block 0 (most of the users) dominates first events.
    model = fit(block_data(block_users=(30, 4, 4, 4)), recency_mask="false")
    assert set(top(model, Query(), 5)) == set(range(ITEMS_PER_BLOCK))


# --- determinism, persistence, stopping --------------------------------------------------


def test_same_seed_identical_scores(data: TrainingData) -> None:
    queries = [known(data, u) for u in (0, 20)] + [Query()]
    first = fit(data).score_items(queries)
    np.testing.assert_array_equal(fit(data).score_items(queries), first)
    other = fit(replace(data, seed=1)).score_items(queries)
    assert not np.array_equal(other, first)


def test_either_precision_is_reproducible_and_honoured(data: TrainingData) -> None:
    queries = [known(data, u) for u in (0, 20)] + [Query()]
    make_with = lambda bf16: make(UserPersonalization, replace(FAST, bf16=bf16))  # noqa: E731
    for rows in scores_in_each_precision(make_with, data, queries).values():
        # Both learn the blocks: user 0's (block 0) items come first.
        assert set(np.argsort(-rows[0])[:ITEMS_PER_BLOCK].tolist()) == set(range(ITEMS_PER_BLOCK))


def test_save_load_round_trip(model: SequentialModel, data: TrainingData, tmp_path: Path) -> None:
    model.save(tmp_path)
    state = torch.load(tmp_path / "weights.pt", weights_only=True)  # no arbitrary pickle
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    loaded = SequentialModel.load(tmp_path)
    queries = [known(data, 4), Query(), Query(exploration=Exploration(0.5))]
    np.testing.assert_array_equal(loaded.score_items(queries), model.score_items(queries))
    cands = np.asarray([1, 5, 9, 21], dtype=np.int32)
    np.testing.assert_array_equal(loaded.rank(queries[0], cands), model.rank(queries[0], cands))


def test_load_rejects_other_formats(tmp_path: Path) -> None:
    (tmp_path / "model.json").write_text('{"format": "pertinent.sims", "version": 1}')
    with pytest.raises(ValueError, match="does not hold"):
        SequentialModel.load(tmp_path)


def test_stop_requested_ends_training_between_epochs(data: TrainingData) -> None:
    recipe = make(UserPersonalization, replace(FAST, max_epochs=50))
    polls: list[int] = []

    def stop() -> bool:
        polls.append(1)
        return len(polls) > 2  # two epochs, then stop

    recipe.stop_requested = stop
    model = recipe.fit(data)
    # Polled once per epoch: stopped after the third poll, plus one check (True, so
    # skipped) before the item-kNN blend; 50 epochs would have polled 50 times.
    assert len(polls) == 4
    assert len(top(model, known(data, 0), 5)) == 5  # a usable (if undertrained) model


def test_sampled_softmax_learns_too(data: TrainingData) -> None:
    # 8 sampled negatives of a 23-item catalogue exercise the large-catalogue path.
    model = make(UserPersonalizationV2, replace(FAST, negatives=8, max_epochs=80)).fit(data)
    assert isinstance(model, SequentialModel)
    hits = 0
    for user in (0, 5, 12, 20, 30):
        block = int(user_history(data, user)[0]) // ITEMS_PER_BLOCK
        hits += len(set(top(model, known(data, user), 5)) & set(range(5 * block, 5 * block + 5)))
    assert hits >= 20


def test_device_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _torch.choose_device("cpu").type == "cpu"
    monkeypatch.setenv("PERTINENT_DEVICE", "cpu")
    assert _torch.choose_device().type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            _torch.choose_device("cuda")
        monkeypatch.delenv("PERTINENT_DEVICE")
        assert _torch.choose_device().type == "cpu"


def test_reproducible_restores_global_settings() -> None:
    threads = torch.get_num_threads()
    with _torch.reproducible(0, torch.device("cpu"), threads=1):
        assert torch.get_num_threads() == 1
        assert torch.are_deterministic_algorithms_enabled()
    assert torch.get_num_threads() == threads
    assert not torch.are_deterministic_algorithms_enabled()


# --- metadata, context, impressions, weights ----------------------------------------------


def with_item_genres(data: TrainingData, genres: list[str]) -> TrainingData:
    vocabulary = tuple(sorted(set(genres)))
    codes = np.asarray([vocabulary.index(g) for g in genres], dtype=np.int32)
    table = FeatureTable(
        data.n_items,
        (
            CategoricalFeature(
                "GENRE", np.arange(data.n_items + 1, dtype=np.int64), codes, vocabulary
            ),
        ),
        (NumericFeature("PRICE", np.linspace(1, 100, data.n_items).astype(np.float32)),),
    )
    return replace(data, item_features=table)


def test_metadata_scores_cold_items(data: TrainingData) -> None:
    # Warm items carry their block as genre; cold item 20 looks like block 0, 22 like block 3.
    genres = [f"g{i // ITEMS_PER_BLOCK}" for i in range(N_WARM)] + ["g0", "g1", "g3"]
    model = fit(with_item_genres(data, genres))
    block0, block3 = known(data, 0), known(data, 35)
    s0, s3 = model.score_items([block0, block3])
    assert s0[20] > s0[22]
    assert s3[22] > s3[20]
    plain = fit(data).score_items([block0])[0]
    assert plain[20] == plain[22]  # without metadata, cold items are indistinguishable


def test_exploration_weight_brings_cold_items(data: TrainingData, model: SequentialModel) -> None:
    for user in (0, 15, 33):
        query = known(data, user)
        never = top(model, replace(query, exploration=Exploration(weight=0.0)), 5)
        assert not set(never) & set(COLD), user
        assert top(model, query, 5) == never  # no exploration config: pure relevance
        always = top(model, replace(query, exploration=Exploration(weight=1.0)), 5)
        assert set(always[:3]) == set(COLD), user


def test_exploration_follows_metadata_and_age(data: TrainingData) -> None:
    genres = [f"g{i // ITEMS_PER_BLOCK}" for i in range(N_WARM)] + ["g0", "g1", "g3"]
    newest = int(data.interactions.timestamp.max())
    created = np.full(data.n_items, 0, dtype=np.int64)
    created[list(COLD)] = [newest, newest - 5 * 86_400, newest - 400 * 86_400]  # 22 is a year old
    model = fit(replace(with_item_genres(data, genres), item_creation_time=created))
    query = known(data, 0, exploration=Exploration(weight=1.0, item_age_cutoff_days=30))
    assert top(model, query, 2) == [20, 21]  # both young; 20 matches the user's genre
    assert 22 not in top(model, query, 5)  # too old to explore
    wide = replace(query, exploration=Exploration(weight=1.0, item_age_cutoff_days=1000))
    assert 22 in top(model, wide, 3)
    assert top(fit(data, PersonalizedRanking), query, 5) == top(
        fit(data, PersonalizedRanking), replace(query, exploration=None), 5
    )


def with_impressions(data: TrainingData, shown: dict[int, list[int]]) -> TrainingData:
    """Impressions for every row: ``shown[block]`` are shown alongside each choice."""
    inter = data.interactions
    lists = [shown.get(int(i) // ITEMS_PER_BLOCK, []) for i in inter.item]
    offsets = np.zeros(len(inter) + 1, dtype=np.int64)
    np.cumsum([len(x) for x in lists], out=offsets[1:])
    items = np.asarray([i for x in lists for i in x], dtype=np.int32)
    return replace(data, interactions=replace(inter, impressions=(offsets, items)))


def test_impressions_are_hard_negatives(data: TrainingData, model: SequentialModel) -> None:
    # Item 1 is shown at every event of block-0 users and chosen only once each:
    # the model learns to like it less than its block mates.
    trained = fit(with_impressions(data, {0: [1]}))
    queries = [known(data, user) for user in range(12)]  # block 0

    def margin(m: SequentialModel) -> float:
        scores = m.score_items(queries)
        return float((scores[:, 1] - scores[:, [0, 2, 3, 4]].mean(axis=1)).mean())

    assert margin(trained) < margin(model) - 0.5


def test_impressions_lower_exploration(data: TrainingData) -> None:
    # Cold items 20 and 21 are both new; 21 was shown 72 times and never chosen.
    shown = fit(with_impressions(data, {0: [21], 1: [21]}))
    assert shown.exploration is not None
    assert shown.exploration.impressions[21] > 0 and shown.exploration.impressions[20] == 0
    query = known(data, 30, exploration=Exploration(weight=1.0))
    ranked = top(shown, query, data.n_items)
    assert ranked.index(20) < ranked.index(21)
    assert ranked.index(22) < ranked.index(21)


def test_event_weights_count(data: TrainingData, model: SequentialModel) -> None:
    # Rows of item 0 weigh nothing: the model no longer learns to predict it.
    inter = data.interactions
    weight = np.where(inter.item == 0, 0.0, 1.0).astype(np.float32)
    weighted = fit(replace(data, interactions=replace(inter, weight=weight)))
    query = known(data, 0)
    assert 0 in top(model, query, 5)

    def log_p0(m: SequentialModel) -> float:
        logits = m.score_items([query])[0].astype(np.float64)
        return float(logits[0] - np.logaddexp.reduce(logits))

    assert log_p0(weighted) < log_p0(model)


def segment_data(context: bool) -> TrainingData:
    """Users whose first event is block 0 on 'mobile' and block 1 on 'desktop'.

    The Users table says the same with SEGMENT a / b, so either signal is learnable.
    """
    users, items, times, device = [], [], [], []
    rng = np.random.default_rng(0)
    for u in range(60):
        block = u % 2
        for step in range(4):
            users.append(u)
            items.append(block * ITEMS_PER_BLOCK + int(rng.integers(ITEMS_PER_BLOCK)))
            times.append(1000 * step + u)
            device.append(block)
    n = len(users)
    table = FeatureTable(
        n,
        (
            CategoricalFeature(
                "DEVICE",
                np.arange(n + 1, dtype=np.int64),
                np.asarray(device, dtype=np.int32),
                ("mobile", "desktop"),
            ),
        ),
    )
    inter = Interactions(
        user=np.asarray(users, dtype=np.int32),
        item=np.asarray(items, dtype=np.int32),
        timestamp=np.asarray(times, dtype=np.int64),
        n_users=60,
        n_items=2 * ITEMS_PER_BLOCK + 1,
        context=table if context else None,
    )
    segments = FeatureTable(
        60,
        (
            CategoricalFeature(
                "SEGMENT",
                np.arange(61, dtype=np.int64),
                np.asarray([u % 2 for u in range(60)], dtype=np.int32),
                ("a", "b"),
            ),
        ),
    )
    return TrainingData(inter, user_features=None if context else segments)


def test_context_changes_recommendations() -> None:
    model = fit(segment_data(context=True), recency_mask="false")
    mobile = top(model, Query(context={"DEVICE": "mobile"}), 5)
    desktop = top(model, Query(context={"device": "desktop"}), 5)  # names match loosely
    assert set(mobile) == set(range(ITEMS_PER_BLOCK))
    assert set(desktop) == set(range(ITEMS_PER_BLOCK, 2 * ITEMS_PER_BLOCK))
    # Unknown values and fields are ignored.
    plain = model.score_items([Query()])
    np.testing.assert_array_equal(model.score_items([Query(context={"DEVICE": "tv"})]), plain)
    np.testing.assert_array_equal(model.score_items([Query(context={"MOOD": "x"})]), plain)


def test_user_metadata_leans_cold_start() -> None:
    data = segment_data(context=False)
    model = fit(data, recency_mask="false")
    b_list = top(model, Query(user_attributes={"SEGMENT": "b"}), 5)
    assert set(b_list) == set(range(ITEMS_PER_BLOCK, 2 * ITEMS_PER_BLOCK))
    a_list = top(model, Query(user_attributes={"SEGMENT": "a"}), 5)
    assert set(a_list) == set(range(ITEMS_PER_BLOCK))
    # A known user without history is answered from their own metadata.
    assert set(top(model, Query(user=1), 5)) == set(b_list)


def test_feature_encoder_round_trip() -> None:
    table = FeatureTable(
        3,
        (
            CategoricalFeature(
                "GENRES",
                np.asarray([0, 2, 2, 3], dtype=np.int64),
                np.asarray([0, 1, 1], dtype=np.int32),
                ("Comedy", "Drama"),
            ),
        ),
        (NumericFeature("PRICE", np.asarray([1.0, np.nan, 1000.0], dtype=np.float32)),),
    )
    encoder = FeatureEncoder.fit(table)
    rows = encoder.encode(table, 3)
    assert np.diff(rows.offsets).tolist() == [3, 0, 2]  # two genres + price bin; none; one + bin
    assert rows.weights[:2].tolist() == [0.5, 0.5]  # a multi-valued field is a mean
    again = FeatureEncoder.from_json(encoder.to_json())
    # Comedy, Drama, then the price bin of row 2 (1000): names match loosely, and an
    # unknown field is ignored.
    raw = again.encode_raw({"genres": "Drama|Comedy", "PRICE": "1000", "OTHER": "x"})
    assert raw.codes.tolist() == [0, 1, int(rows.codes[-1])]
    np.testing.assert_allclose(raw.numeric, rows.numeric[2:3])
    assert again.encode_raw({"GENRES": "Horror", "PRICE": "abc"}).codes.shape == (0,)


def test_item_knn_component(data: TrainingData) -> None:
    inter = data.interactions
    knn = ItemKNN.fit(
        inter.user.astype(np.int64),
        inter.item.astype(np.int64),
        np.ones(len(inter), dtype=bool),
        data.n_users,
        data.n_items,
    )
    histories = [np.asarray(h, dtype=np.int32) for h in ([6, 7], [6, 12], [])]
    scores = knn.scores(histories)
    assert set(np.argsort(-scores[0])[:5].tolist()) == set(range(5, 10))  # block 1
    # The newest item's neighbours count most (decay): block 2 before block 1.
    assert scores[1, [10, 11, 13, 14]].min() > scores[1, [5, 7, 8, 9]].max() > 0
    assert not scores[2].any()


def test_knn_blend_is_part_of_the_model(data: TrainingData, tmp_path: Path) -> None:
    blended = make(UserPersonalization, replace(FAST, knn_weight=2.0)).fit(data)
    plain = make(UserPersonalization, FAST).fit(data)
    assert isinstance(blended, SequentialModel) and isinstance(plain, SequentialModel)
    query = known(data, 7)
    difference = blended.score_items([query])[0] - plain.score_items([query])[0]
    expected = 2.0 * blended.knn.scores([query.history])[0]  # type: ignore[union-attr]
    np.testing.assert_allclose(difference, expected, rtol=1e-4, atol=1e-4)
    blended.save(tmp_path)
    loaded = SequentialModel.load(tmp_path)
    np.testing.assert_array_equal(loaded.score_items([query]), blended.score_items([query]))
    cands = np.asarray([0, 9, 3], dtype=np.int32)
    np.testing.assert_array_equal(loaded.rank(query, cands), blended.rank(query, cands))


def test_blend_weight_is_tuned_on_validation(data: TrainingData) -> None:
    options = replace(FAST, validation_users=36, max_epochs=20, patience=20)
    model = make(UserPersonalization, options).fit(data)
    assert isinstance(model, SequentialModel)
    assert model.meta["knn_weight"] in (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
    assert (model.knn is None) == (model.meta["knn_weight"] == 0.0)


def _with_new_item(data: TrainingData) -> TrainingData:
    """block_data plus item 23, which every block-0 user meets last."""
    inter = data.interactions
    fans = np.unique(inter.user[inter.item < ITEMS_PER_BLOCK])
    rows = [(int(u), int(t)) for u, t in zip(inter.user, inter.timestamp, strict=True)]
    extra = [(int(u), max(t for v, t in rows if v == u) + 1) for u in fans]
    user = np.concatenate([inter.user, np.asarray([u for u, _ in extra], dtype=np.int32)])
    item = np.concatenate([inter.item, np.full(len(extra), inter.n_items, dtype=np.int32)])
    time = np.concatenate([inter.timestamp, np.asarray([t for _, t in extra], dtype=np.int64)])
    order = np.lexsort((time, user))
    return TrainingData(
        Interactions(
            user=user[order], item=item[order], timestamp=time[order],
            n_users=inter.n_users, n_items=inter.n_items + 1,
        ),
        seed=data.seed,
    )  # fmt: skip


def test_update_continues_the_previous_model_with_new_items(data: TrainingData) -> None:
    previous = fit(data)
    newer = _with_new_item(data)
    item_map = np.append(np.arange(data.n_items), -1).astype(np.int32)

    def update(warm: bool) -> tuple[SequentialModel, int]:
        recipe = make(UserPersonalization)
        polls: list[int] = []
        recipe.stop_requested = lambda: bool(polls.append(1))
        if warm:
            recipe.warm_start = WarmStart(previous, item_map)
        else:
            recipe.max_epochs = UPDATE_EPOCHS  # as many epochs as an update, from scratch
        model = recipe.fit(newer)
        assert isinstance(model, SequentialModel)
        return model, len(polls)

    updated, polls = update(warm=True)
    assert polls <= UPDATE_EPOCHS + 1  # a few epochs, not a full training
    assert updated.n_items == data.n_items + 1
    new_item = data.n_items

    def block_of(u: int) -> set[int]:
        block = int(data.interactions.item[data.interactions.user == u][0]) // ITEMS_PER_BLOCK
        return set(range(block * ITEMS_PER_BLOCK, (block + 1) * ITEMS_PER_BLOCK))

    def top(model: SequentialModel, u: int, n: int) -> set[int]:
        return set(model.recommend(Query(user=u, history=user_history(data, u)), n).items.tolist())

    # The new item joins the lists of the users who took it up, and only theirs...
    assert new_item in top(updated, 0, ITEMS_PER_BLOCK + 1)
    assert all(new_item not in top(updated, u, ITEMS_PER_BLOCK) for u in (13, 23, 31))
    # ...and what the previous model knew is kept, which as few epochs from scratch miss.
    assert all(top(updated, u, ITEMS_PER_BLOCK) == block_of(u) for u in (13, 23, 31))
    scratch, _ = update(warm=False)
    assert not all(top(scratch, u, ITEMS_PER_BLOCK) == block_of(u) for u in (13, 23, 31))


def test_depth_follows_the_data_size_and_an_update_keeps_it(
    data: TrainingData, two_block_model: SequentialModel
) -> None:
    chosen = replace(FAST, layers=None, max_epochs=2)
    assert make(UserPersonalization, chosen).fit(data).cfg.layers == 1  # type: ignore[attr-defined]
    recipe = make(UserPersonalization, chosen)
    recipe.warm_start = WarmStart(two_block_model, np.arange(data.n_items, dtype=np.int32))
    updated = recipe.fit(data)
    assert isinstance(updated, SequentialModel) and updated.cfg.layers == 2


def test_epochs_are_planned_from_the_work_not_the_clock() -> None:
    # Small data: the target-event budget (early stopping usually ends sooner).
    assert planned_epochs(99_000, 64, 2, 1_682) == 200
    assert planned_epochs(1_000_000, 32, 1, 100) == 30
    # 1M interactions over 5.8k items at the default width: the work budget binds.
    assert planned_epochs(847_000, 149, 2, 5_795) == 10
    assert planned_epochs(50_000_000, 149, 2, 5_795) == 5  # never fewer than five


def test_mid_sized_catalogues_train_with_the_full_softmax() -> None:
    # MovieLens-latest-small's 9.7k items: sampled negatives cost a tenth of NDCG@10.
    assert default_negatives(9_724) == 0
    # The serving benchmark's 100k items would not fit a batch's logits: sampled.
    assert 0 < default_negatives(100_000) < 100_000
    # Planned epochs count the full softmax's width.
    assert planned_epochs(100_000, 149, 2, 9_724) < planned_epochs(100_000, 149, 2, 2_048)


def test_training_time_cap_stops_at_the_next_check(
    data: TrainingData, capsys: pytest.CaptureFixture[str]
) -> None:
    logged = replace(FAST, max_epochs=3, log=True, knn_blend=False)
    capped = make(UserPersonalization, logged)
    capped.max_training_seconds = 0.0
    model = capped.fit(data)
    assert "epoch" not in capsys.readouterr().out
    assert model.recommend(known(data, 0), 5).items.size == 5  # a usable, untrained model
    uncapped = make(UserPersonalization, logged)
    uncapped.fit(data)
    assert "epoch 3:" in capsys.readouterr().out

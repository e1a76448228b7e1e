"""The behaviour every recipe must show, as a reusable test mixin.

Use it as implicit's ``RecommenderBaseTestMixin`` or lkpy's ``ScorerTests``::

    from .contract import RecipeContract

    class TestSimsContract(RecipeContract):
        recipe_class = Sims

Override ``make_recipe`` to train with non-default hyperparameters (e.g. fewer epochs
for a neural recipe), and ``block_data`` fixture arguments if a model needs more data
to learn the known answer.

The known-answer fixture is a block structure (the checker-board of implicit's tests):
``BLOCK_USERS[b]`` users each interact with all ``ITEMS_PER_BLOCK`` items of block
``b`` and nothing else, blocks are ordered from most to least popular, and the last
``N_COLD`` items have no interactions at all. So

* the popular items are block 0, then block 1, ..., then the cold items, in index
  order inside each block (ties keep the lower index);
* the items related to an item are the other items of its block;
* the items for a user (or a history) of block ``b`` are the items of block ``b``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar, get_args

import numpy as np
import pytest

from pertinent.recipes.base import (
    BoolArray,
    IntArray,
    Interactions,
    Model,
    Params,
    Query,
    Ranked,
    Recipe,
    RecipeType,
    TrainingData,
)
from pertinent.recipes.registry import get_recipe

BLOCK_USERS = (12, 10, 8, 6)
ITEMS_PER_BLOCK = 5
N_COLD = 3
# Users in the index space with no interactions (known to the Users dataset only).
N_SILENT_USERS = 2


def block_data(
    block_users: tuple[int, ...] = BLOCK_USERS,
    items_per_block: int = ITEMS_PER_BLOCK,
    n_cold: int = N_COLD,
    n_silent_users: int = N_SILENT_USERS,
    seed: int = 0,
) -> TrainingData:
    """The block-structured interactions described in the module docstring.

    Each user meets the items of their block in a rotated order (user ``k`` of a block
    starts at item ``k``), so sequences differ while the sets are equal.
    """
    users: list[int] = []
    items: list[int] = []
    times: list[int] = []
    user = 0
    for block, n_block_users in enumerate(block_users):
        first_item = block * items_per_block
        for k in range(n_block_users):
            for step in range(items_per_block):
                users.append(user)
                items.append(first_item + (k + step) % items_per_block)
                times.append(1_000 * user + step)
            user += 1
    interactions = Interactions(
        user=np.asarray(users, dtype=np.int32),
        item=np.asarray(items, dtype=np.int32),
        timestamp=np.asarray(times, dtype=np.int64),
        n_users=user + n_silent_users,
        n_items=len(block_users) * items_per_block + n_cold,
    )
    return TrainingData(interactions=interactions, seed=seed)


def block_of_user(data: TrainingData, user: int) -> int:
    """The block of a user of ``block_data`` (with default sizes)."""
    item = int(data.interactions.item[data.interactions.user == user][0])
    return item // ITEMS_PER_BLOCK


def block_items(block: int) -> set[int]:
    return set(range(block * ITEMS_PER_BLOCK, (block + 1) * ITEMS_PER_BLOCK))


def user_history(data: TrainingData, user: int) -> IntArray:
    offsets = data.interactions.user_offsets()
    return data.interactions.item[offsets[user] : offsets[user + 1]]


def scores_in_each_precision(
    make: Callable[[bool], Recipe], data: TrainingData, queries: Sequence[Query]
) -> dict[bool, np.ndarray]:
    """Scores of a recipe trained in float32 (False) and with bfloat16 products (True),
    each trained twice: both must be reproducible, and the flag must change the model."""
    scores = {}
    for bf16 in (False, True):
        twice = [make(bf16).fit(data).score_items(queries) for _ in "ab"]
        np.testing.assert_array_equal(twice[0], twice[1])
        scores[bf16] = twice[0]
    assert not np.array_equal(scores[False], scores[True])
    return scores


def contract_queries(data: TrainingData) -> dict[str, Query]:
    """Queries every recipe must answer, known and unknown alike."""
    n_items = data.n_items
    silent_user = data.n_users - 1
    return {
        "empty": Query(),
        "known user": Query(user=0, history=user_history(data, 0)),
        "silent user": Query(user=silent_user),
        "history only": Query(history=np.asarray([5, 6, 7], dtype=np.int32)),
        "item": Query(item=1),
        "last block item": Query(item=n_items - N_COLD - 1),
        "cold item": Query(item=n_items - 1),
        "item and user": Query(user=3, history=user_history(data, 3), item=12),
    }


def _as_wire_string(value: object) -> str:
    """A default value as Personalize sends it: a string (booleans as true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class RecipeContract:
    """Mixin of tests every recipe passes. Subclasses set ``recipe_class``."""

    recipe_class: ClassVar[type[Recipe]]
    # Whether the recipe must be listed in pertinent.recipes.registry.TRAINABLE.
    registered: ClassVar[bool] = True

    @classmethod
    def make_recipe(cls) -> Recipe:
        return cls.recipe_class()

    # Class-scoped so each recipe trains once per test class.
    @pytest.fixture(scope="class")
    @classmethod
    def data(cls) -> TrainingData:
        return block_data()

    @pytest.fixture(scope="class")
    @classmethod
    def model(cls, data: TrainingData) -> Model:
        return cls.make_recipe().fit(data)

    # Helpers ---------------------------------------------------------------------

    def withheld(self, query: Query, n_items: int) -> set[int]:
        """Items the model may leave out of a full list for ``query``.

        A related-items model never recommends the item asked about (the explicit
        item, else the newest history item); other recipes withhold nothing.
        """
        if self.recipe_class.recipe_type != "RELATED_ITEMS":
            return set()
        seed = query.item
        if seed is None and query.history.shape[0] > 0:
            seed = int(query.history[-1])
        return {seed} if seed is not None and 0 <= seed < n_items else set()

    def expected_length(
        self, query: Query, n: int, n_items: int, allowed: BoolArray | None = None
    ) -> int:
        """``n``, or fewer only when fewer items are allowed (and not withheld)."""
        candidates = set(range(n_items)) if allowed is None else set(np.flatnonzero(allowed))
        return min(n, len(candidates - self.withheld(query, n_items)))

    def check_ranked(self, ranked: Ranked, n_items: int, expected_length: int) -> None:
        items = ranked.items
        assert items.ndim == 1
        assert np.issubdtype(items.dtype, np.integer)
        assert items.shape[0] == expected_length
        assert np.unique(items).shape[0] == items.shape[0], "duplicates in the list"
        assert np.all((items >= 0) & (items < n_items))
        if ranked.scores is not None:
            assert ranked.scores.shape == items.shape
            assert np.all(np.isfinite(ranked.scores))
            assert np.all(np.diff(ranked.scores) <= 0), "scores not best first"

    def all_answers(
        self, model: Model, data: TrainingData, allowed: BoolArray | None = None
    ) -> dict[tuple[str, int], IntArray]:
        answers = {}
        for name, query in contract_queries(data).items():
            for n in (1, 3, 10, data.n_items + 5):
                answers[(name, n)] = model.recommend(query, n, allowed).items
        return answers

    # Identity and hyperparameters --------------------------------------------------

    def test_declares_identity(self) -> None:
        cls = self.recipe_class
        assert cls.name.startswith("aws-")
        assert cls.recipe_type in get_args(RecipeType)
        assert issubclass(cls.Params, Params)
        assert issubclass(cls.ModelClass, Model)

    def test_registered(self) -> None:
        if not self.registered:
            pytest.skip("recipe not meant to be trainable yet")
        assert get_recipe(self.recipe_class.name) is self.recipe_class

    def test_default_params_round_trip_as_strings(self) -> None:
        defaults = self.recipe_class.Params()
        wire = {name: _as_wire_string(value) for name, value in defaults.model_dump().items()}
        assert self.recipe_class.parse_params(wire) == defaults
        assert self.recipe_class.parse_params() == defaults

    def test_unknown_hyperparameter_is_named(self) -> None:
        with pytest.raises(ValueError, match="Unknown hyperparameter 'no_such_knob'"):
            self.recipe_class.parse_params({"no_such_knob": "1"})

    # Answers -----------------------------------------------------------------------

    def test_fit_returns_its_model_class(self, model: Model, data: TrainingData) -> None:
        assert isinstance(model, self.recipe_class.ModelClass)
        assert model.n_items == data.n_items

    def test_returns_n_unique_valid_items(self, model: Model, data: TrainingData) -> None:
        for query in contract_queries(data).values():
            for n in (1, 2, 5, data.n_items - 1):
                expected = self.expected_length(query, n, data.n_items)
                self.check_ranked(model.recommend(query, n), data.n_items, expected)

    def test_zero_n_gives_empty_list(self, model: Model, data: TrainingData) -> None:
        for query in contract_queries(data).values():
            assert model.recommend(query, 0).items.shape == (0,)

    def test_n_beyond_catalogue_gives_whole_catalogue(
        self, model: Model, data: TrainingData
    ) -> None:
        for query in contract_queries(data).values():
            ranked = model.recommend(query, data.n_items + 10)
            catalogue = set(range(data.n_items)) - self.withheld(query, data.n_items)
            self.check_ranked(ranked, data.n_items, len(catalogue))
            assert set(ranked.items.tolist()) == catalogue

    def test_respects_allowed(self, model: Model, data: TrainingData) -> None:
        rng = np.random.default_rng(7)
        for density in (0.1, 0.3, 0.6, 0.9):
            allowed = rng.random(data.n_items) < density
            before = allowed.copy()
            for query in contract_queries(data).values():
                for n in (1, 4, 10, data.n_items):
                    ranked = model.recommend(query, n, allowed)
                    # Fewer than n only when fewer items are allowed.
                    expected = self.expected_length(query, n, data.n_items, allowed)
                    self.check_ranked(ranked, data.n_items, expected)
                    assert allowed[ranked.items].all()
            np.testing.assert_array_equal(allowed, before)  # the mask is not modified

    def test_exactly_k_allowed(self, model: Model, data: TrainingData) -> None:
        allowed = np.zeros(data.n_items, dtype=bool)
        allowed[[0, 7, data.n_items - 1]] = True  # a popular, a mid and a cold item
        for query in contract_queries(data).values():
            ranked = model.recommend(query, 10, allowed)
            expected = {0, 7, data.n_items - 1} - self.withheld(query, data.n_items)
            assert set(ranked.items.tolist()) == expected

    def test_nothing_allowed_gives_empty_list(self, model: Model, data: TrainingData) -> None:
        allowed = np.zeros(data.n_items, dtype=bool)
        for query in contract_queries(data).values():
            assert model.recommend(query, 10, allowed).items.shape == (0,)

    def test_recommend_many_answers_each_query_as_recommend(
        self, model: Model, data: TrainingData
    ) -> None:
        """The batched call serving/batching.py makes: each answer as ``recommend`` gives
        it, whatever the other queries of the batch ask for."""
        queries = list(contract_queries(data).values())
        masks: list[BoolArray | None] = [
            None,
            np.arange(data.n_items) % 2 == 0,
            None,
            np.zeros(data.n_items, dtype=bool),
        ]
        sizes = [5, 0, 4, data.n_items + 3]
        allowed = [masks[i % len(masks)] for i in range(len(queries))]
        n = [sizes[i % len(sizes)] for i in range(len(queries))]
        many = model.recommend_many(queries, n, allowed)
        assert len(many) == len(queries)
        for query, k, mask, got in zip(queries, n, allowed, many, strict=True):
            one = model.recommend(query, k, mask)
            assert got.items.tolist() == one.items.tolist()
            if one.scores is not None:
                assert got.scores is not None
                np.testing.assert_allclose(got.scores, one.scores, rtol=1e-5, atol=1e-7)
            if mask is not None:
                assert mask[got.items].all()

    def test_everything_allowed_is_no_filter(self, model: Model, data: TrainingData) -> None:
        allowed = np.ones(data.n_items, dtype=bool)
        unfiltered = self.all_answers(model, data)
        filtered = self.all_answers(model, data, allowed)
        for key, items in unfiltered.items():
            np.testing.assert_array_equal(filtered[key], items, err_msg=str(key))

    # Persistence and determinism ---------------------------------------------------

    def test_save_load_round_trip(self, model: Model, data: TrainingData, tmp_path: Path) -> None:
        model.save(tmp_path)
        loaded = self.recipe_class.ModelClass.load(tmp_path)
        assert type(loaded) is type(model)
        assert loaded.n_items == model.n_items
        allowed = np.random.default_rng(3).random(data.n_items) < 0.5
        for mask in (None, allowed):
            before = self.all_answers(model, data, mask)
            after = self.all_answers(loaded, data, mask)
            for key, items in before.items():
                np.testing.assert_array_equal(after[key], items, err_msg=str(key))

    def test_saves_no_pickle(self, model: Model, tmp_path: Path) -> None:
        model.save(tmp_path)
        for path in tmp_path.rglob("*.npz"):
            with np.load(path, allow_pickle=False) as arrays:
                for name in arrays.files:
                    assert arrays[name].dtype != object, name

    def test_same_seed_same_model(self, data: TrainingData) -> None:
        first = self.all_answers(self.make_recipe().fit(data), data)
        second = self.all_answers(self.make_recipe().fit(data), data)
        for key, items in first.items():
            np.testing.assert_array_equal(second[key], items, err_msg=str(key))

    # The known answer --------------------------------------------------------------

    def test_known_answer(self, model: Model, data: TrainingData) -> None:
        recipe_type = self.recipe_class.recipe_type
        n_warm = len(BLOCK_USERS) * ITEMS_PER_BLOCK
        if recipe_type == "POPULAR_ITEMS":
            # Blocks by decreasing popularity, index order inside ties, cold items last.
            ranked = model.recommend(Query(), data.n_items).items
            assert ranked.tolist() == list(range(data.n_items))
        elif recipe_type == "RELATED_ITEMS":
            for item in range(n_warm):
                block = item // ITEMS_PER_BLOCK
                top = model.recommend(Query(item=item), ITEMS_PER_BLOCK - 1).items
                assert set(top.tolist()) == block_items(block) - {item}, item
        elif recipe_type in ("USER_PERSONALIZATION", "PERSONALIZED_RANKING"):
            for user in np.unique(data.interactions.user).tolist():
                block = block_of_user(data, user)
                query = Query(user=user, history=user_history(data, user))
                top = model.recommend(query, ITEMS_PER_BLOCK).items
                assert set(top.tolist()) == block_items(block), user
        else:  # pragma: no cover - a new recipe type needs its own known answer
            pytest.fail(f"no known answer for recipe type {recipe_type}")

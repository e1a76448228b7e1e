"""The one contract every recipe implements.

Recipes take arrays and return arrays. They know nothing of HTTP, SQL, ARNs or the
string ids users send: the data layer maps ids to dense indices (users ``0..n_users-1``,
items ``0..n_items-1``) before ``fit`` and maps indices back after ``recommend``.

A recipe is a class with

* ``name`` — the Personalize recipe name, e.g. ``"aws-sims"``;
* ``recipe_type`` — ``USER_PERSONALIZATION``, ``RELATED_ITEMS``, ``POPULAR_ITEMS`` or
  ``PERSONALIZED_RANKING`` (what the runtime asks of it);
* ``Params`` — a pydantic model of its hyperparameters, with Personalize's names,
  built from the string-valued ``algorithmHyperParameters`` and
  ``featureTransformationParameters`` maps by ``parse_params`` (bad values raise
  ``ValueError`` with a message naming the parameter, which the control plane turns
  into ``InvalidInputException`` at CreateSolution);
* ``fit(data) -> Model``.

A ``Model`` answers queries about one user or one item and saves itself to a
directory. ``tests/recipes/contract.py`` holds the suite every recipe must pass.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, ValidationError

from pertinent.recipes._scoring import nth_largest

RecipeType = Literal[
    "USER_PERSONALIZATION", "RELATED_ITEMS", "POPULAR_ITEMS", "PERSONALIZED_RANKING"
]

IntArray = npt.NDArray[np.int32]
FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class CategoricalFeature:
    """One categorical column, rows as CSR: row ``i`` has codes ``codes[offsets[i]:offsets[i+1]]``.

    Multi-valued fields (``a|b|c``) have several codes per row; a missing value has none.
    Textual fields arrive here too, as their word tokens.
    """

    name: str
    offsets: npt.NDArray[np.int64]
    codes: IntArray
    vocabulary: tuple[str, ...]

    def row(self, i: int) -> IntArray:
        return self.codes[self.offsets[i] : self.offsets[i + 1]]


@dataclass(frozen=True)
class NumericFeature:
    """One numeric column, raw values, NaN where missing."""

    name: str
    values: FloatArray


@dataclass(frozen=True)
class FeatureTable:
    """Metadata rows aligned with an index (items, users, or interaction rows)."""

    n_rows: int
    categorical: tuple[CategoricalFeature, ...] = ()
    numeric: tuple[NumericFeature, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.categorical) + tuple(f.name for f in self.numeric)


@dataclass(frozen=True)
class Interactions:
    """Interactions as parallel arrays, sorted by (user, timestamp, original order).

    ``event_type`` holds codes into ``event_types`` (-1 where the row has none);
    ``event_value`` is NaN where the row has none. Optional per-row extras:
    ``impressions`` (CSR offsets, item indices: what was shown and not chosen),
    ``context`` (the row's contextual metadata, e.g. DEVICE) and ``weight`` (how much
    the row counts in training, from ``eventsConfig``).
    """

    user: IntArray
    item: IntArray
    timestamp: npt.NDArray[np.int64]
    n_users: int
    n_items: int
    event_type: npt.NDArray[np.int16] | None = None
    event_types: tuple[str, ...] = ()
    event_value: FloatArray | None = None
    impressions: tuple[npt.NDArray[np.int64], IntArray] | None = None
    context: FeatureTable | None = None
    weight: FloatArray | None = None

    def __len__(self) -> int:
        return int(self.user.shape[0])

    def user_offsets(self) -> npt.NDArray[np.int64]:
        """``offsets[u]:offsets[u+1]`` is user u's slice (rows are grouped by user)."""
        counts = np.bincount(self.user, minlength=self.n_users)
        offsets = np.zeros(self.n_users + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return offsets


@dataclass(frozen=True)
class TrainingData:
    """Everything a recipe may learn from."""

    interactions: Interactions
    seed: int = 0
    # Items that exist in the Items dataset but have no interactions are still part of
    # the catalogue: n_items counts them, they simply have no rows above.
    item_creation_time: npt.NDArray[np.int64] | None = None
    item_features: FeatureTable | None = None
    user_features: FeatureTable | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return self.interactions.n_users

    @property
    def n_items(self) -> int:
        return self.interactions.n_items


@dataclass(frozen=True)
class Exploration:
    """A campaign's ``itemExplorationConfig`` (spec §4.12): how much to show cold items.

    ``weight`` 0 means pure relevance, 1 means cold items first; an item is cold while
    it is younger than ``item_age_cutoff_days``, counted back from the newest
    interaction the model was trained on.
    """

    weight: float = 0.3
    item_age_cutoff_days: float = 30.0


@dataclass(frozen=True)
class Query:
    """One request, in indices.

    ``history`` is the user's known items, oldest first (empty for an unknown user),
    with their timestamps in ``history_times`` when known; ``user`` is the training
    index of the user or None; ``item`` is the seed item of a related-items request or
    None when absent or unknown. ``context`` carries the request's contextual metadata
    (raw strings, e.g. ``{"DEVICE": "mobile"}``) and ``user_attributes`` a user's raw
    metadata sent after training (PutUsers); when set it wins over what was trained.
    ``exploration`` is set by campaigns of exploring recipes. ``time`` (seconds) is the
    moment the request stands at, where it is not now: an offline evaluation asks as of
    the input's newest event, and recipes that know item creation times leave out items
    created after it. None (serving): every catalogue item is current.
    """

    history: IntArray = field(default_factory=lambda: np.empty(0, dtype=np.int32))
    user: int | None = None
    item: int | None = None
    context: Mapping[str, str] = field(default_factory=dict)
    history_times: npt.NDArray[np.int64] | None = None
    user_attributes: Mapping[str, str] = field(default_factory=dict)
    exploration: Exploration | None = None
    time: int | None = None


@dataclass(frozen=True)
class Ranked:
    """Item indices, best first, and their scores (None for recipes that give none)."""

    items: IntArray
    scores: FloatArray | None = None


class Params(BaseModel):
    """Base of every recipe's hyperparameter model: frozen, no unknown names."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Model(ABC):
    """A trained model. Instances must be safe to share between threads for reading."""

    n_items: int
    # Whether ``Query.user_attributes`` can change an answer (user-metadata models): the
    # campaign then looks up the user's newest PutUsers record for each request.
    uses_user_attributes: bool = False

    @abstractmethod
    def recommend(self, query: Query, n: int, allowed: BoolArray | None = None) -> Ranked:
        """The top ``n`` items for the query, never an item where ``allowed`` is False.

        Returns fewer than ``n`` only when fewer items are allowed (a RELATED_ITEMS model
        also never returns the query item). No duplicates.
        """

    # Whether ``recommend_many`` is cheaper than one ``recommend`` per query: serving
    # then gathers concurrent requests into one call (serving/batching.py).
    batches: bool = False

    def recommend_many(
        self, queries: Sequence[Query], n: Sequence[int], allowed: Sequence[BoolArray | None]
    ) -> list[Ranked]:
        """``recommend`` for several queries at once, each with its own ``n`` and mask.

        A query's answer is the one ``recommend`` gives, up to float rounding: batched
        arithmetic may sum in another order, so scores can differ in the last bit.
        """
        return [self.recommend(q, k, a) for q, k, a in zip(queries, n, allowed, strict=True)]

    def rank(self, query: Query, candidates: IntArray) -> FloatArray:
        """A score for each candidate (higher is better); recipes that rank override it."""
        raise NotImplementedError(f"{type(self).__name__} does not rank item lists")

    def score_items(self, queries: Sequence[Query]) -> FloatArray:
        """Scores of every item for each query, shape ``(len(queries), n_items)``.

        Higher is better; equal scores are ties. Offline evaluation ranks the whole
        catalogue with it (random tie-breaking needs the scores, not a top list).
        """
        raise NotImplementedError(f"{type(self).__name__} does not score the catalogue")

    @abstractmethod
    def save(self, path: Path) -> None:
        """Write the model into the (existing, empty) directory ``path``."""

    @classmethod
    @abstractmethod
    def load(cls, path: Path) -> Model:
        """Read a model written by ``save``."""


@dataclass(frozen=True)
class WarmStart:
    """A previous model to continue from; ``item_map[i]`` is the previous index of this
    data's item ``i``, or -1 for an item the previous model never had."""

    model: Model
    item_map: IntArray


@runtime_checkable
class LiveUpdatable(Protocol):
    """A model that can count interactions streamed after its training without a retrain.

    Campaigns call ``with_recent`` with the events of the last ``window_seconds`` (by
    event time) that came after training, and serve the model it returns.
    """

    window_seconds: float

    def with_recent(self, items: IntArray, times: npt.NDArray[np.int64]) -> Model: ...


@runtime_checkable
class CatalogExtendable(Protocol):
    """A model that can take items added after its training (PutItems) without a retrain.

    ``with_new_items`` gets each new item's raw metadata (column -> string) and returns a
    model whose indices ``n_items, n_items + 1, ...`` are those items, in that order.
    """

    def with_new_items(self, attributes: Sequence[Mapping[str, str]]) -> Model: ...


# ``Recipe.Params`` names the subclass's model; inside the class body that name shadows
# this base, so annotations use the alias.
_ParamsBase = Params


class Recipe(ABC):
    name: ClassVar[str]
    recipe_type: ClassVar[RecipeType]
    Params: ClassVar[type[Params]]
    ModelClass: ClassVar[type[Model]]

    def __init__(self, params: _ParamsBase | None = None) -> None:
        self.params = params if params is not None else self.Params()
        # Long trainings poll this between epochs (StopSolutionVersionCreation); when it
        # returns True, fit stops early and returns the model trained so far.
        self.stop_requested: Callable[[], bool] = lambda: False
        # An operator's cap on epochs (PERTINENT_MAX_EPOCHS) for recipes that train in
        # epochs; None leaves the choice to the recipe.
        self.max_epochs: int | None = None
        # An operator's cap on the wall-clock time of a fit (PERTINENT_MAX_TRAINING_MINUTES):
        # recipes that train in epochs stop when it passes and keep their best epoch so
        # far. Off by default: when it binds, the model depends on the machine's speed.
        self.max_training_seconds: float | None = None
        # trainingMode UPDATE: the previous version's model to start from, for recipes
        # that can (others ignore it and train from scratch).
        self.warm_start: WarmStart | None = None

    def stopper(self) -> Callable[[], bool]:
        """``stop_requested``, or the training time cap (counted from this call) passed."""
        if self.max_training_seconds is None:
            return self.stop_requested
        deadline = time.monotonic() + self.max_training_seconds
        requested = self.stop_requested
        return lambda: time.monotonic() > deadline or requested()

    @classmethod
    def parse_params(
        cls,
        algorithm: Mapping[str, str] | None = None,
        featurization: Mapping[str, str] | None = None,
    ) -> _ParamsBase:
        """Build ``Params`` from Personalize's string maps; ValueError names the culprit."""
        merged: dict[str, str] = {**(featurization or {}), **(algorithm or {})}
        known = set(cls.Params.model_fields)
        unknown = sorted(set(merged) - known)
        if unknown:
            allowed = ", ".join(sorted(known)) or "none"
            raise ValueError(
                f"Unknown hyperparameter {unknown[0]!r} for recipe {cls.name}. "
                f"Allowed hyperparameters: {allowed}."
            )
        try:
            return cls.Params.model_validate(merged)
        except ValidationError as exc:
            first = exc.errors()[0]
            name = ".".join(str(p) for p in first["loc"])
            raise ValueError(
                f"Invalid value {merged.get(name)!r} for hyperparameter {name} "
                f"of recipe {cls.name}: {first['msg']}."
            ) from None

    @abstractmethod
    def fit(self, data: TrainingData) -> Model:
        """Train on ``data``; deterministic for the same data and ``data.seed``."""


def top_n(
    scores: npt.NDArray[np.floating[Any]], n: int, allowed: BoolArray | None = None
) -> IntArray:
    """Indices of the ``n`` highest scores, best first, skipping disallowed items.

    Ties keep the lower index first, across the cut too: of several items tied at the
    ``n``-th score, the lowest-indexed make the list.
    """
    if allowed is not None:
        scores = np.where(allowed, scores, -np.inf)
        n = min(n, int(np.count_nonzero(allowed)))
    n = min(n, scores.shape[0])
    if n <= 0:
        return np.empty(0, dtype=np.int32)
    cut = nth_largest(scores, n) if n < scores.shape[0] else -np.inf
    if np.isfinite(cut):
        above = np.flatnonzero(scores > cut)
        part = np.concatenate([above, np.flatnonzero(scores == cut)[: n - above.shape[0]]])
    else:
        # The whole row, or -inf or NaN at the cut, where a disallowed item could tie an
        # allowed one: the allowed are sorted outright (a rare, degenerate row).
        part = np.arange(scores.shape[0]) if allowed is None else np.flatnonzero(allowed)
    order = np.lexsort((part, -scores[part]))
    return part[order][:n].astype(np.int32)

"""Trained models loaded for serving, kept in memory and shared between requests."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from pertinent.filters.evaluate import ItemTable
from pertinent.recipes.base import Exploration, Model, Query
from pertinent.recipes.registry import get_recipe
from pertinent.serving.filtering import FilterData, items_frame
from pertinent.store import artifacts

EMPTY = np.empty(0, dtype=np.int32)
EMPTY_TIMES = np.empty(0, dtype=np.int64)


@dataclass
class LoadedModel:
    """A model plus the id maps and trained histories needed to answer by string id."""

    recipe_name: str
    recipe_type: str
    model: Model
    item_ids: list[str]
    item_index: dict[str, int]
    user_index: dict[str, int]
    offsets: npt.NDArray[np.int64]
    history_items: npt.NDArray[np.int32]
    history_times: npt.NDArray[np.int64]
    items_path: Path | None = None
    event_cutoff: int = 0
    _metadata: dict[str, list[str | None]] = field(default_factory=dict)
    _columns: dict[str, str] | None = None
    _tokens: dict[str, dict[str, npt.NDArray[np.int64]]] = field(default_factory=dict)
    trained_from: float = 0.0  # when training started: later PutItems may be new items
    directory: Path | None = None
    n_trained: int = 0  # items the model was trained with; PutItems may add more
    # The PutItems records since training, newest per item, (item id, attributes):
    # filters see them at once, new items and changed ones.
    put_items: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    _filters: FilterData | None = None

    def filter_data(self) -> FilterData:
        """What filters read for this catalogue, built on first use."""
        if self._filters is None:
            n_trained = self.n_trained or len(self.item_ids)
            frame = items_frame(self.items_path, self.item_ids, n_trained, self.put_items)
            self._filters = FilterData(
                self.directory, self.item_index, ItemTable(frame, len(self.item_ids))
            )
        return self._filters

    def history(self, user: int | None) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
        if user is None:
            return EMPTY, EMPTY_TIMES
        lo, hi = self.offsets[user], self.offsets[user + 1]
        return self.history_items[lo:hi], self.history_times[lo:hi]

    def query(
        self,
        user_id: str | None,
        item_id: str | None = None,
        *,
        context: Mapping[str, str] | None = None,
        exploration: Exploration | None = None,
        live: Sequence[tuple[str | None, float]] = (),
        user_attributes: Mapping[str, str] | None = None,
    ) -> Query:
        """The request in indices; ``live`` are (item id, time) events since training."""
        user = self.user_index.get(user_id) if user_id is not None else None
        item = self.item_index.get(item_id) if item_id is not None else None
        items, times = self.history(user)
        if live:
            known = [(self.item_index[i], t) for i, t in live if i in self.item_index]
            if known:
                items = np.concatenate([items, np.array([k for k, _ in known], dtype=np.int32)])
                times = np.concatenate([times, np.array([t for _, t in known], dtype=np.int64)])
        return Query(
            history=items,
            history_times=times,
            user=user,
            item=item,
            context=context or {},
            exploration=exploration,
            user_attributes=user_attributes or {},
        )

    def metadata_columns(self) -> dict[str, str]:
        """Upper-cased column name -> the column as the Items schema spells it."""
        if self._columns is None:
            names = pl.read_parquet_schema(self.items_path) if self.items_path else {}
            self._columns = {n.upper(): n for n in names if n.upper() != "ITEM_ID"}
            # Put records spell columns as their schema does, or camelCase: match both.
            self._columns.update({k.replace("_", ""): v for k, v in list(self._columns.items())})
        return self._columns

    def metadata_neighbours(
        self, attributes: Mapping[str, Any], n: int, allowed: npt.NDArray[np.bool_] | None = None
    ) -> list[int]:
        """Catalogue items sharing the most metadata values with an item the model never
        saw (PutItems after training): the related items of a brand-new item. Values
        are the ``|``-separated tokens of string columns; ties go to the popular."""
        scores = np.zeros(len(self.item_ids), dtype=np.float64)
        columns = self.metadata_columns()
        for key, raw in attributes.items():
            stored = columns.get(key.upper().replace("_", "")) or columns.get(key.upper())
            if stored is None or not isinstance(raw, str):
                continue
            index = self._token_index(stored)
            for token in {t.strip().lower() for t in raw.split("|")}:
                found = index.get(token)
                if found is not None:
                    scores[found] += 1.0
        if allowed is not None:
            scores[~allowed] = 0.0
        if not scores.any():
            return []
        popular = self.model.recommend(Query(), len(self.item_ids)).items
        tiebreak = np.zeros_like(scores)
        tiebreak[popular] = np.linspace(0.5, 0.0, popular.shape[0], endpoint=False)
        scores += np.where(scores > 0, tiebreak, 0.0)
        order = np.argsort(-scores, kind="stable")[:n]
        return [int(i) for i in order if scores[i] > 0]

    def _token_index(self, column: str) -> dict[str, npt.NDArray[np.int64]]:
        found = self._tokens.get(column)
        if found is None:
            owners: dict[str, list[int]] = {}
            for i, value in enumerate(self.metadata(column)):
                if value is None:
                    continue
                for token in {t.strip().lower() for t in value.split("|")}:
                    owners.setdefault(token, []).append(i)
            found = {t: np.asarray(v, dtype=np.int64) for t, v in owners.items()}
            self._tokens[column] = found
        return found

    def metadata(self, column: str) -> list[str | None]:
        """One Items column as strings, row i = item i (loaded on first use, then cached)."""
        found = self._metadata.get(column)
        if found is None:
            assert self.items_path is not None
            series = pl.read_parquet(self.items_path, columns=[column])[column]
            found = series.cast(pl.String).to_list()
            self._metadata[column] = found
        return found


def load(directory: Path) -> LoadedModel:
    meta = artifacts.read_meta(directory)
    recipe = get_recipe(meta["recipe"])
    model = recipe.ModelClass.load(directory / "model")
    item_ids = artifacts.read_ids(directory / "item_ids.parquet")
    user_ids = artifacts.read_ids(directory / "user_ids.parquet")
    offsets, items, times = artifacts.read_history(directory / "history.npz")
    items_path = directory / "items.parquet"
    return LoadedModel(
        recipe_name=meta["recipe"],
        recipe_type=meta["recipe_type"],
        model=model,
        item_ids=item_ids,
        item_index={v: i for i, v in enumerate(item_ids)},
        user_index={v: i for i, v in enumerate(user_ids)},
        offsets=offsets,
        history_items=items,
        history_times=times,
        items_path=items_path if items_path.exists() else None,
        event_cutoff=int(meta.get("event_cutoff", 0)),
        trained_from=float(meta.get("trained_at", 0.0)) - float(meta.get("training_seconds", 0.0)),
        directory=directory,
        n_trained=len(item_ids),
    )


class ModelCache:
    """Loaded models by solution version, least recently used evicted first."""

    def __init__(self, capacity: int = 16) -> None:
        self.capacity = capacity
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def get(self, key: str, directory: Path) -> LoadedModel:
        with self._lock:
            found = self._models.get(key)
            if found is not None:
                self._models.move_to_end(key)
                return found
            gate = self._loading.setdefault(key, threading.Lock())
        # One loader per model; other requests for it wait rather than load it again.
        with gate:
            with self._lock:
                found = self._models.get(key)
                if found is not None:
                    return found
            loaded = load(directory)
            with self._lock:
                self._models[key] = loaded
                self._loading.pop(key, None)
                while len(self._models) > self.capacity:
                    self._models.popitem(last=False)
            return loaded

    def drop(self, key: str) -> None:
        with self._lock:
            self._models.pop(key, None)

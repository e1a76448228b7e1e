"""Trained models loaded for serving, kept in memory and shared between requests."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from pertinent.recipes.base import Model, Query
from pertinent.recipes.registry import get_recipe
from pertinent.store import artifacts

EMPTY = np.empty(0, dtype=np.int32)


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

    def history(self, user: int | None) -> npt.NDArray[np.int32]:
        if user is None:
            return EMPTY
        return self.history_items[self.offsets[user] : self.offsets[user + 1]]

    def query(self, user_id: str | None, item_id: str | None) -> Query:
        user = self.user_index.get(user_id) if user_id is not None else None
        item = self.item_index.get(item_id) if item_id is not None else None
        return Query(history=self.history(user), user=user, item=item)


def load(directory: Path) -> LoadedModel:
    meta = artifacts.read_meta(directory)
    recipe = get_recipe(meta["recipe"])
    model = recipe.ModelClass.load(directory / "model")
    item_ids = artifacts.read_ids(directory / "item_ids.parquet")
    user_ids = artifacts.read_ids(directory / "user_ids.parquet")
    offsets, items = artifacts.read_history(directory / "history.npz")
    return LoadedModel(
        recipe_name=meta["recipe"],
        recipe_type=meta["recipe_type"],
        model=model,
        item_ids=item_ids,
        item_index={v: i for i, v in enumerate(item_ids)},
        user_index={v: i for i, v in enumerate(user_ids)},
        offsets=offsets,
        history_items=items,
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

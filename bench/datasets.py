"""The evaluation data sets as `TrainingData`, read from ../shared/datasets or generated.

Each loader returns a `Loaded` (training data plus the ids behind the indices), or
raises `Missing` with the path it looked for when the shared data is absent. Item and
user metadata travel as `FeatureTable`s where the data set has them.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import polars as pl

from pertinent.demo.generate import Latent, generate
from pertinent.recipes.base import (
    CategoricalFeature,
    FeatureTable,
    Interactions,
    NumericFeature,
    TrainingData,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
ML100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip


class Missing(FileNotFoundError):
    """A shared data set is not where it should be."""


@dataclass(frozen=True)
class Loaded:
    name: str
    data: TrainingData
    user_ids: list[str]
    item_ids: list[str]


def _need(path: Path) -> Path:
    if not path.exists():
        raise Missing(f"{path} is absent (the shared datasets live in ../shared/datasets)")
    return path


def _categorical(name: str, rows: list[list[str]]) -> CategoricalFeature:
    vocab = sorted({v for row in rows for v in row})
    index = {v: i for i, v in enumerate(vocab)}
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=offsets[1:])
    codes = np.fromiter((index[v] for row in rows for v in row), dtype=np.int32)
    return CategoricalFeature(name, offsets, codes, tuple(vocab))


def from_frame(
    name: str,
    frame: pl.DataFrame,
    *,
    item_features: Callable[[list[str]], FeatureTable] | None = None,
    user_features: Callable[[list[str]], FeatureTable] | None = None,
) -> Loaded:
    """Interactions from columns USER_ID, ITEM_ID, TIMESTAMP (file order breaks ties)."""
    frame = frame.with_row_index("_order").with_columns(
        pl.col("USER_ID").cast(pl.String), pl.col("ITEM_ID").cast(pl.String)
    )
    user_ids = sorted(frame["USER_ID"].unique().to_list())
    item_ids = sorted(frame["ITEM_ID"].unique().to_list())
    uidx = pl.DataFrame({"USER_ID": user_ids, "u": np.arange(len(user_ids), dtype=np.int32)})
    iidx = pl.DataFrame({"ITEM_ID": item_ids, "i": np.arange(len(item_ids), dtype=np.int32)})
    joined = (
        frame.join(uidx, on="USER_ID").join(iidx, on="ITEM_ID").sort(["u", "TIMESTAMP", "_order"])
    )
    inter = Interactions(
        user=joined["u"].to_numpy().astype(np.int32),
        item=joined["i"].to_numpy().astype(np.int32),
        timestamp=joined["TIMESTAMP"].to_numpy().astype(np.int64),
        n_users=len(user_ids),
        n_items=len(item_ids),
    )
    data = TrainingData(
        inter,
        item_features=item_features(item_ids) if item_features else None,
        user_features=user_features(user_ids) if user_features else None,
    )
    return Loaded(name, data, user_ids, item_ids)


def movielens_100k() -> Loaded:
    root = _need(SHARED / "movielens-100k")
    ratings = pl.read_csv(
        root / "u.data", separator="\t", has_header=False,
        new_columns=["USER_ID", "ITEM_ID", "RATING", "TIMESTAMP"],
    )  # fmt: skip
    movies = pl.read_csv(
        root / "u.item", separator="|", has_header=False, encoding="latin1",
        new_columns=["ITEM_ID", "TITLE", "RELEASE", "VIDEO", "URL", *ML100K_GENRES],
    )  # fmt: skip
    genres = {
        str(r["ITEM_ID"]): [g for g in ML100K_GENRES if r[g] == 1]
        for r in movies.iter_rows(named=True)
    }
    years = {
        str(r["ITEM_ID"]): float(r["RELEASE"][-4:]) if r["RELEASE"] else float("nan")
        for r in movies.iter_rows(named=True)
    }
    users = pl.read_csv(
        root / "u.user", separator="|", has_header=False,
        new_columns=["USER_ID", "AGE", "GENDER", "OCCUPATION", "ZIP"],
    )  # fmt: skip
    people = {str(r["USER_ID"]): r for r in users.iter_rows(named=True)}

    def items(ids: list[str]) -> FeatureTable:
        year = np.array([years[i] for i in ids], dtype=np.float32)
        return FeatureTable(
            len(ids),
            (_categorical("GENRES", [genres[i] for i in ids]),),
            (NumericFeature("RELEASE_YEAR", year),),
        )

    def people_features(ids: list[str]) -> FeatureTable:
        age = np.array([people[u]["AGE"] for u in ids], dtype=np.float32)
        return FeatureTable(
            len(ids),
            (
                _categorical("GENDER", [[people[u]["GENDER"]] for u in ids]),
                _categorical("OCCUPATION", [[people[u]["OCCUPATION"]] for u in ids]),
            ),
            (NumericFeature("AGE", age),),
        )

    return from_frame("movielens-100k", ratings, item_features=items, user_features=people_features)


def movielens_latest_small() -> Loaded:
    root = _need(SHARED / "movielens-latest-small")
    ratings = pl.read_csv(root / "ratings.csv").rename(
        {"userId": "USER_ID", "movieId": "ITEM_ID", "timestamp": "TIMESTAMP"}
    )
    movies = pl.read_csv(root / "movies.csv")
    genres = {
        str(r["movieId"]): [g for g in r["genres"].split("|") if g != "(no genres listed)"]
        for r in movies.iter_rows(named=True)
    }

    def items(ids: list[str]) -> FeatureTable:
        return FeatureTable(len(ids), (_categorical("GENRES", [genres[i] for i in ids]),))

    return from_frame("movielens-latest-small", ratings, item_features=items)


def diginetica_sample() -> Loaded:
    """Sessions as users (most are anonymous); order by date, then offset in the session."""
    path = _need(SHARED / "diginetica-sample" / "sample_train-item-views.csv")
    views = pl.read_csv(path, separator=";", schema_overrides={"user_id": pl.String})
    epoch = dt.date(1970, 1, 1)
    frame = views.select(
        pl.col("session_id").cast(pl.String).alias("USER_ID"),
        pl.col("item_id").cast(pl.String).alias("ITEM_ID"),
        (
            (pl.col("eventdate").str.to_date() - pl.lit(epoch)).dt.total_seconds()
            + pl.col("timeframe") // 1000
        ).alias("TIMESTAMP"),
    )
    return from_frame("diginetica-sample", frame)


def generated(users: int = 6000, items: int = 1500, seed: int = 7) -> Loaded:
    """The demo's e-commerce generator (taste and session structure), with metadata."""
    return generated_with_truth(users, items, seed)[0]


def generated_with_truth(
    users: int = 6000, items: int = 1500, seed: int = 7
) -> tuple[Loaded, Latent]:
    """`generated`, plus the generator's hidden state (bench/oracle.py)."""
    with tempfile.TemporaryDirectory() as tmp:
        data = generate(Path(tmp), users=users, items=items, seed=seed)
        frame = pl.read_csv(data.interactions_csv, schema_overrides={"EVENT_VALUE": pl.Float64})
        meta = pl.read_csv(data.items_csv)
    categories = {
        r["ITEM_ID"]: [r["CATEGORY_L1"], *r["CATEGORY_L2"].split("|")]
        for r in meta.iter_rows(named=True)
    }
    price = dict(zip(meta["ITEM_ID"], meta["PRICE"], strict=True))

    def features(ids: list[str]) -> FeatureTable:
        return FeatureTable(
            len(ids),
            (_categorical("CATEGORY", [categories[i] for i in ids]),),
            (NumericFeature("PRICE", np.array([price[i] for i in ids], dtype=np.float32)),),
        )

    loaded = from_frame("generated", frame, item_features=features)
    # CREATION_TIMESTAMP, as the server's snapshot passes it (items.csv has it for all).
    created = dict(zip(meta["ITEM_ID"], meta["CREATION_TIMESTAMP"], strict=True))
    times = np.array([created[i] for i in loaded.item_ids], dtype=np.int64)
    with_times = replace(loaded.data, item_creation_time=times)
    return replace(loaded, data=with_times), data.latent


LOADERS: dict[str, Callable[[], Loaded]] = {
    "movielens-100k": movielens_100k,
    "movielens-latest-small": movielens_latest_small,
    "diginetica-sample": diginetica_sample,
    "generated": generated,
}

"""Training snapshots: a dataset group's committed Parquet parts as recipe arrays.

``build_snapshot`` reads the parts of the Interactions, Items and Users datasets, applies
Personalize's rules (exact duplicate interactions count once, the latest Items / Users
row for an id wins, ``eventType`` / ``eventValueThreshold`` / ``eventsConfig`` selection,
spec §7.6), and maps string ids to dense indices in sorted id order, so the same data
always gives the same indices. Given the schemas it also turns metadata into features
(``pertinent.data.features``): item and user features, interaction context, impressions.

Everything is vectorised. String group-bys over tens of millions of rows are the slow
part on a small machine, so ids and duplicate rows are found by sorting 64-bit hashes
(cheap) and then checked exactly; a hash collision only sends the work down an exact,
slower path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from pertinent.data.features import (
    NOT_FEATURES,
    ColumnSelection,
    TrainingConfigError,
    feature_kind,
    feature_table,
    impression_lists,
)
from pertinent.data.schema import DatasetSchema, canonical_dataset_type, normalize_name
from pertinent.recipes.base import FeatureTable, FloatArray, Interactions, TrainingData

__all__ = [
    "InsufficientData",
    "Snapshot",
    "TrainingConfigError",
    "build_snapshot",
    "check_minimum_data",
    "dense_ids",
    "drop_exact_duplicates",
]

_HASH_SEED = 0x5EED


class InsufficientData(ValueError):
    """Too little data to train; the message is Personalize's failure reason."""


@dataclass
class Snapshot:
    """What a training job needs: arrays for the recipe, and the ids behind the indices.

    ``items`` / ``users`` are aligned with ``item_ids`` / ``user_ids``: row ``i`` holds the
    latest Items (Users) dataset row of index ``i``, all nulls but the id where that
    dataset has no row for it. They are None when the dataset group has no such parts.
    """

    data: TrainingData
    user_ids: list[str]
    item_ids: list[str]
    items: pl.DataFrame | None = None
    users: pl.DataFrame | None = None
    _item_index: dict[str, int] | None = field(default=None, repr=False, compare=False)
    _user_index: dict[str, int] | None = field(default=None, repr=False, compare=False)

    def item_index(self) -> dict[str, int]:
        if self._item_index is None:
            self._item_index = {item: i for i, item in enumerate(self.item_ids)}
        return self._item_index

    def user_index(self) -> dict[str, int]:
        if self._user_index is None:
            self._user_index = {user: i for i, user in enumerate(self.user_ids)}
        return self._user_index


def build_snapshot(
    interaction_parts: Sequence[Path],
    item_parts: Sequence[Path] = (),
    user_parts: Sequence[Path] = (),
    *,
    event_type: str | None = None,
    event_value_threshold: float | None = None,
    seed: int = 0,
    schemas: Mapping[str, DatasetSchema] | None = None,
    events_config: Sequence[Mapping[str, Any]] | None = None,
    training_data_config: Mapping[str, Any] | None = None,
) -> Snapshot:
    """Build the training snapshot from parts listed in import order.

    Args:
        interaction_parts, item_parts, user_parts: Parquet parts, oldest first.
        event_type, event_value_threshold: the solution's ``eventType`` and
            ``solutionConfig.eventValueThreshold`` (spec §7.6).
        seed: copied into ``TrainingData.seed``.
        schemas: dataset type (any case) -> its schema. Without a dataset's schema its
            metadata is not used: the schema says which strings are categorical or textual.
        events_config: ``solutionConfig.eventsConfig.eventParametersList``. Sets
            ``Interactions.weight`` (None without it) and drops rows below a listed
            type's ``eventValueThreshold``.
        training_data_config: ``solutionConfig.trainingDataConfig``, the columns to
            include in or exclude from training.

    Raises:
        InsufficientData: a selection needs a column the Interactions data lacks.
        TrainingConfigError: ``events_config`` or ``training_data_config`` is malformed.
    """
    schema_of = _schemas_by_type(schemas)
    selection = ColumnSelection.parse(training_data_config)
    event_params = _parse_events_config(events_config)
    inter = _read_parts(interaction_parts)
    if inter is None:
        inter = pl.DataFrame(
            schema={"USER_ID": pl.String, "ITEM_ID": pl.String, "TIMESTAMP": pl.Int64}
        )
    inter = drop_exact_duplicates(inter)
    inter = _select_events(inter, event_type, event_value_threshold)
    inter, weight = _apply_events_config(inter, event_params)

    items = _latest(item_parts, "ITEM_ID")
    users = _latest(user_parts, "USER_ID")
    user_of_row, user_ids = dense_ids(inter["USER_ID"], None if users is None else users["USER_ID"])
    item_of_row, item_ids = dense_ids(inter["ITEM_ID"], None if items is None else items["ITEM_ID"])
    timestamps = inter["TIMESTAMP"].to_numpy().astype(np.int64, copy=False)
    event_codes, event_types = _event_codes(inter)

    columns: dict[str, npt.NDArray[Any]] = {
        "user": user_of_row,
        "item": item_of_row,
        "timestamp": timestamps,
    }
    if event_codes is not None:
        columns["event_type"] = event_codes
    if "EVENT_VALUE" in inter.columns:
        columns["event_value"] = (
            inter["EVENT_VALUE"].cast(pl.Float32).fill_null(float("nan")).to_numpy()
        )
    if weight is not None:
        columns["weight"] = weight
    # Per-row metadata stays where it is; the sort reports where each row went ("row"),
    # and the encoders reorder their integer codes, cheaper than moving strings.
    row_meta = inter.select(_row_metadata(inter, schema_of.get("INTERACTIONS"), selection))
    if row_meta.width:
        columns["row"] = np.arange(inter.height, dtype=np.int32)
    # Rows grouped by user, oldest first, ties kept in import order (a stable sort).
    key = _sort_key(user_of_row, timestamps)
    if key is not None:
        frame = pl.DataFrame({"key": key, **columns}).sort("key", maintain_order=True)
    else:
        frame = pl.DataFrame(columns).sort(["user", "timestamp"], maintain_order=True)
    arrays = {name: frame[name].to_numpy() for name in columns}
    order = arrays.get("row")

    interactions = Interactions(
        user=arrays["user"],
        item=arrays["item"],
        timestamp=arrays["timestamp"],
        n_users=len(user_ids),
        n_items=len(item_ids),
        event_type=arrays.get("event_type"),
        event_types=event_types,
        event_value=arrays.get("event_value"),
        impressions=_impressions(row_meta, item_ids, item_of_row, order),
        context=_context(row_meta, schema_of.get("INTERACTIONS"), selection, order),
        weight=None if weight is None else _normalised(arrays["weight"]),
    )
    items_aligned = _align(items, "ITEM_ID", item_ids)
    users_aligned = _align(users, "USER_ID", user_ids)
    creation = _item_creation_time(item_of_row, timestamps, len(item_ids), items_aligned)
    data = TrainingData(
        interactions=interactions,
        seed=seed,
        item_creation_time=creation,
        item_features=feature_table(items_aligned, schema_of.get("ITEMS"), "ITEMS", selection),
        user_features=feature_table(users_aligned, schema_of.get("USERS"), "USERS", selection),
    )
    return Snapshot(
        data=data,
        user_ids=user_ids.to_list(),
        item_ids=item_ids.to_list(),
        items=items_aligned,
        users=users_aligned,
    )


def check_minimum_data(
    data: TrainingData,
    *,
    min_interactions: int = 1000,
    min_users: int = 25,
    event_type: str | None = None,
) -> None:
    """Personalize's minimum to train (spec §7.1), counted after event selection."""
    interactions = data.interactions
    if len(interactions) < min_interactions:
        after = f" after filtering by event type: {event_type}" if event_type else ""
        raise InsufficientData(
            f"Create failed. Dataset has fewer than {min_interactions} interactions{after}."
        )
    per_user = np.bincount(interactions.user, minlength=interactions.n_users)
    repeat = int(np.count_nonzero(per_user >= 2))
    if repeat < min_users:
        raise InsufficientData(
            f"Create failed. Dataset has fewer than {min_users} users with at least 2 "
            "interactions each."
        )
    active = int(np.count_nonzero(per_user))
    if repeat * 100 < active:
        raise InsufficientData(
            f"Create failed. Only {repeat} of {active} users have at least 2 interactions; "
            "at least 1% of users need 2 or more."
        )


# --- configuration ----------------------------------------------------------------------


def _schemas_by_type(schemas: Mapping[str, DatasetSchema] | None) -> dict[str, DatasetSchema]:
    out: dict[str, DatasetSchema] = {}
    for name, schema in (schemas or {}).items():
        out[canonical_dataset_type(name)] = schema
    return out


@dataclass(frozen=True)
class _EventParameters:
    weight: float
    threshold: float | None


def _parse_events_config(
    entries: Sequence[Mapping[str, Any]] | None,
) -> dict[str, _EventParameters] | None:
    """``eventParametersList`` by lower-cased event type (a later entry for a type wins)."""
    if entries is None:
        return None
    where = "solutionConfig.eventsConfig.eventParametersList"
    out: dict[str, _EventParameters] = {}
    for n, entry in enumerate(entries):
        name = entry.get("eventType") if isinstance(entry, Mapping) else None
        if not isinstance(name, str) or not name:
            raise TrainingConfigError(f"{where}[{n}] needs an eventType (a non-empty string).")
        weight = _number(entry.get("weight"), f"{where}[{n}].weight", default=1.0)
        if weight is None or weight < 0:
            raise TrainingConfigError(f"{where}[{n}].weight must be 0 or more, got {weight}.")
        threshold = _number(entry.get("eventValueThreshold"), f"{where}[{n}].eventValueThreshold")
        out[name.lower()] = _EventParameters(weight, threshold)
    return out


def _number(value: Any, where: str, default: float | None = None) -> float | None:
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TrainingConfigError(f"{where} must be a number, got {value!r}.") from None
    if not np.isfinite(number):
        raise TrainingConfigError(f"{where} must be a finite number, got {value!r}.")
    return number


def _apply_events_config(
    df: pl.DataFrame, params: dict[str, _EventParameters] | None
) -> tuple[pl.DataFrame, FloatArray | None]:
    """Rows kept by ``eventsConfig`` thresholds and their (raw) weights.

    A listed type's rows weigh its ``weight`` and are dropped when their EVENT_VALUE is
    below its ``eventValueThreshold`` (or missing, as with ``eventValueThreshold``).
    Rows of a type not listed, or with no type, are kept with weight 1.0: the list says
    how to treat the types it names, and dropping the others silently would shrink the
    data below the minimum more often than help. (Use ``eventType`` to train on one type.)
    """
    if params is None:
        return df, None
    if not params:
        return df, np.ones(df.height, dtype=np.float32)
    thresholds = {name: p.threshold for name, p in params.items() if p.threshold is not None}
    if "EVENT_TYPE" not in df.columns:
        raise InsufficientData(
            f"Create failed. eventsConfig lists the event type {next(iter(params))!r} but the "
            "Interactions dataset has no EVENT_TYPE field."
        )
    if thresholds and "EVENT_VALUE" not in df.columns:
        raise InsufficientData(
            f"Create failed. eventsConfig sets an eventValueThreshold for "
            f"{next(iter(thresholds))!r} but the Interactions dataset has no EVENT_VALUE field."
        )
    column = df["EVENT_TYPE"]
    spellings: list[str] = column.drop_nulls().unique(maintain_order=True).to_list()
    # Small tables indexed by the spelling's code; the last entry is for rows with no type.
    entries = [params.get(s.lower()) for s in spellings] + [None]
    weight_of = np.array([1.0 if e is None else e.weight for e in entries], dtype=np.float32)
    threshold_of = np.array(
        [np.nan if e is None or e.threshold is None else e.threshold for e in entries],
        dtype=np.float32,
    )
    code = (
        column.cast(pl.Enum(spellings)).to_physical().cast(pl.Int32).fill_null(len(spellings))
    ).to_numpy()
    weight = weight_of[code]
    if not thresholds:
        return df, weight
    # Compared in float32, as EVENT_VALUE is stored and as _select_events compares.
    value = df["EVENT_VALUE"].cast(pl.Float32).fill_null(float("nan")).to_numpy()
    threshold = threshold_of[code]
    keep = np.isnan(threshold) | (value >= threshold)
    if keep.all():
        return df, weight
    return df.filter(pl.Series(keep)), weight[keep]


def _normalised(weight: FloatArray) -> FloatArray:
    """Weights scaled to mean 1: only their ratios matter (spec §4.8)."""
    mean = float(weight.mean(dtype=np.float64)) if len(weight) else 0.0
    if mean <= 0:
        return weight.astype(np.float32)  # all zero (or no rows): nothing to scale by
    return (weight / mean).astype(np.float32)


# --- per-row metadata -------------------------------------------------------------------


def _row_metadata(
    df: pl.DataFrame, schema: DatasetSchema | None, selection: ColumnSelection
) -> list[str]:
    """The Interactions columns to carry: IMPRESSION and the trainable context columns."""
    reserved = NOT_FEATURES["INTERACTIONS"]
    trainable = set()
    if schema is not None:
        trainable = {
            normalize_name(f.name)
            for f in schema.fields
            if normalize_name(f.name) not in reserved and feature_kind(f) is not None
        }
    trainable.add("IMPRESSION")
    return [
        c
        for c in df.columns
        if normalize_name(c) in trainable and selection.allows("INTERACTIONS", c)
    ]


def _impressions(
    meta: pl.DataFrame,
    item_ids: pl.Series,
    item: npt.NDArray[np.int32],
    order: npt.NDArray[np.int32] | None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32]] | None:
    for name in meta.columns:
        if normalize_name(name) == "IMPRESSION":
            return impression_lists(meta[name], item_ids, item, order)
    return None


def _context(
    meta: pl.DataFrame,
    schema: DatasetSchema | None,
    selection: ColumnSelection,
    order: npt.NDArray[np.int32] | None,
) -> FeatureTable | None:
    context = meta.select(c for c in meta.columns if normalize_name(c) != "IMPRESSION")
    return feature_table(context, schema, "INTERACTIONS", selection, order)


# --- reading parts ----------------------------------------------------------------------


def _read_parts(parts: Sequence[Path]) -> pl.DataFrame | None:
    """All rows of the parts in order; parts written under older schemas line up by name."""
    if not parts:
        return None
    scans = [pl.scan_parquet(p) for p in parts]
    lazy = scans[0] if len(scans) == 1 else pl.concat(scans, how="diagonal_relaxed")
    return lazy.collect()


def _latest(parts: Sequence[Path], key: str) -> pl.DataFrame | None:
    df = _read_parts(parts)
    if df is None:
        return None
    return df.unique(subset=key, keep="last", maintain_order=True)


def _align(df: pl.DataFrame | None, key: str, ids: pl.Series) -> pl.DataFrame | None:
    if df is None:
        return None
    frame = pl.DataFrame({key: ids})
    return frame.join(df, on=key, how="left", maintain_order="left")


# --- vectorised building blocks ---------------------------------------------------------


def drop_exact_duplicates(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` without rows equal in every column to an earlier row (order kept)."""
    if df.height < 2:
        return df
    hashes = df.hash_rows(seed=_HASH_SEED).to_numpy()
    ordered = np.sort(hashes)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    if len(repeated) == 0:
        return df
    # Only rows whose hash repeats can be duplicates; compare those exactly.
    rows = np.flatnonzero(np.isin(hashes, repeated))
    first = df[rows].select(pl.struct(pl.all()).is_first_distinct()).to_series().to_numpy()
    keep = np.ones(df.height, dtype=bool)
    keep[rows[~first]] = False
    return df.filter(pl.Series(keep))


def _hash_ids(values: pl.Series, seed: int) -> npt.NDArray[np.uint64]:
    return values.hash(seed=seed).to_numpy()


def dense_ids(
    values: pl.Series, extra: pl.Series | None = None
) -> tuple[npt.NDArray[np.int32], pl.Series]:
    """(index of each of ``values``, sorted distinct ids of ``values`` and ``extra``)."""
    combined = values if extra is None else pl.concat([values, extra], rechunk=False)
    n = len(combined)
    if n == 0:
        return np.empty(0, dtype=np.int32), pl.Series(values.name, [], dtype=pl.String)
    # Group rows by a 64-bit hash of the id (ranking integers is cheap), then order the
    # groups by the id of one representative row each.
    hashes = pl.Series(_hash_ids(combined, _HASH_SEED))
    group = (hashes.rank("dense") - 1).cast(pl.Int32).to_numpy()
    k = int(group.max()) + 1
    # Distinct ids that share a hash would share a group. A second, independent hash
    # that is not constant within a group exposes that; then be exact instead.
    check = _hash_ids(combined, _HASH_SEED + 1)
    low = np.full(k, np.iinfo(np.uint64).max, dtype=np.uint64)
    high = np.zeros(k, dtype=np.uint64)
    np.minimum.at(low, group, check)
    np.maximum.at(high, group, check)
    if not np.array_equal(low, high):
        return _dense_ids_exact(values, combined)
    first = np.full(k, n, dtype=np.int64)
    np.minimum.at(first, group, np.arange(n, dtype=np.int64))
    representatives = combined.gather(first)
    by_id = representatives.arg_sort().to_numpy()
    rank = np.empty(k, dtype=np.int32)
    rank[by_id] = np.arange(k, dtype=np.int32)
    return rank[group[: len(values)]], representatives.gather(by_id)


def _dense_ids_exact(
    values: pl.Series, combined: pl.Series
) -> tuple[npt.NDArray[np.int32], pl.Series]:
    ids = combined.unique().sort()
    lookup = pl.DataFrame({"id": ids, "index": np.arange(len(ids), dtype=np.int32)})
    joined = pl.DataFrame({"id": values}).join(lookup, on="id", how="left", maintain_order="left")
    return joined["index"].to_numpy(), ids.rename(values.name)


def _sort_key(
    user: npt.NDArray[np.int32], timestamp: npt.NDArray[np.int64]
) -> npt.NDArray[np.uint64] | None:
    """One 64-bit (user, timestamp) key, which sorts several times faster than two columns."""
    if len(user) == 0:
        return None
    low = int(timestamp.min())
    if int(timestamp.max()) - low >= 2**32:
        return None
    return (user.astype(np.uint64) << np.uint64(32)) | (timestamp - low).astype(np.uint64)


def _select_events(
    df: pl.DataFrame, event_type: str | None, threshold: float | None
) -> pl.DataFrame:
    """Keep the rows a solution trains on (spec §7.6); EVENT_TYPE matches ignore case."""
    if event_type is not None:
        if "EVENT_TYPE" not in df.columns:
            raise InsufficientData(
                f"Create failed. eventType is {event_type!r} but the Interactions dataset "
                "has no EVENT_TYPE field."
            )
        spellings = df["EVENT_TYPE"].drop_nulls().unique().to_list()
        wanted = [s for s in spellings if s.lower() == event_type.lower()]
        df = df.filter(pl.col("EVENT_TYPE").is_in(wanted))
    if threshold is not None:
        if "EVENT_VALUE" not in df.columns:
            raise InsufficientData(
                f"Create failed. eventValueThreshold is {threshold} but the Interactions "
                "dataset has no EVENT_VALUE field."
            )
        df = df.filter(pl.col("EVENT_VALUE") >= threshold)
    return df


def _event_codes(
    df: pl.DataFrame,
) -> tuple[npt.NDArray[np.int16] | None, tuple[str, ...]]:
    """Codes into the sorted event types; a type is spelled as it was first seen."""
    if "EVENT_TYPE" not in df.columns:
        return None, ()
    column = df["EVENT_TYPE"]
    spellings: list[str] = column.drop_nulls().unique(maintain_order=True).to_list()
    first: dict[str, str] = {}
    for spelling in spellings:
        first.setdefault(spelling.lower(), spelling)
    names = tuple(sorted(first.values(), key=lambda s: (s.lower(), s)))
    code_of = {name.lower(): code for code, name in enumerate(names)}
    # Enum codes follow `spellings`; a small table turns them into codes of `names`.
    table = np.array([code_of[s.lower()] for s in spellings] + [-1], dtype=np.int16)
    physical = column.cast(pl.Enum(spellings)).to_physical().fill_null(len(spellings))
    return table[physical.to_numpy()], names


def _item_creation_time(
    item: npt.NDArray[np.int32],
    timestamp: npt.NDArray[np.int64],
    n_items: int,
    items: pl.DataFrame | None,
) -> npt.NDArray[np.int64]:
    """CREATION_TIMESTAMP, else the oldest interaction, else the newest one (spec §7.3)."""
    newest = int(timestamp.max()) if len(timestamp) else 0
    created = np.full(n_items, newest, dtype=np.int64)
    if len(item):
        never = np.iinfo(np.int64).max
        oldest = np.full(n_items, never, dtype=np.int64)
        np.minimum.at(oldest, item, timestamp)  # ~15x faster than a Polars group-by here
        seen = oldest != never
        created[seen] = oldest[seen]
    if items is not None and "CREATION_TIMESTAMP" in items.columns:
        given = items["CREATION_TIMESTAMP"].cast(pl.Int64)
        known = given.is_not_null().to_numpy()
        created[known] = given.fill_null(0).to_numpy()[known]
    return created

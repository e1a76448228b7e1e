"""What filters read at serve time, per loaded model: the catalogue's Items metadata, each
user's recent interactions and each user's attributes, all as the model was trained,
plus what arrived since (PutItems, PutEvents, PutUsers), passed in by the caller."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import polars as pl

from pertinent.data.recent import PER_EVENT_TYPE
from pertinent.data.schema import normalize_name
from pertinent.filters.evaluate import ItemTable, Rows


@dataclass(frozen=True)
class LiveEvent:
    """One streamed event of the requesting user, as the event log holds it."""

    item_id: str | None
    timestamp: float
    event_type: str
    event_value: float | None
    properties: str | None


def items_frame(
    items_path: Path | None,
    item_ids: Sequence[str],
    n_trained: int,
    put_items: Sequence[tuple[str, Mapping[str, Any]]],
) -> pl.DataFrame:
    """Items metadata aligned with ``item_ids``: the trained rows, updated by the PutItems
    records since training (newest wins), then the items PutItems added, in order."""
    base = (
        pl.read_parquet(items_path)
        if items_path is not None
        else pl.DataFrame({"ITEM_ID": list(item_ids[:n_trained])}, schema={"ITEM_ID": pl.String})
    )
    if not put_items:
        return base
    names = {normalize_name(c): c for c in base.columns}
    rows = [
        {"ITEM_ID": item_id} | {names.get(normalize_name(k), k): v for k, v in attrs.items()}
        for item_id, attrs in put_items
    ]
    records = pl.DataFrame(rows, infer_schema_length=None)
    records = records.with_columns(
        [pl.col(c).cast(base.schema[c], strict=False) for c in records.columns if c in base.schema]
    )
    known = base.join(records.select("ITEM_ID"), on="ITEM_ID", how="semi")
    if known.height:
        base = base.update(records, on="ITEM_ID", how="left")
    trained = set(item_ids[:n_trained])
    added = records.filter(~pl.col("ITEM_ID").is_in(list(trained)))
    if not added.height:
        return base
    position = {item_id: i for i, item_id in enumerate(item_ids)}
    added = (
        added.with_columns(
            pl.col("ITEM_ID")
            .replace_strict(position, default=-1, return_dtype=pl.Int64)
            .alias("_at")
        )
        .filter(pl.col("_at") >= 0)
        .sort("_at")
        .drop("_at")
    )
    return pl.concat([base, added], how="diagonal_relaxed")


class FilterData:
    """Lazily built, then shared by every request to one loaded model."""

    def __init__(
        self,
        directory: Path | None,
        item_index: Mapping[str, int],
        table: ItemTable,
    ) -> None:
        self.directory = directory
        self.item_index = item_index
        self.table = table
        self._lock = threading.Lock()
        self._recent: _Recent | None = None
        self._users: dict[str, dict[str, str]] | None = None

    def _recent_arrays(self) -> _Recent:
        if self._recent is None:
            with self._lock:
                path = None if self.directory is None else self.directory / "interactions.parquet"
                frame = pl.read_parquet(path) if path is not None and path.exists() else None
                self._recent = _Recent.of(frame, self.item_index)
        return self._recent

    def rows(self, user_id: str | None, live: Sequence[LiveEvent] = ()) -> Rows:
        """The user's newest interactions per event type, trained and streamed."""
        recent = self._recent_arrays()
        span = recent.spans.get(user_id) if user_id is not None else None
        lo, hi = span if span is not None else (0, 0)
        columns: dict[str, npt.NDArray[Any]] = {k: v[lo:hi] for k, v in recent.columns.items()}
        items = recent.items[lo:hi]
        if live:
            extra: list[dict[str, Any]] = []
            for event in live:
                record: dict[str, Any] = {
                    "ITEMID": event.item_id,
                    "TIMESTAMP": event.timestamp,
                    "EVENTTYPE": event.event_type,
                    "EVENTVALUE": event.event_value,
                }
                if event.properties:
                    props = orjson.loads(event.properties)
                    record.update({normalize_name(k): v for k, v in props.items()})
                extra.append(record)
            names = set(columns) | {k for r in extra for k in r}
            names.discard("ITEMID")
            n_old = int(items.shape[0])
            columns = {
                k: np.concatenate(
                    [
                        columns.get(k, np.full(n_old, None, dtype=object)).astype(object),
                        np.array([r.get(k) for r in extra] + [None], dtype=object)[:-1],
                    ]
                )
                for k in names
            }
            items = np.concatenate(
                [items, np.array([self.item_index.get(r["ITEMID"] or "", -1) for r in extra])]
            ).astype(np.int64)
            keep = _newest_per_type(columns.get("EVENTTYPE"), columns.get("TIMESTAMP"))
            if keep is not None:
                items = items[keep]
                columns = {k: v[keep] for k, v in columns.items()}
        return Rows(items=items, columns=columns)

    def user(self, user_id: str | None, streamed: Mapping[str, Any] | None) -> dict[str, str]:
        """The user's attributes by normalised name: the newest PutUsers record, else the
        Users row the model was trained with."""
        if user_id is None:
            return {}
        found: Mapping[str, Any] | None = streamed
        if not found:
            found = self._trained_users().get(user_id)
        return {
            normalize_name(k): v if isinstance(v, str) else orjson.dumps(v).decode()
            for k, v in (found or {}).items()
            if v is not None
        }

    def _trained_users(self) -> dict[str, dict[str, str]]:
        if self._users is None:
            path = None if self.directory is None else self.directory / "users.parquet"
            users: dict[str, dict[str, str]] = {}
            if path is not None and path.exists():
                for row in pl.read_parquet(path).to_dicts():
                    users[str(row.pop("USER_ID"))] = row
            self._users = users
        return self._users


def _newest_per_type(
    types: npt.NDArray[Any] | None, times: npt.NDArray[Any] | None
) -> npt.NDArray[np.int64] | None:
    """Rows to keep so that no event type has more than its newest 100; None: all."""
    if types is None or types.shape[0] <= PER_EVENT_TYPE:
        return None
    kinds = np.array([str(t or "").lower() for t in types], dtype=object)
    order = np.argsort(np.asarray(times, dtype=np.float64), kind="stable")[::-1]
    seen: dict[str, int] = {}
    keep = []
    for i in order:
        count = seen.get(kinds[i], 0)
        if count < PER_EVENT_TYPE:
            keep.append(i)
        seen[kinds[i]] = count + 1
    return np.sort(np.asarray(keep, dtype=np.int64))


@dataclass(frozen=True)
class _Recent:
    """The trained interactions filters read, as arrays grouped by user."""

    items: npt.NDArray[np.int64]
    columns: dict[str, npt.NDArray[Any]]
    spans: dict[str, tuple[int, int]]

    @classmethod
    def of(cls, frame: pl.DataFrame | None, item_index: Mapping[str, int]) -> _Recent:
        if frame is None or not frame.height:
            return cls(np.empty(0, dtype=np.int64), {}, {})
        users = frame["USER_ID"].to_numpy()
        starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
        ends = np.r_[starts[1:], users.shape[0]]
        spans = {str(users[a]): (int(a), int(b)) for a, b in zip(starts, ends, strict=True)}
        items = (
            frame["ITEM_ID"]
            .replace_strict(dict(item_index), default=-1, return_dtype=pl.Int64)
            .to_numpy()
        )
        columns: dict[str, npt.NDArray[Any]] = {}
        for name in frame.columns:
            if name in ("USER_ID", "ITEM_ID"):
                continue
            series = frame[name]
            if series.dtype.is_numeric():
                columns[normalize_name(name)] = series.cast(pl.Float64).fill_null(np.nan).to_numpy()
            else:
                columns[normalize_name(name)] = np.asarray(
                    series.cast(pl.String).to_list(), dtype=object
                )
        return cls(items, columns, spans)

"""What filters read at serve time, per loaded model: the catalogue's Items metadata, each
user's recent interactions and each user's attributes, all as the model was trained,
plus what arrived since (PutItems, PutEvents, PutUsers), passed in by the caller."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
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
        self._recent: tuple[pl.DataFrame, dict[str, tuple[int, int]]] | None = None
        self._users: dict[str, dict[str, str]] | None = None

    def _recent_frame(self) -> tuple[pl.DataFrame, dict[str, tuple[int, int]]]:
        if self._recent is None:
            with self._lock:
                path = None if self.directory is None else self.directory / "interactions.parquet"
                frame = pl.read_parquet(path) if path is not None and path.exists() else None
                if frame is None or not frame.height:
                    self._recent = (pl.DataFrame(), {})
                else:
                    spans = (
                        frame.with_row_index("_i")
                        .group_by("USER_ID")
                        .agg(pl.col("_i").min().alias("lo"), pl.len().alias("n"))
                    )
                    self._recent = (
                        frame,
                        {
                            u: (lo, lo + n)
                            for u, lo, n in zip(
                                spans["USER_ID"].to_list(),
                                spans["lo"].to_list(),
                                spans["n"].to_list(),
                                strict=True,
                            )
                        },
                    )
        return self._recent

    def rows(self, user_id: str | None, live: Iterable[LiveEvent] = ()) -> Rows:
        """The user's newest interactions per event type, trained and streamed."""
        frame, spans = self._recent_frame()
        records: list[dict[str, Any]] = []
        span = spans.get(user_id) if user_id is not None else None
        if span is not None:
            records = frame.slice(span[0], span[1] - span[0]).to_dicts()
        for event in live:
            record: dict[str, Any] = {
                "ITEM_ID": event.item_id,
                "TIMESTAMP": event.timestamp,
                "EVENT_TYPE": event.event_type,
                "EVENT_VALUE": event.event_value,
            }
            if event.properties:
                record.update(orjson.loads(event.properties))
            records.append(record)
        records = _newest_per_type(records)
        columns: dict[str, list[Any]] = {}
        for i, record in enumerate(records):
            for key, value in record.items():
                column = columns.setdefault(normalize_name(key), [None] * len(records))
                column[i] = value
        items = np.array(
            [self.item_index.get(r.get("ITEM_ID") or "", -1) for r in records], dtype=np.int64
        )
        columns.pop("USERID", None)
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


def _newest_per_type(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_type: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_type.setdefault(str(record.get("EVENT_TYPE") or "").lower(), []).append(record)
    kept = []
    for group in by_type.values():
        group.sort(key=lambda r: float(r.get("TIMESTAMP") or 0.0))
        kept.extend(group[-PER_EVENT_TYPE:])
    return kept

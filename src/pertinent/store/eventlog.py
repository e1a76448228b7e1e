"""The durable log of streamed data: events, and items/users/actions sent one by one.

Writes go through a group-commit writer: concurrent requests hand their rows to one
thread, which commits whatever has gathered in one transaction (one fsync) and then
releases every request of the batch. A request is answered only after its rows are
committed, so a 200 survives ``kill -9`` (and, with SQLite's synchronous=FULL or
PostgreSQL's defaults, a power cut), while throughput grows with concurrency instead
of paying one fsync per request.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import operator
import queue
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pertinent.store.catalog import Catalog
from pertinent.store.tables import events, put_records

log = logging.getLogger("pertinent.eventlog")

MAX_BATCH = 2000  # rows per transaction; bounds the time one commit holds the lock
CHECKPOINT_INTERVAL = 0.05  # seconds between background WAL checkpoints, at most

# The events table's columns as an insert names them (``id`` is the database's).
EVENT_COLUMNS = tuple(c.name for c in events.columns if c.name != "id")
_EMPTY_EVENT: dict[str, Any] = dict.fromkeys(EVENT_COLUMNS)
_EVENT_VALUES = operator.itemgetter(*EVENT_COLUMNS)
# Positional markers of the DB-API drivers whose executemany takes plain tuples.
_MARKERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


@dataclass
class _Pending:
    events: list[dict[str, Any]] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    done: asyncio.Future[None] | None = None
    loop: asyncio.AbstractEventLoop | None = None


class GroupCommitWriter:
    """One writer thread per process; ``write`` returns once the rows are committed.

    On SQLite a second thread keeps checkpointing the WAL (passive: it never blocks the
    writer) while commits go on. SQLite still checkpoints inside the commit that crosses
    its autocheckpoint threshold, since only a checkpoint there lets the WAL restart from
    its beginning, but by then nearly every frame is already copied, so that commit pays
    a few pages and one fsync instead of copying megabytes: before, it held up its whole
    batch and every request queued behind it by tens of milliseconds (PutEvents' p99).
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._dirty = threading.Event()
        self._closing = False
        self._checkpointer: threading.Thread | None = None
        if catalog.is_sqlite:
            self._checkpointer = threading.Thread(
                target=self._checkpoints, name="eventlog-checkpoint", daemon=True
            )
            self._checkpointer.start()
        self._thread = threading.Thread(target=self._run, name="eventlog-writer", daemon=True)
        self._thread.start()

    async def write(
        self,
        event_rows: Sequence[dict[str, Any]] = (),
        record_rows: Sequence[dict[str, Any]] = (),
    ) -> None:
        loop = asyncio.get_running_loop()
        pending = _Pending(list(event_rows), list(record_rows), loop.create_future(), loop)
        self._queue.put(pending)
        assert pending.done is not None
        await pending.done

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)
        self._closing = True
        self._dirty.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=10)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            rows = len(first.events) + len(first.records)
            while rows < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                batch.append(more)
                rows += len(more.events) + len(more.records)
            self._commit(batch)

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            with self.catalog.write() as conn:
                _insert_pending(conn, batch)
        except Exception as exc:  # every waiting request learns the batch failed
            _resolve(batch, exc)
            return
        self._dirty.set()
        _resolve(batch, None)

    def _checkpoints(self) -> None:
        """Copy committed WAL frames into the database, off the writer's path."""
        while not self._closing:
            self._dirty.wait()
            self._dirty.clear()
            if self._closing:
                return
            try:
                raw = self.catalog.engine.raw_connection()
                try:
                    cursor = raw.cursor()
                    cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    cursor.close()
                finally:
                    raw.close()
            except Exception:  # the writer's backstop checkpoint still bounds the WAL
                log.warning("WAL checkpoint failed", exc_info=True)
            time.sleep(CHECKPOINT_INTERVAL)


def _insert_pending(conn: Connection, batch: list[_Pending]) -> None:
    insert_batch(
        conn,
        [r for p in batch for r in p.events],
        [r for p in batch for r in p.records],
    )


def _resolve(batch: list[_Pending], error: Exception | None) -> None:
    """Settle every request of a batch: one wake-up per event loop, not one per request."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for pending in batch:
        assert pending.loop is not None and pending.done is not None
        by_loop.setdefault(pending.loop, []).append(pending.done)

    def settle(futures: list[asyncio.Future[None]]) -> None:
        for done in futures:
            if done.done():
                continue
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)

    for loop, futures in by_loop.items():
        loop.call_soon_threadsafe(settle, futures)


def insert_batch(
    conn: Connection, event_rows: list[dict[str, Any]], record_rows: list[dict[str, Any]]
) -> None:
    """Append events and upsert records in the caller's transaction."""
    if event_rows:
        insert_events(conn, event_rows)
    if record_rows:
        # Later wins: within a batch keep the last write of each id, then replace.
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for row in record_rows:
            latest[(row["dataset_arn"], row["record_id"])] = row
        for dataset_arn, record_id in latest:
            conn.execute(
                put_records.delete().where(
                    put_records.c.dataset_arn == dataset_arn,
                    put_records.c.record_id == record_id,
                )
            )
        conn.execute(put_records.insert(), list(latest.values()))


def insert_events(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Append event rows (``event_row`` dicts) in the caller's transaction.

    The hot path of PutEvents, so it skips SQLAlchemy's per-row binding: one multi-row
    ``INSERT ... VALUES (...), (...)`` per chunk of rows, through the driver. One
    statement, not ``executemany``, matters beyond the Python saved: sqlite3 releases
    the GIL around every step, and on a busy server each re-acquisition waits for the
    event loop's thread (up to the 5 ms switch interval), so a row-by-row insert of a
    large batch can take many times its own cost.
    """
    marker = _MARKERS.get(conn.dialect.paramstyle)
    if marker is None:  # a driver with named parameters: let SQLAlchemy bind them
        conn.execute(events.insert(), list(rows))
        return
    values = [_EVENT_VALUES(r) for r in rows]
    chunk = _CHUNK_ROWS
    for start in range(0, len(values), chunk):
        part = values[start : start + chunk]
        flat = tuple(v for row in part for v in row)
        conn.exec_driver_sql(_insert_sql(marker, len(part)), flat)


# Rows per statement: SQLite before 3.32 binds at most 999 parameters (13 columns x 76
# rows), later builds 32766 and PostgreSQL 65535.
_CHUNK_ROWS = 500 if sqlite3.sqlite_version_info >= (3, 32) else 999 // len(EVENT_COLUMNS)


@functools.lru_cache(maxsize=256)
def _insert_sql(marker: str, rows: int) -> str:
    names = ", ".join(EVENT_COLUMNS)
    one = "(" + ", ".join([marker] * len(EVENT_COLUMNS)) + ")"
    return f"INSERT INTO {events.name} ({names}) VALUES " + ", ".join([one] * rows)


def event_row(group_arn: str, **values: Any) -> dict[str, Any]:
    row = _EMPTY_EVENT.copy()
    row["group_arn"] = group_arn
    row["received_at"] = time.time()
    row.update(values)
    return row


# -- reading --------------------------------------------------------------------------


def last_event_id(conn: Connection, group_arn: str) -> int:
    q = sa.select(sa.func.max(events.c.id)).where(events.c.group_arn == group_arn)
    value = conn.execute(q).scalar()
    return int(value or 0)


_USER_EVENTS = (
    "SELECT item_id, timestamp, event_type, event_value, properties FROM events"
    " WHERE group_arn = ? AND {column} = ? AND id > ? ORDER BY id"
)
_USER_EVENTS_SQL = {
    column: _USER_EVENTS.format(column=column) for column in ("user_id", "session_id")
}


def user_events(
    catalog: Catalog, group_arn: str, user_key: str, *, after_id: int, by_session: bool = False
) -> list[tuple[Any, ...]]:
    """(item id, time, event type, value, properties) of a user's (or an anonymous
    session's) events newer than ``after_id``, oldest first. Read on every personal
    request, so it goes by ``Catalog.fast_read``."""
    sql = _USER_EVENTS_SQL["session_id" if by_session else "user_id"]
    return catalog.fast_read(sql, (group_arn, user_key, after_id))


def recent_events(
    conn: Connection, group_arn: str, *, after_id: int, window: float
) -> list[tuple[str | None, float]]:
    """(item id, time) of a group's events after ``after_id`` within ``window`` seconds
    of the newest of them: what a trending list needs to move without retraining."""
    newest = conn.execute(
        sa.select(sa.func.max(events.c.timestamp)).where(
            events.c.group_arn == group_arn, events.c.id > after_id
        )
    ).scalar()
    if newest is None:
        return []
    q = sa.select(events.c.item_id, events.c.timestamp).where(
        events.c.group_arn == group_arn,
        events.c.id > after_id,
        events.c.timestamp > float(newest) - window,
    )
    return [(r[0], float(r[1])) for r in conn.execute(q)]


def group_events(conn: Connection, group_arn: str, *, up_to_id: int) -> pl.DataFrame:
    """Every event of a group up to ``up_to_id``, as a frame (for training snapshots)."""
    q = (
        sa.select(events)
        .where(events.c.group_arn == group_arn, events.c.id <= up_to_id)
        .order_by(events.c.id)
    )
    rows = conn.execute(q).all()
    return pl.DataFrame(
        [tuple(r) for r in rows],
        schema={c.name: _POLARS_TYPES[type(c.type).__name__] for c in events.columns},
        orient="row",
    )


def record_frame(conn: Connection, dataset_arn: str) -> pl.DataFrame:
    """A dataset's PutItems/PutUsers records, oldest write first."""
    rows = records(conn, dataset_arn)
    return pl.DataFrame(
        [tuple(r) for r in rows],
        schema={"record_id": pl.String, "properties": pl.String, "updated_at": pl.Float64},
        orient="row",
    )


_POLARS_TYPES: dict[str, Any] = {
    "BigInteger": pl.Int64,
    "Integer": pl.Int64,
    "String": pl.String,
    "Text": pl.String,
    "Float": pl.Float64,
}


def records(conn: Connection, dataset_arn: str) -> list[sa.Row[Any]]:
    q = (
        sa.select(put_records.c.record_id, put_records.c.properties, put_records.c.updated_at)
        .where(put_records.c.dataset_arn == dataset_arn)
        .order_by(put_records.c.updated_at)
    )
    return list(conn.execute(q))


_RECORD_SQL = "SELECT properties FROM put_records WHERE dataset_arn = ? AND record_id = ?"


def record(catalog: Catalog, dataset_arn: str, record_id: str) -> dict[str, Any] | None:
    """The newest PutItems/PutUsers properties of one id (schema column names), or None.
    Read on requests, so it goes by ``Catalog.fast_read``."""
    rows = catalog.fast_read(_RECORD_SQL, (dataset_arn, record_id))
    if not rows:
        return None
    props: dict[str, Any] = orjson.loads(rows[0][0]) if rows[0][0] else {}
    return props


def records_since(
    conn: Connection, dataset_arn: str, after: float
) -> list[tuple[str, dict[str, Any], float]]:
    """(id, properties, time) of a dataset's Put records written after ``after``."""
    q = (
        sa.select(put_records.c.record_id, put_records.c.properties, put_records.c.updated_at)
        .where(put_records.c.dataset_arn == dataset_arn, put_records.c.updated_at > after)
        .order_by(put_records.c.updated_at, put_records.c.record_id)
    )
    return [(r[0], orjson.loads(r[1]) if r[1] else {}, float(r[2])) for r in conn.execute(q)]


def drop_streamed(conn: Connection, group_arn: str, dataset_arn: str, dataset_type: str) -> None:
    """Forget what was streamed into a dataset that is being deleted."""
    if dataset_type == "INTERACTIONS":
        conn.execute(events.delete().where(events.c.group_arn == group_arn))
    conn.execute(put_records.delete().where(put_records.c.dataset_arn == dataset_arn))

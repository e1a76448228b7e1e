"""The solution version job: snapshot the data, measure, fit, write the model files."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sqlalchemy.engine import Connection

from pertinent.data.recent import recent_interactions
from pertinent.data.schema import DatasetSchema, SchemaError, parse_schema
from pertinent.data.snapshot import (
    InsufficientData,
    Snapshot,
    TrainingConfigError,
    build_snapshot,
    check_minimum_data,
)
from pertinent.data.streamed import events_frame, records_frame
from pertinent.evaluation.metrics import evaluate
from pertinent.jobs import autotrain
from pertinent.jobs.base import Defer, JobContext, JobFailed, handler
from pertinent.recipes._objective import Objective
from pertinent.recipes.base import Params, Recipe, WarmStart
from pertinent.recipes.registry import get_recipe
from pertinent.store import artifacts
from pertinent.store.catalog import Catalog, Job, Resource
from pertinent.store.eventlog import group_events, last_event_id, record_frame
from pertinent.store.status import (
    ACTIVE,
    CREATE_IN_PROGRESS,
    CREATE_PENDING,
    CREATE_STOPPED,
    CREATE_STOPPING,
    CREATING,
)

# Personalize exposes no seed; a fixed one makes "same data, same model" hold (contract).
SEED = 42
# The dataset types a training snapshot reads.
_DATASET_TYPES = ("INTERACTIONS", "ITEMS", "USERS")


class Stopped(Exception):
    """StopSolutionVersionCreation was called while the job ran."""


@dataclass
class Sources:
    """Every part a snapshot reads, bulk and streamed, oldest first per dataset type."""

    parts: dict[str, list[Path]]
    event_cutoff: int


def _sources(
    conn: Connection, group_arn: str, schemas: dict[str, DatasetSchema], scratch: Path
) -> Sources:
    """Bulk parts plus the streamed records, written as Parquet parts into ``scratch``.

    Streamed items and users go in import-time order among the bulk parts, so the later
    of a PutItems and a bulk import of the same item wins (snapshots keep the last row).
    """
    parts: dict[str, list[Path]] = {}
    cutoff = last_event_id(conn, group_arn)
    for dataset_type in _DATASET_TYPES:
        dataset = _dataset(conn, group_arn, dataset_type)
        if dataset is None:
            continue
        timed = Catalog.timed_parts(conn, dataset.arn)
        paths = [Path(p) for p, _ in timed]
        schema = schemas.get(dataset_type)
        if schema is not None and dataset_type == "INTERACTIONS" and cutoff:
            frame = events_frame(group_events(conn, group_arn, up_to_id=cutoff), schema)
            frame = _not_imported(frame, paths)
            paths.append(_scratch_part(scratch, "events", frame))
        elif schema is not None and dataset_type in ("ITEMS", "USERS"):
            log = record_frame(conn, dataset.arn)
            id_column = "ITEM_ID" if dataset_type == "ITEMS" else "USER_ID"
            times = [t for _, t in timed]
            # Records written between bulk imports sit between their parts.
            slot = pl.Series(np.searchsorted(times, log["updated_at"].to_numpy(), side="right"))
            for position in sorted(set(slot.to_list()), reverse=True):
                chunk = records_frame(log.filter(slot == position), schema, id_column)
                paths.insert(position, _scratch_part(scratch, f"{dataset_type}-{position}", chunk))
        parts[dataset_type] = paths
    return Sources(parts, cutoff)


# The columns that make a streamed event "the same" as an imported row.
_EVENT_KEY = ("USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE")


def _not_imported(events: pl.DataFrame, bulk: list[Path]) -> pl.DataFrame:
    """The streamed events that no bulk part also holds: a bulk import of data that was
    streamed too (a nightly export, say) must not count those events twice."""
    if events.height == 0 or not bulk:
        return events
    key = [c for c in _EVENT_KEY if c in events.columns]
    names = pl.read_parquet_schema(bulk[0])
    if any(c not in names for c in key):
        return events
    # Hash the (small) streamed keys and stream the bulk parts past them.
    keys = events.select(key).lazy()
    imported = (
        pl.scan_parquet(bulk)
        .select([pl.col(c).cast(events.schema[c]) for c in key])
        .join(keys, on=key, how="semi")
        .unique()
    )
    return events.lazy().join(imported, on=key, how="anti").collect()


def _scratch_part(scratch: Path, name: str, frame: pl.DataFrame) -> Path:
    scratch.mkdir(parents=True, exist_ok=True)
    path = scratch / f"{name}.parquet"
    frame.write_parquet(path)
    return path


def _dataset(conn: Connection, group_arn: str, dataset_type: str) -> Resource | None:
    for ds in Catalog.children(conn, kind="dataset", group_arn=group_arn):
        if ds.doc["datasetType"] == dataset_type and ds.status == ACTIVE:
            return ds
    return None


def group_schemas(conn: Connection, group_arn: str) -> dict[str, DatasetSchema]:
    """The current schema of each ACTIVE dataset of the group, by dataset type.

    The schema says which string columns are categorical or textual, so it decides what
    metadata becomes features. A schema that is gone or no longer parses leaves that
    dataset without features rather than failing the training.
    """
    out: dict[str, DatasetSchema] = {}
    for dataset_type in _DATASET_TYPES:
        dataset = _dataset(conn, group_arn, dataset_type)
        schema = None if dataset is None else Catalog.get(conn, dataset.doc["schemaArn"])
        if schema is None:
            continue
        try:
            out[dataset_type] = parse_schema(schema.doc["schema"])
        except SchemaError:
            continue
    return out


def _recipe(jc: JobContext, recipe_cls: type[Recipe], params: Params, arn: str) -> Recipe:
    """A recipe that honours the operator's epoch cap and polls for StopSolutionVersion."""
    recipe = recipe_cls(params)
    recipe.max_epochs = jc.settings.max_epochs
    minutes = jc.settings.max_training_minutes
    recipe.max_training_seconds = None if minutes is None else minutes * 60.0

    def stop_requested() -> bool:
        with jc.catalog.read() as conn:
            res = Catalog.get(conn, arn)
        return res is None or res.status == CREATE_STOPPING

    recipe.stop_requested = stop_requested
    return recipe


def _update_base(jc: JobContext, version: Resource) -> Resource:
    """The newest ACTIVE version of the solution, which an UPDATE continues."""
    with jc.catalog.read() as conn:
        active = Catalog.children(
            conn, kind="solution-version", parent_arn=version.parent_arn, statuses=(ACTIVE,)
        )
    if not active:
        raise JobFailed(
            "Create failed. trainingMode UPDATE needs an ACTIVE solution version of the same "
            "solution to update; create a FULL version first."
        )
    return active[0]


def _warm_start(
    jc: JobContext, base: Resource, recipe_cls: type[Recipe], snap: Snapshot
) -> WarmStart:
    directory = artifacts.version_dir(jc.settings, base.arn)
    previous = {
        item: i for i, item in enumerate(artifacts.read_ids(directory / "item_ids.parquet"))
    }
    item_map = np.asarray([previous.get(i, -1) for i in snap.item_ids], dtype=np.int32)
    return WarmStart(recipe_cls.ModelClass.load(directory / "model"), item_map)


def _checkpoint(jc: JobContext, arn: str) -> None:
    with jc.catalog.write() as conn:
        res = Catalog.get(conn, arn)
        gone = res is None
        stopping = res is not None and res.status == CREATE_STOPPING
        if stopping:
            Catalog.update(conn, arn, status=CREATE_STOPPED)
    # Raised after the transaction commits: raising inside it would roll the stop back.
    if gone or stopping:
        raise Stopped()


def _snapshot(
    jc: JobContext, version: Resource, scratch: Path
) -> tuple[Snapshot, int, pl.DataFrame]:
    group_arn = version.doc["datasetGroupArn"]
    with jc.catalog.read() as conn:
        schemas = group_schemas(conn, group_arn)
        sources = _sources(conn, group_arn, schemas, scratch)
    interactions = sources.parts.get("INTERACTIONS", [])
    if not interactions:
        raise JobFailed(
            "Create failed. The dataset group has no interactions data: create an Interactions "
            "dataset and import data into it (or stream events) before training."
        )
    config: dict[str, Any] = version.doc.get("solutionConfig") or {}
    threshold = config.get("eventValueThreshold")
    event_type = version.doc.get("eventType")
    events = (config.get("eventsConfig") or {}).get("eventParametersList")
    try:
        snap = build_snapshot(
            interactions,
            sources.parts.get("ITEMS", []),
            sources.parts.get("USERS", []),
            event_type=event_type,
            event_value_threshold=float(threshold) if threshold is not None else None,
            seed=SEED,
            schemas=schemas,
            events_config=events,
            training_data_config=config.get("trainingDataConfig"),
        )
        check_minimum_data(snap.data, event_type=event_type)
        objective = _objective(config.get("optimizationObjective"), snap)
        if objective is not None:
            snap.data = replace(snap.data, extra={**snap.data.extra, "objective": objective})
    except InsufficientData as exc:
        raise JobFailed(str(exc)) from None
    except TrainingConfigError as exc:
        raise JobFailed(f"Create failed. {exc}") from None
    # Filters read every interaction, not only those this solution trains on.
    return snap, sources.event_cutoff, recent_interactions(interactions)


def _objective(config: dict[str, Any] | None, snap: Snapshot) -> Objective | None:
    """The solution's optimizationObjective as item values, or None without one."""
    if not config or config.get("objectiveSensitivity", "LOW") == "OFF":
        return None
    attribute = str(config.get("itemAttribute", ""))
    columns = {c.upper(): c for c in (snap.items.columns if snap.items is not None else [])}
    column = columns.get(attribute.upper())
    if snap.items is None or column is None:
        raise TrainingConfigError(
            f"optimizationObjective.itemAttribute {attribute} is not a column of the Items "
            "dataset; name a numeric Items column."
        )
    if not snap.items.schema[column].is_numeric():
        raise TrainingConfigError(
            f"optimizationObjective.itemAttribute {attribute} is a "
            f"{snap.items.schema[column]} column; it must be numeric."
        )
    values = snap.items[column].cast(pl.Float64).fill_null(float("nan")).to_numpy()
    return Objective(values=values, sensitivity=str(config.get("objectiveSensitivity", "LOW")))


def _write_model(
    directory: Path,
    snap: Snapshot,
    model: Any,
    recipe: Any,
    started: float,
    event_cutoff: int,
    recent: pl.DataFrame,
) -> None:
    tmp = directory.with_name(directory.name + ".tmp")
    artifacts.remove_path(tmp)
    (tmp / "model").mkdir(parents=True)
    model.save(tmp / "model")
    artifacts.write_ids(tmp / "item_ids.parquet", snap.item_ids)
    artifacts.write_ids(tmp / "user_ids.parquet", snap.user_ids)
    inter = snap.data.interactions
    artifacts.write_history(tmp / "history.npz", inter.user_offsets(), inter.item, inter.timestamp)
    if snap.items is not None:
        snap.items.write_parquet(tmp / "items.parquet")
    if snap.users is not None:
        snap.users.write_parquet(tmp / "users.parquet")
    recent.write_parquet(tmp / "interactions.parquet")
    artifacts.write_meta(
        tmp,
        {
            "recipe": recipe.name,
            "recipe_type": recipe.recipe_type,
            "n_items": snap.data.n_items,
            "n_users": snap.data.n_users,
            "interactions": len(inter),
            "trained_at": time.time(),
            "training_seconds": time.time() - started,
            # Events up to this log id are in the model; serving adds the ones after it.
            "event_cutoff": event_cutoff,
        },
    )
    artifacts.remove_path(directory)
    os.replace(tmp, directory)


@handler("train")
def train(jc: JobContext, job: Job) -> None:
    arn = job.resource_arn
    with jc.catalog.read() as conn:
        version = Catalog.get(conn, arn)
    if version is None or version.status not in CREATING:
        return
    with jc.catalog.write() as conn:
        # Re-read under the write lock: a stop may have landed since the read above.
        current = Catalog.get(conn, arn)
        if current is None or current.status not in CREATING:
            return
        # Train on complete data: an import still running in the group goes first.
        busy = Catalog.children(
            conn, kind="dataset-import-job", group_arn=version.group_arn, statuses=CREATING
        )
        if busy:
            raise Defer(1.0, f"waiting for the import {busy[0].arn} to finish")
        if current.status == CREATE_PENDING:
            Catalog.update(conn, arn, status=CREATE_IN_PROGRESS)
    started = time.time()
    directory = artifacts.version_dir(jc.settings, arn)
    scratch = directory.with_name(directory.name + ".scratch")
    try:
        snap, event_cutoff, recent = _snapshot(jc, version, scratch)
        recipe_cls = get_recipe(version.doc["recipeArn"].rsplit("/", 1)[-1])
        config: dict[str, Any] = version.doc.get("solutionConfig") or {}
        params = recipe_cls.parse_params(
            config.get("algorithmHyperParameters"), config.get("featureTransformationParameters")
        )
        _checkpoint(jc, arn)
        base = _update_base(jc, version) if version.doc.get("trainingMode") == "UPDATE" else None
        if base is None:
            metrics = evaluate(_recipe(jc, recipe_cls, params, arn), snap.data, seed=SEED)
        else:
            # Measuring an update would re-split data the previous model already saw; an
            # update reports the metrics of the FULL version it continues.
            metrics = dict(base.doc.get("_metrics") or {})
        _checkpoint(jc, arn)
        recipe = _recipe(jc, recipe_cls, params, arn)
        if base is not None:
            recipe.warm_start = _warm_start(jc, base, recipe_cls, snap)
        model = recipe.fit(snap.data)
        _checkpoint(jc, arn)
        directory.parent.mkdir(parents=True, exist_ok=True)
        _write_model(directory, snap, model, recipe_cls, started, event_cutoff, recent)
    except Stopped:
        return
    finally:
        artifacts.remove_path(scratch)
    with jc.catalog.write() as conn:
        current = Catalog.get(conn, arn)
        if current is None:
            return
        if current.status == CREATE_STOPPING:
            Catalog.update(conn, arn, status=CREATE_STOPPED)
            return
        if current.status not in CREATING:
            return
        doc = dict(current.doc)
        doc["_metrics"] = metrics
        doc["trainingHours"] = (time.time() - started) / 3600.0
        doc["tunedHPOParams"] = None
        Catalog.update(conn, arn, status=ACTIVE, doc=doc)
        autotrain.follow_latest(conn, current)

"""The solution version job: snapshot the data, measure, fit, write the model files."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from pertinent.data.schema import DatasetSchema, SchemaError, parse_schema
from pertinent.data.snapshot import (
    InsufficientData,
    Snapshot,
    TrainingConfigError,
    build_snapshot,
    check_minimum_data,
)
from pertinent.evaluation.metrics import evaluate
from pertinent.jobs.base import Defer, JobContext, JobFailed, handler
from pertinent.recipes.registry import get_recipe
from pertinent.store import artifacts
from pertinent.store.catalog import Catalog, Job, Resource
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


def _parts(conn: Connection, group_arn: str, dataset_type: str) -> list[Path]:
    dataset = _dataset(conn, group_arn, dataset_type)
    return [] if dataset is None else [Path(p) for p, _ in Catalog.parts(conn, dataset.arn)]


def _dataset(conn: Connection, group_arn: str, dataset_type: str) -> Resource | None:
    for ds in Catalog.children(conn, kind="dataset", group_arn=group_arn):
        if ds.doc["datasetType"] == dataset_type and ds.status == ACTIVE:
            return ds
    return None


def _schemas(conn: Connection, group_arn: str) -> dict[str, DatasetSchema]:
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


def _checkpoint(jc: JobContext, arn: str) -> None:
    with jc.catalog.write() as conn:
        res = Catalog.get(conn, arn)
        if res is None:
            raise Stopped()
        if res.status == CREATE_STOPPING:
            Catalog.update(conn, arn, status=CREATE_STOPPED)
            raise Stopped()


def _snapshot(jc: JobContext, version: Resource) -> Snapshot:
    group_arn = version.doc["datasetGroupArn"]
    with jc.catalog.read() as conn:
        interactions = _parts(conn, group_arn, "INTERACTIONS")
        items = _parts(conn, group_arn, "ITEMS")
        users = _parts(conn, group_arn, "USERS")
        schemas = _schemas(conn, group_arn)
    if not interactions:
        raise JobFailed(
            "Create failed. The dataset group has no interactions data: create an Interactions "
            "dataset and import data into it before training."
        )
    config: dict[str, Any] = version.doc.get("solutionConfig") or {}
    threshold = config.get("eventValueThreshold")
    event_type = version.doc.get("eventType")
    events = (config.get("eventsConfig") or {}).get("eventParametersList")
    try:
        snap = build_snapshot(
            interactions,
            items,
            users,
            event_type=event_type,
            event_value_threshold=float(threshold) if threshold is not None else None,
            seed=SEED,
            schemas=schemas,
            events_config=events,
            training_data_config=config.get("trainingDataConfig"),
        )
        check_minimum_data(snap.data, event_type=event_type)
    except InsufficientData as exc:
        raise JobFailed(str(exc)) from None
    except TrainingConfigError as exc:
        raise JobFailed(f"Create failed. {exc}") from None
    return snap


def _write_model(directory: Path, snap: Snapshot, model: Any, recipe: Any, started: float) -> None:
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
    try:
        snap = _snapshot(jc, version)
        recipe_cls = get_recipe(version.doc["recipeArn"].rsplit("/", 1)[-1])
        config: dict[str, Any] = version.doc.get("solutionConfig") or {}
        params = recipe_cls.parse_params(
            config.get("algorithmHyperParameters"), config.get("featureTransformationParameters")
        )
        _checkpoint(jc, arn)
        metrics = evaluate(recipe_cls(params), snap.data, seed=SEED)
        _checkpoint(jc, arn)
        model = recipe_cls(params).fit(snap.data)
        _checkpoint(jc, arn)
        directory = artifacts.version_dir(jc.settings, arn)
        directory.parent.mkdir(parents=True, exist_ok=True)
        _write_model(directory, snap, model, recipe_cls, started)
    except Stopped:
        return
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

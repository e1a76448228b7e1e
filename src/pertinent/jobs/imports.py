"""The dataset import job: read, validate, store as a Parquet part, commit atomically.

All-or-nothing: the part is written under a new name first; only the catalog
transaction that records it makes it visible, so a failure at any point leaves the
dataset exactly as it was.
"""

from __future__ import annotations

import time
import uuid

from pertinent.data.csv_import import ImportFailed, read_location, write_part
from pertinent.data.schema import parse_schema
from pertinent.jobs.base import Defer, JobContext, JobFailed, handler
from pertinent.store import artifacts
from pertinent.store.catalog import Catalog, Job
from pertinent.store.status import ACTIVE, CREATE_IN_PROGRESS, CREATE_PENDING, CREATING

# Personalize refuses interaction imports smaller than this (spec §4.4, §15).
MIN_INTERACTION_ROWS = 1000


@handler("import")
def run_import(jc: JobContext, job: Job) -> None:
    arn = job.resource_arn
    with jc.catalog.read() as conn:
        imp = Catalog.get(conn, arn)
        if imp is None or imp.status not in CREATING:
            return
        dataset = Catalog.get(conn, imp.doc["datasetArn"])
        if dataset is None:
            raise JobFailed(f"The dataset {imp.doc['datasetArn']} no longer exists.")
        if dataset.status in CREATING:
            raise Defer(0.2, f"waiting for {dataset.arn} to become ACTIVE")
        if dataset.status != ACTIVE:
            raise JobFailed(f"The dataset {dataset.arn} is {dataset.status}.")
        schema_res = Catalog.get(conn, dataset.doc["schemaArn"])
        if schema_res is None:
            raise JobFailed(f"The schema {dataset.doc['schemaArn']} no longer exists.")
    with jc.catalog.write() as conn:
        if imp.status == CREATE_PENDING:
            Catalog.update(conn, arn, status=CREATE_IN_PROGRESS)

    dataset_type = dataset.doc["datasetType"]
    schema = parse_schema(schema_res.doc["schema"])
    try:
        frame = read_location(
            imp.doc["dataSource"]["dataLocation"],
            schema,
            dataset_type,
            s3_endpoint_url=jc.settings.s3_endpoint_url,
            min_rows=MIN_INTERACTION_ROWS if dataset_type == "INTERACTIONS" else 0,
        )
    except ImportFailed as exc:
        raise JobFailed(exc.message) from None

    directory = artifacts.dataset_dir(jc.settings, dataset.arn)
    directory.mkdir(parents=True, exist_ok=True)
    part = directory / f"{int(time.time() * 1000)}-{uuid.uuid4().hex[:12]}.parquet"
    rows = write_part(frame, part)
    del frame

    replace = imp.doc.get("importMode", "FULL") == "FULL"
    dropped: list[str] = []
    try:
        with jc.catalog.write() as conn:
            current = Catalog.get(conn, dataset.arn)
            if current is None or current.status != ACTIVE:
                raise JobFailed(f"The dataset {dataset.arn} was deleted during the import.")
            latest = Catalog.get(conn, arn)
            if latest is None or latest.status not in CREATING:
                raise JobFailed("The import job was removed while it ran.")
            dropped = Catalog.commit_part(conn, dataset.arn, str(part), rows, arn, replace=replace)
            doc = dict(latest.doc)
            doc["_rows"] = rows
            Catalog.update(conn, arn, status=ACTIVE, doc=doc)
    except BaseException:
        artifacts.remove_path(part)
        raise
    for path in dropped:
        artifacts.remove_path(path)

"""Datasets (one per type per group) and their bulk import jobs."""

from __future__ import annotations

import time
from typing import Any

from pertinent.data.schema import SchemaError, canonical_dataset_type, check_schema_for_dataset
from pertinent.data.schema import parse_schema as parse_avro
from pertinent.errors import (
    InvalidInputException,
    LimitExceededException,
    ResourceInUseException,
)
from pertinent.resources._common import (
    Context,
    ensure_new,
    ensure_usable,
    new_resource,
    operation,
    register_reads,
    require,
    start_delete,
    tags_of,
)
from pertinent.store.catalog import Catalog, Resource
from pertinent.store.status import (
    ACTIVE,
    CREATING,
)

KIND = "dataset"
IMPORT_KIND = "dataset-import-job"
MAX_PENDING_IMPORTS = 5  # per region, not adjustable on AWS (spec §15)


def _check_fit(
    ctx: Context, conn: Any, schema_arn: str, dataset_type: str, domain: str | None
) -> None:
    schema = require(conn, ctx, schema_arn, "schema")
    try:
        check_schema_for_dataset(parse_avro(schema.doc["schema"]), dataset_type, domain)
    except SchemaError as exc:
        raise InvalidInputException(
            f"The schema {schema_arn} does not fit a {dataset_type} dataset: {exc}"
        ) from None


@operation("CreateDataset")
def create_dataset(ctx: Context, req: dict[str, Any]) -> dict[str, Any]:
    try:
        dataset_type = canonical_dataset_type(req["datasetType"])
    except ValueError as exc:
        raise InvalidInputException(str(exc)) from None
    group_arn = req["datasetGroupArn"]
    with ctx.catalog.write() as conn:
        group = require(conn, ctx, group_arn, "dataset-group")
        ensure_usable(group, "create a dataset")
        domain = group.doc.get("domain")
        if domain and dataset_type in ("ACTIONS", "ACTION_INTERACTIONS"):
            raise InvalidInputException(
                f"{dataset_type} datasets cannot be created in a domain dataset group."
            )
        _check_fit(ctx, conn, req["schemaArn"], dataset_type, domain)
        arn = ctx.arn(f"dataset/{group.name}/{dataset_type}")
        ensure_new(conn, arn, KIND)
        doc = {
            "name": req["name"],
            "datasetArn": arn,
            "datasetGroupArn": group_arn,
            "datasetType": dataset_type,
            "schemaArn": req["schemaArn"],
            "tags": tags_of(req),
        }
        res = new_resource(
            ctx,
            kind=KIND,
            arn=arn,
            name=req["name"],
            doc=doc,
            parent_arn=group_arn,
            group_arn=group_arn,
        )
        Catalog.insert(conn, res)
        Catalog.enqueue(conn, "activate", arn)
    return {"datasetArn": arn}


register_reads(
    KIND,
    describe_op="DescribeDataset",
    arn_param="datasetArn",
    out_key="dataset",
    list_op="ListDatasets",
    list_key="datasets",
    parent_param="datasetGroupArn",
    parent_kind="dataset-group",
)


@operation("UpdateDataset")
def update_dataset(ctx: Context, req: dict[str, Any]) -> dict[str, Any]:
    arn = req["datasetArn"]
    with ctx.catalog.write() as conn:
        res = require(conn, ctx, arn, KIND)
        if res.status != ACTIVE:
            raise ResourceInUseException(
                f"Cannot update the dataset {arn} while it is in status {res.status}."
            )
        group = require(conn, ctx, res.doc["datasetGroupArn"], "dataset-group")
        _check_fit(ctx, conn, req["schemaArn"], res.doc["datasetType"], group.doc.get("domain"))
        now = time.time()
        doc = dict(res.doc)
        doc["schemaArn"] = req["schemaArn"]
        doc["latestDatasetUpdate"] = {
            "schemaArn": req["schemaArn"],
            "status": ACTIVE,
            "creationDateTime": now,
            "lastUpdatedDateTime": now,
        }
        Catalog.update(conn, arn, doc=doc, now=now)
    return {"datasetArn": arn}


def _busy_jobs(conn: Any, group_arn: str) -> list[Resource]:
    busy = Catalog.children(conn, kind=IMPORT_KIND, group_arn=group_arn, statuses=CREATING)
    busy += Catalog.children(conn, kind="solution-version", group_arn=group_arn, statuses=CREATING)
    return busy


@operation("DeleteDataset")
def delete_dataset(ctx: Context, req: dict[str, Any]) -> dict[str, Any]:
    arn = req["datasetArn"]
    with ctx.catalog.write() as conn:
        res = require(conn, ctx, arn, KIND)
        busy = _busy_jobs(conn, res.doc["datasetGroupArn"])
        if busy:
            raise ResourceInUseException(
                f"Cannot delete the dataset {arn} while {busy[0].arn} is {busy[0].status}."
            )
        start_delete(conn, ctx, arn, KIND)
    return {}


# -- import jobs ----------------------------------------------------------------------


def _check_location(location: str) -> None:
    if not location.startswith(("s3://", "file://", "/")):
        raise InvalidInputException(
            f"Invalid Data location: {location}. Pertinent imports from s3:// locations "
            "(PERTINENT_S3_ENDPOINT_URL selects the store), file:// URIs and absolute paths "
            "on the server."
        )


@operation("CreateDatasetImportJob")
def create_dataset_import_job(ctx: Context, req: dict[str, Any]) -> dict[str, Any]:
    name = req["jobName"]
    dataset_arn = req["datasetArn"]
    location = req["dataSource"].get("dataLocation")
    if not location:
        raise InvalidInputException("dataSource.dataLocation is required.")
    _check_location(location)
    mode = req.get("importMode") or "FULL"
    arn = ctx.arn(f"dataset-import-job/{name}")
    with ctx.catalog.write() as conn:
        dataset = require(conn, ctx, dataset_arn, KIND)
        ensure_usable(dataset, "import into the dataset")
        ensure_new(conn, arn, IMPORT_KIND)
        pending = Catalog.count(
            conn, kind=IMPORT_KIND, account_id=ctx.account_id, region=ctx.region, statuses=CREATING
        )
        if pending >= MAX_PENDING_IMPORTS:
            raise LimitExceededException(
                f"More than {MAX_PENDING_IMPORTS} resources with PENDING or IN_PROGRESS status."
            )
        if mode == "INCREMENTAL":
            done = Catalog.children(conn, kind=IMPORT_KIND, parent_arn=dataset_arn)
            if not any(j.status in (ACTIVE, *CREATING) for j in done):
                raise InvalidInputException(
                    f"An INCREMENTAL import needs an earlier bulk import into {dataset_arn}; "
                    "run a FULL import first."
                )
        doc = {
            "jobName": name,
            "datasetImportJobArn": arn,
            "datasetArn": dataset_arn,
            "dataSource": {"dataLocation": location},
            "roleArn": req.get("roleArn"),
            "importMode": mode,
            "publishAttributionMetricsToS3": req.get("publishAttributionMetricsToS3"),
            "tags": tags_of(req),
        }
        res = new_resource(
            ctx,
            kind=IMPORT_KIND,
            arn=arn,
            name=name,
            doc=doc,
            parent_arn=dataset_arn,
            group_arn=dataset.group_arn,
        )
        Catalog.insert(conn, res)
        Catalog.enqueue(conn, "import", arn)
    return {"datasetImportJobArn": arn}


register_reads(
    IMPORT_KIND,
    describe_op="DescribeDatasetImportJob",
    arn_param="datasetImportJobArn",
    out_key="datasetImportJob",
    list_op="ListDatasetImportJobs",
    list_key="datasetImportJobs",
    parent_param="datasetArn",
    parent_kind=KIND,
)

"""Dataset groups: the container of datasets, solutions, campaigns and trackers."""

from __future__ import annotations

from typing import Any

from pertinent.errors import InvalidInputException, ResourceInUseException
from pertinent.resources._common import (
    Context,
    describe,
    ensure_new,
    list_page,
    new_resource,
    operation,
    require,
    tags_of,
)
from pertinent.store.catalog import Catalog
from pertinent.store.status import (
    DELETE_PENDING,
    DELETING,
)

KIND = "dataset-group"

# Children that must be deleted before their group (spec §2.3 "Deletion order").
CHILD_KINDS = (
    "dataset",
    "solution",
    "event-tracker",
    "filter",
    "recommender",
    "metric-attribution",
)


@operation("CreateDatasetGroup")
def create_dataset_group(ctx: Context, req: dict[str, Any]) -> dict[str, Any]:
    name = req["name"]
    if req.get("roleArn") and not req.get("kmsKeyArn"):
        raise InvalidInputException("roleArn is only valid together with kmsKeyArn.")
    arn = ctx.arn(f"dataset-group/{name}")
    doc: dict[str, Any] = {
        "name": name,
        "datasetGroupArn": arn,
        "roleArn": req.get("roleArn"),
        "kmsKeyArn": req.get("kmsKeyArn"),
        "domain": req.get("domain"),
        "tags": tags_of(req),
    }
    with ctx.catalog.write() as conn:
        ensure_new(conn, arn, KIND)
        Catalog.insert(
            conn, new_resource(ctx, kind=KIND, arn=arn, name=name, doc=doc, group_arn=arn)
        )
        Catalog.enqueue(conn, "activate", arn)
    out: dict[str, Any] = {"datasetGroupArn": arn}
    if req.get("domain"):
        out["domain"] = req["domain"]
    return out


@operation("DescribeDatasetGroup")
def describe_dataset_group(ctx: Context, req: dict[str, Any]) -> dict[str, Any]:
    with ctx.catalog.read() as conn:
        res = require(conn, ctx, req["datasetGroupArn"], KIND)
    return {"datasetGroup": describe(res)}


@operation("ListDatasetGroups")
def list_dataset_groups(ctx: Context, req: dict[str, Any]) -> dict[str, Any]:
    with ctx.catalog.read() as conn:
        items, token = list_page(conn, ctx, req, kind=KIND)
    return {"datasetGroups": items, "nextToken": token}


@operation("DeleteDatasetGroup")
def delete_dataset_group(ctx: Context, req: dict[str, Any]) -> dict[str, Any]:
    arn = req["datasetGroupArn"]
    with ctx.catalog.write() as conn:
        res = require(conn, ctx, arn, KIND)
        if res.status in DELETING:
            raise ResourceInUseException(f"The dataset group {arn} is already being deleted.")
        for kind in CHILD_KINDS:
            children = Catalog.children(conn, kind=kind, group_arn=arn)
            if children:
                raise ResourceInUseException(
                    f"Cannot delete the dataset group {arn}: delete its {kind.replace('-', ' ')}s "
                    f"first ({children[0].arn}"
                    + (f" and {len(children) - 1} more" if len(children) > 1 else "")
                    + ")."
                )
        Catalog.update(conn, arn, status=DELETE_PENDING)
        Catalog.enqueue(conn, "delete", arn)
    return {}

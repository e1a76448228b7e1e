"""Dataset groups: the container of datasets, solutions, campaigns and trackers."""

from __future__ import annotations

from typing import Any

from pertinent.errors import InvalidInputException, ResourceInUseException
from pertinent.resources._common import (
    Context,
    ensure_new,
    new_resource,
    operation,
    register_reads,
    require,
    start_delete,
    tags_of,
)
from pertinent.store.catalog import Catalog

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


register_reads(
    KIND,
    describe_op="DescribeDatasetGroup",
    arn_param="datasetGroupArn",
    out_key="datasetGroup",
    list_op="ListDatasetGroups",
    list_key="datasetGroups",
)


@operation("DeleteDatasetGroup")
def delete_dataset_group(ctx: Context, req: dict[str, Any]) -> dict[str, Any]:
    arn = req["datasetGroupArn"]
    with ctx.catalog.write() as conn:
        require(conn, ctx, arn, KIND)
        for kind in CHILD_KINDS:
            children = Catalog.children(conn, kind=kind, group_arn=arn)
            if children:
                raise ResourceInUseException(
                    f"Cannot delete the dataset group {arn}: delete its {kind.replace('-', ' ')}s "
                    f"first ({children[0].arn}"
                    + (f" and {len(children) - 1} more" if len(children) > 1 else "")
                    + ")."
                )
        start_delete(conn, ctx, arn, KIND)
    return {}

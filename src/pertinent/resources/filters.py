"""Filters: CreateFilter / DescribeFilter / ListFilters / DeleteFilter (spec §4.14, §10).

The expression is parsed and checked against the dataset group's schemas here, so a
filter that becomes ACTIVE can only fail at request time for its placeholder values.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from pertinent.data.schema import DatasetSchema, SchemaError, parse_schema
from pertinent.errors import InvalidInputException, LimitExceededException
from pertinent.filters.grammar import parse
from pertinent.filters.validate import MAX_FIELDS_PER_GROUP, validate
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
from pertinent.store.catalog import Catalog
from pertinent.store.status import CREATE_FAILED, DELETING

KIND = "filter"
MAX_FILTERS_PER_GROUP = 30


def _schemas(conn: Connection, group_arn: str) -> dict[str, DatasetSchema]:
    """The schema of each dataset of the group (being created counts: a notebook may
    create its filters before the first import finishes)."""
    out: dict[str, DatasetSchema] = {}
    for dataset in Catalog.children(conn, kind="dataset", group_arn=group_arn):
        if dataset.status in DELETING or dataset.status == CREATE_FAILED:
            continue
        schema = Catalog.get(conn, dataset.doc["schemaArn"])
        if schema is None:
            continue
        try:
            out[str(dataset.doc["datasetType"]).upper()] = parse_schema(schema.doc["schema"])
        except SchemaError:
            continue
    return out


@operation("CreateFilter")
def create_filter(ctx: Context, req: dict[str, Any]) -> dict[str, Any]:
    name = req["name"]
    group_arn = req["datasetGroupArn"]
    expression = req["filterExpression"]
    arn = ctx.arn(f"filter/{name}")
    tree = parse(expression)
    with ctx.catalog.write() as conn:
        group = require(conn, ctx, group_arn, "dataset-group")
        ensure_usable(group, "create a filter")
        ensure_new(conn, arn, KIND)
        fields = validate(tree, _schemas(conn, group_arn))
        others = [
            f
            for f in Catalog.children(conn, kind=KIND, group_arn=group_arn)
            if f.status not in DELETING
        ]
        if len(others) >= MAX_FILTERS_PER_GROUP:
            raise LimitExceededException(
                f"The dataset group {group_arn} already has {len(others)} filters, the most "
                "it can have; delete one first."
            )
        in_group = {tuple(f) for other in others for f in other.doc.get("_fields", [])}
        in_group |= set(fields)
        if len(in_group) > MAX_FIELDS_PER_GROUP:
            raise LimitExceededException(
                f"The filters of dataset group {group_arn} would use {len(in_group)} distinct "
                f"dataset fields; a dataset group's filters can use at most "
                f"{MAX_FIELDS_PER_GROUP}."
            )
        if not tree.expressions:
            raise InvalidInputException("Could not create filter. The expression is empty.")
        doc = {
            "name": name,
            "filterArn": arn,
            "datasetGroupArn": group_arn,
            "filterExpression": expression,
            "tags": tags_of(req),
            "_fields": [list(f) for f in fields],
        }
        Catalog.insert(
            conn,
            new_resource(
                ctx,
                kind=KIND,
                arn=arn,
                name=name,
                doc=doc,
                parent_arn=group_arn,
                group_arn=group_arn,
            ),
        )
        Catalog.enqueue(conn, "activate", arn)
    return {"filterArn": arn}


register_reads(
    KIND,
    describe_op="DescribeFilter",
    arn_param="filterArn",
    out_key="filter",
    list_op="ListFilters",
    list_key="Filters",
    parent_param="datasetGroupArn",
    parent_kind="dataset-group",
)


@operation("DeleteFilter")
def delete_filter(ctx: Context, req: dict[str, Any]) -> dict[str, Any]:
    with ctx.catalog.write() as conn:
        start_delete(conn, ctx, req["filterArn"], KIND)
    return {}

"""Schemas: immutable Avro record definitions that datasets point at."""

from __future__ import annotations

from typing import Any

from pertinent.data.schema import SchemaError, parse_schema
from pertinent.errors import InvalidInputException, ResourceInUseException
from pertinent.resources._common import (
    Context,
    ensure_new,
    new_resource,
    operation,
    register_reads,
    require,
)
from pertinent.store.catalog import Catalog

KIND = "schema"


@operation("CreateSchema")
def create_schema(ctx: Context, req: dict[str, Any]) -> dict[str, Any]:
    name = req["name"]
    try:
        parse_schema(req["schema"])
    except SchemaError as exc:
        raise InvalidInputException(f"The schema is not valid: {exc}") from None
    arn = ctx.arn(f"schema/{name}")
    doc = {"name": name, "schemaArn": arn, "schema": req["schema"], "domain": req.get("domain")}
    with ctx.catalog.write() as conn:
        ensure_new(conn, arn, KIND)
        Catalog.insert(conn, new_resource(ctx, kind=KIND, arn=arn, name=name, doc=doc, status=None))
    return {"schemaArn": arn}


register_reads(
    KIND,
    describe_op="DescribeSchema",
    arn_param="schemaArn",
    out_key="schema",
    list_op="ListSchemas",
    list_key="schemas",
)


@operation("DeleteSchema")
def delete_schema(ctx: Context, req: dict[str, Any]) -> dict[str, Any]:
    arn = req["schemaArn"]
    with ctx.catalog.write() as conn:
        require(conn, ctx, arn, KIND)
        users = [d.arn for d in Catalog.children(conn, kind="dataset") if d.doc["schemaArn"] == arn]
        if users:
            raise ResourceInUseException(
                f"Cannot delete the schema {arn}: the dataset {users[0]} uses it."
            )
        Catalog.delete(conn, arn)
    return {}

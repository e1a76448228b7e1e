"""Tags on any resource (TagResource, UntagResource, ListTagsForResource)."""

from __future__ import annotations

from typing import Any

from pertinent.errors import ResourceNotFoundException, TooManyTagsException
from pertinent.resources._common import Context, operation, tags_of
from pertinent.store.catalog import Catalog, Resource

MAX_TAGS = 50  # per resource, as on AWS


def _resource(conn: Any, ctx: Context, arn: str) -> Resource:
    res = Catalog.get(conn, arn)
    if res is None or res.account_id != ctx.account_id:
        raise ResourceNotFoundException(f"Could not find the resource {arn}.")
    return res


@operation("TagResource")
def tag_resource(ctx: Context, req: dict[str, Any]) -> dict[str, Any]:
    new = {t["tagKey"]: t["tagValue"] for t in tags_of(req)}
    with ctx.catalog.write() as conn:
        res = _resource(conn, ctx, req["resourceArn"])
        tags = {t["tagKey"]: t["tagValue"] for t in res.doc.get("tags") or []}
        tags.update(new)
        if len(tags) > MAX_TAGS:
            raise TooManyTagsException(
                f"The resource would have {len(tags)} tags; the limit is {MAX_TAGS}."
            )
        doc = dict(res.doc)
        doc["tags"] = [{"tagKey": k, "tagValue": v} for k, v in tags.items()]
        Catalog.update(conn, res.arn, doc=doc, now=res.updated_at)
    return {}


@operation("UntagResource")
def untag_resource(ctx: Context, req: dict[str, Any]) -> dict[str, Any]:
    drop = set(req["tagKeys"])
    with ctx.catalog.write() as conn:
        res = _resource(conn, ctx, req["resourceArn"])
        doc = dict(res.doc)
        doc["tags"] = [t for t in res.doc.get("tags") or [] if t["tagKey"] not in drop]
        Catalog.update(conn, res.arn, doc=doc, now=res.updated_at)
    return {}


@operation("ListTagsForResource")
def list_tags_for_resource(ctx: Context, req: dict[str, Any]) -> dict[str, Any]:
    with ctx.catalog.read() as conn:
        res = _resource(conn, ctx, req["resourceArn"])
    return {"tags": list(res.doc.get("tags") or [])}

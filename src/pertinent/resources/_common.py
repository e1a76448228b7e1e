"""What every resource family shares: the request context, ARNs, lookups, lists, tags."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.engine import Connection

from pertinent.config import Settings
from pertinent.errors import (
    InvalidInputException,
    InvalidNextTokenException,
    ResourceAlreadyExistsException,
    ResourceInUseException,
    ResourceNotFoundException,
)
from pertinent.store.catalog import Catalog, Resource
from pertinent.store.status import ACTIVE, CREATE_FAILED, CREATE_PENDING, DELETE_PENDING, DELETING

Handler = Callable[["Context", dict[str, Any]], dict[str, Any]]
OPERATIONS: dict[str, Handler] = {}


def operation(name: str) -> Callable[[Handler], Handler]:
    """Register a control-plane handler under its Personalize operation name."""

    def register(fn: Handler) -> Handler:
        OPERATIONS[name] = fn
        return fn

    return register


@dataclass(frozen=True)
class Context:
    """Who is asking, where, and the stores to answer from."""

    settings: Settings
    catalog: Catalog
    account_id: str
    region: str

    def arn(self, path: str) -> str:
        return f"arn:aws:personalize:{self.region}:{self.account_id}:{path}"


# Human names of resource kinds, for messages.
LABELS = {
    "dataset-group": "dataset group",
    "schema": "schema",
    "dataset": "dataset",
    "dataset-import-job": "dataset import job",
    "solution": "solution",
    "solution-version": "solution version",
    "campaign": "campaign",
    "event-tracker": "event tracker",
    "filter": "filter",
}


def require(conn: Connection, ctx: Context, arn: str, kind: str) -> Resource:
    """The resource at ``arn`` if it is of ``kind`` and visible to the caller."""
    res = Catalog.get(conn, arn)
    if res is None or res.kind != kind or res.account_id != ctx.account_id:
        raise ResourceNotFoundException(f"Could not find the {LABELS.get(kind, kind)} {arn}.")
    return res


def ensure_new(conn: Connection, arn: str, kind: str) -> None:
    if Catalog.exists(conn, arn):
        raise ResourceAlreadyExistsException(
            f"A {LABELS.get(kind, kind)} with the ARN {arn} already exists."
        )


def ensure_usable(res: Resource, action: str) -> None:
    """Refuse to build on a resource that failed or is going away.

    A resource still being created is accepted: its jobs run first (the queue is FIFO
    and dependent jobs wait), so a notebook that does not poll still works.
    """
    label = LABELS.get(res.kind, res.kind)
    if res.status in DELETING:
        raise ResourceInUseException(f"Cannot {action}: the {label} {res.arn} is being deleted.")
    if res.status == CREATE_FAILED:
        raise ResourceInUseException(
            f"Cannot {action}: the {label} {res.arn} is in status CREATE FAILED "
            f"({res.doc.get('failureReason', 'no reason recorded')})."
        )


def ensure_active(res: Resource, action: str) -> None:
    if res.status != ACTIVE:
        label = LABELS.get(res.kind, res.kind)
        raise ResourceInUseException(
            f"Cannot {action}: the {label} {res.arn} is in status {res.status}, not ACTIVE."
        )


def new_resource(
    ctx: Context,
    *,
    kind: str,
    arn: str,
    name: str,
    doc: dict[str, Any],
    status: str | None = CREATE_PENDING,
    parent_arn: str | None = None,
    group_arn: str | None = None,
) -> Resource:
    now = time.time()
    return Resource(
        arn=arn,
        account_id=ctx.account_id,
        region=ctx.region,
        kind=kind,
        name=name,
        status=status,
        created_at=now,
        updated_at=now,
        doc=doc,
        parent_arn=parent_arn,
        group_arn=group_arn,
    )


def describe(res: Resource) -> dict[str, Any]:
    """The resource as its Describe* shape sees it (the model projection drops extras)."""
    out = dict(res.doc)
    if res.status is not None:
        out["status"] = res.status
    out["creationDateTime"] = res.created_at
    out["lastUpdatedDateTime"] = res.updated_at
    return out


def list_page(
    conn: Connection,
    ctx: Context,
    req: dict[str, Any],
    *,
    kind: str,
    parent_arn: str | None = None,
    group_arn: str | None = None,
    view: Callable[[Resource], dict[str, Any]] = describe,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a List* call, newest first, with an opaque continuation token."""
    limit = int(req.get("maxResults") or 100)
    after = decode_token(req.get("nextToken"), kind)
    rows = Catalog.page(
        conn,
        account_id=ctx.account_id,
        region=ctx.region,
        kind=kind,
        limit=limit + 1,
        after=after,
        parent_arn=parent_arn,
        group_arn=group_arn,
    )
    token = None
    if len(rows) > limit:
        rows = rows[:limit]
        token = encode_token(kind, rows[-1].created_at, rows[-1].arn)
    return [view(r) for r in rows], token


def encode_token(kind: str, created_at: float, arn: str) -> str:
    raw = orjson.dumps([kind, created_at, arn])
    return base64.urlsafe_b64encode(raw).decode("ascii")


def decode_token(token: str | None, kind: str) -> tuple[float, str] | None:
    if not token:
        return None
    try:
        got_kind, created_at, arn = orjson.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        if got_kind != kind:
            raise ValueError(kind)
        return float(created_at), str(arn)
    except Exception:
        raise InvalidNextTokenException(
            "The nextToken is not valid for this list; pass the token from the previous page "
            "of the same List call."
        ) from None


def tags_of(req: dict[str, Any]) -> list[dict[str, str]]:
    tags = req.get("tags") or []
    keys = [t["tagKey"] for t in tags]
    if len(set(keys)) != len(keys):
        raise InvalidInputException("Duplicate tag keys are not allowed.")
    return [{"tagKey": t["tagKey"], "tagValue": t["tagValue"]} for t in tags]


def parse_arn(arn: str) -> tuple[str, str, str, str]:
    """(region, account, resource type, rest) of a Personalize ARN."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[2] != "personalize":
        raise InvalidInputException(f"{arn} is not a valid Personalize ARN.")
    type_, _, rest = parts[5].partition("/")
    return parts[3], parts[4], type_, rest


def register_reads(
    kind: str,
    *,
    describe_op: str,
    arn_param: str,
    out_key: str,
    list_op: str,
    list_key: str,
    parent_param: str | None = None,
    parent_kind: str | None = None,
    view: Callable[[Connection, Resource], dict[str, Any]] | None = None,
) -> None:
    """Register the Describe* and List* operations of a resource kind.

    ``parent_param`` is the List filter (e.g. ``datasetGroupArn``); an unknown parent
    is a ResourceNotFoundException, an omitted one lists everything in the account.
    """

    def describe_handler(ctx: Context, req: dict[str, Any]) -> dict[str, Any]:
        with ctx.catalog.read() as conn:
            res = require(conn, ctx, req[arn_param], kind)
            return {out_key: view(conn, res) if view else describe(res)}

    def list_handler(ctx: Context, req: dict[str, Any]) -> dict[str, Any]:
        parent = req.get(parent_param) if parent_param else None
        with ctx.catalog.read() as conn:
            if parent and parent_kind:
                require(conn, ctx, parent, parent_kind)
            items, token = list_page(conn, ctx, req, kind=kind, parent_arn=parent)
        return {list_key: items, "nextToken": token}

    OPERATIONS[describe_op] = describe_handler
    OPERATIONS[list_op] = list_handler


def start_delete(conn: Connection, ctx: Context, arn: str, kind: str) -> Resource:
    """Mark a resource DELETE PENDING and queue its deletion; refuse a second delete."""
    res = require(conn, ctx, arn, kind)
    if res.status in DELETING:
        raise ResourceInUseException(
            f"The {LABELS.get(kind, kind)} {arn} is already being deleted."
        )
    Catalog.update(conn, arn, status=DELETE_PENDING)
    Catalog.enqueue(conn, "delete", arn)
    return res

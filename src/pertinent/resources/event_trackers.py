"""Event trackers: the trackingId that routes PutEvents into a dataset group."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.engine import Connection

from pertinent.errors import ResourceAlreadyExistsException
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
from pertinent.store.status import DELETING

KIND = "event-tracker"


def tracker_of_group(conn: Connection, group_arn: str) -> Resource | None:
    live = [
        t
        for t in Catalog.children(conn, kind=KIND, group_arn=group_arn)
        if t.status not in DELETING
    ]
    return live[0] if live else None


def tracker_by_tracking_id(conn: Connection, tracking_id: str) -> Resource | None:
    # Trackers are few (one per dataset group); callers cache the answer.
    for tracker in Catalog.children(conn, kind=KIND):
        if tracker.doc.get("trackingId") == tracking_id and tracker.status not in DELETING:
            return tracker
    return None


@operation("CreateEventTracker")
def create_event_tracker(ctx: Context, req: dict[str, Any]) -> dict[str, Any]:
    name = req["name"]
    group_arn = req["datasetGroupArn"]
    arn = ctx.arn(f"event-tracker/{name}")
    tracking_id = str(uuid.uuid4())
    with ctx.catalog.write() as conn:
        group = require(conn, ctx, group_arn, "dataset-group")
        ensure_usable(group, "create an event tracker")
        ensure_new(conn, arn, KIND)
        existing = tracker_of_group(conn, group_arn)
        if existing is not None:
            raise ResourceAlreadyExistsException(
                f"The dataset group {group_arn} already has the event tracker {existing.arn}; "
                "a dataset group has at most one."
            )
        doc = {
            "name": name,
            "eventTrackerArn": arn,
            "accountId": ctx.account_id,
            "trackingId": tracking_id,
            "datasetGroupArn": group_arn,
            "tags": tags_of(req),
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
    return {"eventTrackerArn": arn, "trackingId": tracking_id}


register_reads(
    KIND,
    describe_op="DescribeEventTracker",
    arn_param="eventTrackerArn",
    out_key="eventTracker",
    list_op="ListEventTrackers",
    list_key="eventTrackers",
    parent_param="datasetGroupArn",
    parent_kind="dataset-group",
)


@operation("DeleteEventTracker")
def delete_event_tracker(ctx: Context, req: dict[str, Any]) -> dict[str, Any]:
    with ctx.catalog.write() as conn:
        start_delete(conn, ctx, req["eventTrackerArn"], KIND)
    return {}

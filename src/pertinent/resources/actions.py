"""PutActions and PutActionInteractions (spec §6): the Actions side of the events API.

Both are validated against the group's Actions / Action interactions dataset schema
like PutItems and PutEvents, and committed through the same group-commit writer before
the 200 (durable). They land in ``put_records``: actions one row per ``actionId`` (the
newest write wins), action interactions one row per event, keyed by ``eventId`` (so
a client's retry of the same event is stored once) or a generated id.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from pertinent.data.schema import normalize_name
from pertinent.errors import InvalidInputException
from pertinent.resources._common import Context
from pertinent.resources.events import (
    EventsService,
    _properties,
    _record_rows,
    check_properties,
)

# Action-interaction columns filled from the request's own members, never properties.
_OWN_COLUMNS = frozenset(
    normalize_name(c)
    for c in ("USER_ID", "ACTION_ID", "TIMESTAMP", "EVENT_TYPE", "IMPRESSION", "RECOMMENDATION_ID")
)


async def put_actions(ctx: Context, service: EventsService, req: dict[str, Any]) -> dict[str, Any]:
    target = service.dataset_target(ctx, req["datasetArn"], "ACTIONS")
    rows = _record_rows(target, req["actions"], "actionId", "ACTION_ID", "actions")
    await service.writer.write(record_rows=rows)
    return {}


async def put_action_interactions(
    ctx: Context, service: EventsService, req: dict[str, Any]
) -> dict[str, Any]:
    target = service.tracker_target(ctx, req["trackingId"], "ACTION_INTERACTIONS")
    now = time.time()
    rows = []
    for i, raw in enumerate(req["actionInteractions"]):
        where = f"actionInteractions.{i + 1}"
        props = _properties(raw.get("properties"), where)
        user_id = raw.get("userId")
        user_field = target.schema.field("USER_ID")
        if user_id is None and user_field is not None and not user_field.nullable:
            raise InvalidInputException(f"{where}.userId is required by the schema.")
        columns = check_properties(target.schema, props, where, skip=_OWN_COLUMNS, require=True)
        impression = raw.get("impression")
        record = {
            "USER_ID": user_id,
            "SESSION_ID": raw["sessionId"],
            "ACTION_ID": raw["actionId"],
            "TIMESTAMP": float(raw["timestamp"]),
            "EVENT_TYPE": raw["eventType"],
            "RECOMMENDATION_ID": raw.get("recommendationId"),
            "IMPRESSION": "|".join(impression) if impression else None,
            **columns,
        }
        rows.append(
            {
                "dataset_arn": target.dataset_arn,
                "record_id": raw.get("eventId") or f"ai-{uuid.uuid4().hex}",
                "properties": orjson.dumps(record).decode(),
                "updated_at": now,
            }
        )
    await service.writer.write(record_rows=rows)
    return {}

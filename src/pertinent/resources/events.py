"""The events service: PutEvents, PutItems and PutUsers (spec §6).

Every record is checked against its dataset's schema before anything is written, and
a request is all-or-nothing: one bad event rejects the whole batch. Accepted records
are committed through the group-commit writer before the 200 goes out.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import orjson

from pertinent.data.schema import DatasetSchema, Field, normalize_name, parse_schema
from pertinent.errors import (
    InvalidInputException,
    ResourceInUseException,
    ResourceNotFoundException,
)
from pertinent.resources._common import Context
from pertinent.resources.event_trackers import tracker_by_tracking_id
from pertinent.store.catalog import Catalog
from pertinent.store.eventlog import GroupCommitWriter, event_row
from pertinent.store.status import ACTIVE

# Keys PutEvents' ``properties`` may not carry (spec §6.1), compared case-insensitively.
FORBIDDEN_EVENT_KEYS = frozenset(
    {"userid", "sessionid", "eventtype", "timestamp", "recommendationid", "impression"}
)
# Interactions columns filled from the event's own members, never from properties.
EVENT_COLUMNS = frozenset(
    normalize_name(n)
    for n in (
        "USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE", "IMPRESSION",
        "RECOMMENDATION_ID", "EVENT_ATTRIBUTION_SOURCE",
    )
)  # fmt: skip
MAX_EVENT_BYTES = 10 * 1024
CACHE_SECONDS = 2.0


@dataclass(frozen=True)
class Target:
    """Where a tracking id (or a dataset ARN) sends its records, and their schema."""

    group_arn: str
    dataset_arn: str
    schema: DatasetSchema
    fetched_at: float
    # Looked up once per target rather than per event (PutEvents' hot path).
    has_item_id: bool = False
    value_field: Field | None = None
    # Columns an event must carry in ``properties`` (not nullable, not an event member).
    required_properties: tuple[str, ...] = ()

    @classmethod
    def of(cls, group_arn: str, dataset_arn: str, schema: DatasetSchema) -> Target:
        return cls(
            group_arn,
            dataset_arn,
            schema,
            time.monotonic(),
            has_item_id=schema.field("ITEM_ID") is not None,
            value_field=schema.field("EVENT_VALUE"),
            required_properties=tuple(
                f.name
                for f in schema.fields
                if not f.nullable and normalize_name(f.name) not in EVENT_COLUMNS
            ),
        )


class EventsService:
    """Per-process state of the events API: the writer and a short-lived routing cache."""

    def __init__(self, writer: GroupCommitWriter) -> None:
        self.writer = writer
        self._targets: dict[str, Target] = {}
        self._lock = threading.Lock()

    def _cached(self, key: str) -> Target | None:
        found = self._targets.get(key)
        if found is not None and time.monotonic() - found.fetched_at < CACHE_SECONDS:
            return found
        return None

    def _remember(self, key: str, target: Target) -> Target:
        with self._lock:
            self._targets[key] = target
        return target

    def tracker_target(
        self, ctx: Context, tracking_id: str, dataset_type: str = "INTERACTIONS"
    ) -> Target:
        """The ``dataset_type`` dataset (Interactions, or Action interactions) of the
        group whose event tracker has ``tracking_id``."""
        key = f"{dataset_type}:{tracking_id}"
        found = self._cached(key)
        if found is not None:
            return found
        with ctx.catalog.read() as conn:
            tracker = tracker_by_tracking_id(conn, tracking_id)
            if tracker is None or tracker.account_id != ctx.account_id:
                raise InvalidInputException(
                    f"No event tracker has the trackingId {tracking_id!r}; CreateEventTracker "
                    "returns the trackingId to use."
                )
            group_arn = tracker.doc["datasetGroupArn"]
            dataset = next(
                (
                    d
                    for d in Catalog.children(conn, kind="dataset", group_arn=group_arn)
                    if d.doc["datasetType"] == dataset_type
                ),
                None,
            )
            if dataset is None:
                raise InvalidInputException(
                    f"The dataset group {group_arn} has no {dataset_type} dataset to record "
                    f"events in; create one (datasetType {dataset_type}) first."
                )
            schema = Catalog.get(conn, dataset.doc["schemaArn"])
        assert schema is not None
        target = Target.of(group_arn, dataset.arn, parse_schema(schema.doc["schema"]))
        return self._remember(key, target)

    def dataset_target(self, ctx: Context, dataset_arn: str, dataset_type: str) -> Target:
        found = self._cached(dataset_arn)
        if found is not None:
            return found
        with ctx.catalog.read() as conn:
            dataset = Catalog.get(conn, dataset_arn)
            if dataset is None or dataset.kind != "dataset" or dataset.account_id != ctx.account_id:
                raise ResourceNotFoundException(f"Could not find the dataset {dataset_arn}.")
            if dataset.doc["datasetType"] != dataset_type:
                raise InvalidInputException(
                    f"The dataset {dataset_arn} is a {dataset.doc['datasetType']} dataset, not "
                    f"{dataset_type}."
                )
            if dataset.status != ACTIVE:
                raise ResourceInUseException(
                    f"The dataset {dataset_arn} is {dataset.status}; records can be put once it "
                    "is ACTIVE."
                )
            schema = Catalog.get(conn, dataset.doc["schemaArn"])
        assert schema is not None
        target = Target.of(
            dataset.doc["datasetGroupArn"], dataset_arn, parse_schema(schema.doc["schema"])
        )
        return self._remember(dataset_arn, target)


# -- checking values against a schema --------------------------------------------------


def _properties(raw: str | None, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidInputException(
            f"{where}.properties must be a JSON object in a string, e.g. "
            '"{\\"numberOfRatings\\": \\"12\\"}".'
        ) from None
    if not isinstance(value, dict):
        raise InvalidInputException(f"{where}.properties must be a JSON object.")
    return value


def _coerce(field: Field, value: Any, where: str) -> Any:
    """The value as the column stores it; InvalidInputException says why it can't be."""
    if value is None:
        if not field.nullable:
            raise InvalidInputException(f"{where}: {field.name} must not be null.")
        return None
    kind = field.type
    try:
        if kind == "string":
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError
            text = str(value)
            limit = 20_000 if field.textual else 1000
            parts = text.split("|") if field.categorical else [text]
            if any(len(p) > limit for p in parts):
                raise InvalidInputException(
                    f"{where}: a {field.name} value is longer than {limit} characters."
                )
            return text[:20_000] if field.textual else text
        if kind == "boolean":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            raise ValueError
        if isinstance(value, bool):
            raise ValueError
        number = float(value) if kind in ("float", "double") else int(str(value))
        if isinstance(number, float) and not math.isfinite(number):
            raise ValueError
        return number
    except (TypeError, ValueError):
        raise InvalidInputException(
            f"{where}: {value!r} is not a valid {kind} for {field.name}."
        ) from None


def check_properties(
    schema: DatasetSchema,
    props: dict[str, Any],
    where: str,
    *,
    skip: frozenset[str],
    require: bool,
) -> dict[str, Any]:
    """Map camelCase property keys to schema columns and coerce their values."""
    out: dict[str, Any] = {}
    for key, value in props.items():
        field = schema.field(key)
        if field is None or normalize_name(field.name) in skip:
            known = [f.name for f in schema.fields if normalize_name(f.name) not in skip]
            raise InvalidInputException(
                f"{where}.properties has the key {key!r}, which is not a column of the schema "
                f"(columns: {', '.join(known) or 'none'}; keys are camelCase column names)."
            )
        out[field.name] = _coerce(field, value, f"{where}.properties.{key}")
    if require:
        for field in schema.fields:
            if normalize_name(field.name) in skip or field.nullable or field.name in out:
                continue
            raise InvalidInputException(
                f"{where}.properties must include {field.name} (not nullable in the schema)."
            )
    return out


def _event(target: Target, raw: dict[str, Any], where: str) -> dict[str, Any]:
    props = _properties(raw.get("properties"), where)
    for key in props:
        if key.lower() in FORBIDDEN_EVENT_KEYS:
            raise InvalidInputException(
                f"{where}.properties may not contain {key!r}; send it as the event's own member."
            )
    item_id = raw.get("itemId")
    legacy = next((k for k in props if k.lower() == "itemid"), None)
    if legacy is not None:  # the older form carried itemId inside properties
        legacy_value = props.pop(legacy)
        item_id = item_id or (str(legacy_value) if legacy_value is not None else None)
    if item_id is None and target.has_item_id:
        raise InvalidInputException(f"{where}.itemId is required by the Interactions schema.")
    value_field = target.value_field
    event_value = raw.get("eventValue")
    if event_value is not None and value_field is None:
        raise InvalidInputException(
            f"{where}.eventValue is set but the Interactions schema has no EVENT_VALUE column."
        )
    if event_value is None and value_field is not None and not value_field.nullable:
        raise InvalidInputException(f"{where}.eventValue is required by the schema.")
    columns: dict[str, Any] = {}
    if props or target.required_properties:
        columns = check_properties(target.schema, props, where, skip=EVENT_COLUMNS, require=True)
    size = len(orjson.dumps(raw))
    if size > MAX_EVENT_BYTES:
        raise InvalidInputException(f"{where} is {size} bytes; an event may be at most 10 KB.")
    impression = raw.get("impression")
    attribution = (raw.get("metricAttribution") or {}).get("eventAttributionSource")
    return {
        "event_id": raw.get("eventId"),
        "event_type": raw["eventType"],
        "event_value": float(event_value) if event_value is not None else None,
        "item_id": item_id,
        "timestamp": float(raw["sentAt"]),
        "properties": orjson.dumps(columns).decode() if columns else None,
        "recommendation_id": raw.get("recommendationId"),
        "impression": "|".join(impression) if impression else None,
        "attribution_source": attribution,
    }


# -- the operations ------------------------------------------------------------------


async def put_events(ctx: Context, service: EventsService, req: dict[str, Any]) -> dict[str, Any]:
    target = service.tracker_target(ctx, req["trackingId"])
    rows = [
        event_row(
            target.group_arn,
            user_id=req.get("userId"),
            session_id=req["sessionId"],
            **_event(target, raw, f"eventList.{i + 1}"),
        )
        for i, raw in enumerate(req["eventList"])
    ]
    await service.writer.write(event_rows=rows)
    return {}


def _record_rows(
    target: Target, records: list[dict[str, Any]], id_key: str, id_column: str, kind: str
) -> list[dict[str, Any]]:
    now = time.time()
    rows = []
    for i, record in enumerate(records):
        where = f"{kind}.{i + 1}"
        props = _properties(record.get("properties"), where)
        columns = check_properties(
            target.schema, props, where, skip=frozenset({normalize_name(id_column)}), require=True
        )
        rows.append(
            {
                "dataset_arn": target.dataset_arn,
                "record_id": record[id_key],
                "properties": orjson.dumps(columns).decode(),
                "updated_at": now,
            }
        )
    return rows


async def put_items(ctx: Context, service: EventsService, req: dict[str, Any]) -> dict[str, Any]:
    target = service.dataset_target(ctx, req["datasetArn"], "ITEMS")
    rows = _record_rows(target, req["items"], "itemId", "ITEM_ID", "items")
    await service.writer.write(record_rows=rows)
    return {}


async def put_users(ctx: Context, service: EventsService, req: dict[str, Any]) -> dict[str, Any]:
    target = service.dataset_target(ctx, req["datasetArn"], "USERS")
    rows = _record_rows(target, req["users"], "userId", "USER_ID", "users")
    await service.writer.write(record_rows=rows)
    return {}

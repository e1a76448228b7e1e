"""Streamed records (PutEvents, PutItems, PutUsers) as dataset-shaped frames.

The event log keeps events as they arrived; training wants them in the Interactions
dataset's own columns, beside the bulk parts. These functions do that conversion,
vectorised: ``properties`` (already keyed by schema column at ingestion) are decoded
with one JSON pass, anonymous sessions are attributed to the user who later signed in
from them, and repeated event ids count once, as Personalize trains on the first.
"""

from __future__ import annotations

import polars as pl

from pertinent.data.schema import DatasetSchema, Field

_POLARS = {
    "string": pl.String,
    "int": pl.Int32,
    "long": pl.Int64,
    "float": pl.Float32,
    "double": pl.Float64,
    "boolean": pl.Boolean,
}
# Interactions columns that come from the event's own members, not its properties.
_FROM_EVENT = {
    "USER_ID": "user_id",
    "ITEM_ID": "item_id",
    "EVENT_TYPE": "event_type",
    "EVENT_VALUE": "event_value",
    "IMPRESSION": "impression",
    "RECOMMENDATION_ID": "recommendation_id",
    "EVENT_ATTRIBUTION_SOURCE": "attribution_source",
}


def _dtype(field: Field) -> pl.DataType:
    return _POLARS[field.type]()


def _decode_properties(frame: pl.DataFrame, fields: list[Field]) -> pl.DataFrame:
    """One column per field from the JSON ``properties`` strings (null where absent)."""
    if not fields:
        return pl.DataFrame()
    # Values were checked at ingestion; numbers may have arrived as strings, so decode
    # everything as strings and cast, rather than trusting JSON types.
    struct = pl.Struct([pl.Field(f.name, pl.String) for f in fields])
    props = frame.select(
        pl.col("properties").fill_null("{}").str.json_decode(struct).alias("p")
    ).unnest("p")
    return props.select(
        [
            (
                pl.col(f.name).str.to_lowercase() == "true"
                if f.type == "boolean"
                else pl.col(f.name).cast(_dtype(f), strict=False)
            ).alias(f.name)
            for f in fields
        ]
    )


def events_frame(log: pl.DataFrame, schema: DatasetSchema) -> pl.DataFrame:
    """Event-log rows (columns of ``store.tables.events``) as Interactions rows."""
    if log.height == 0:
        return pl.DataFrame(schema={f.name: _dtype(f) for f in schema.fields})
    log = log.sort("id")
    # "Any subsequent events after the first with the same event ID are not used in
    # model training" (spec §6.1).
    with_id = log.filter(pl.col("event_id").is_not_null()).unique("event_id", keep="first")
    log = pl.concat([with_id, log.filter(pl.col("event_id").is_null())]).sort("id")
    # An anonymous session that later carries a userId belongs to that user.
    signed_in = (
        log.filter(pl.col("user_id").is_not_null())
        .group_by("session_id")
        .agg(pl.col("user_id").last().alias("_owner"))
    )
    log = log.join(signed_in, on="session_id", how="left").with_columns(
        pl.coalesce("user_id", "_owner", "session_id").alias("user_id")
    )
    by_name = {f.name.upper(): f for f in schema.fields}
    columns: dict[str, pl.Series] = {}
    for name, field in by_name.items():
        source = _FROM_EVENT.get(name)
        if source is not None:
            columns[field.name] = log[source].cast(_dtype(field), strict=False)
        elif name == "TIMESTAMP":
            columns[field.name] = log["timestamp"].floor().cast(pl.Int64)
    rest = [f for f in schema.fields if f.name not in columns]
    props = _decode_properties(log, rest)
    for field in rest:
        columns[field.name] = props[field.name]
    return pl.DataFrame([columns[f.name].alias(f.name) for f in schema.fields])


def records_frame(log: pl.DataFrame, schema: DatasetSchema, id_column: str) -> pl.DataFrame:
    """PutItems / PutUsers rows (``record_id``, ``properties``) as dataset rows."""
    id_field = schema.field(id_column)
    assert id_field is not None
    if log.height == 0:
        return pl.DataFrame(schema={f.name: _dtype(f) for f in schema.fields})
    rest = [f for f in schema.fields if f.name != id_field.name]
    props = _decode_properties(log, rest)
    columns = [log["record_id"].cast(pl.String).alias(id_field.name)]
    columns += [props[f.name] for f in rest]
    return pl.DataFrame(columns).select([f.name for f in schema.fields])

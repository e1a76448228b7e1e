"""The catalog's tables. Adding a table needs no migration (``create_all`` makes it);
changing one does (``catalog.MIGRATIONS``)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

resources = sa.Table(
    "resources",
    metadata,
    sa.Column("arn", sa.String(256), primary_key=True),
    sa.Column("account_id", sa.String(32), nullable=False),
    sa.Column("region", sa.String(32), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("parent_arn", sa.String(256), nullable=True),
    sa.Column("group_arn", sa.String(256), nullable=True),
    sa.Column("status", sa.String(40), nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("doc", sa.JSON, nullable=False),
    sa.Index("ix_resources_list", "account_id", "region", "kind", "created_at"),
    sa.Index("ix_resources_parent", "parent_arn", "kind"),
    sa.Index("ix_resources_group", "group_arn", "kind"),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("resource_arn", sa.String(256), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # queued | running | done | failed
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("worker", sa.String(128), nullable=True),
    sa.Column("heartbeat_at", sa.Float, nullable=True),
    sa.Column("not_before", sa.Float, nullable=False, default=0.0),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Index("ix_jobs_state", "state", "not_before", "id"),
    sa.Index("ix_jobs_resource", "resource_arn"),
)

# The committed Parquet parts of each dataset, in the order they were imported.
dataset_parts = sa.Table(
    "dataset_parts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dataset_arn", sa.String(256), nullable=False),
    sa.Column("path", sa.String(1024), nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("import_job_arn", sa.String(256), nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_parts_dataset", "dataset_arn", "id"),
)

schema_info = sa.Table(
    "schema_info",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)

# Events accepted by PutEvents, in arrival order; a 200 means the row is committed.
# The id orders events per group, so "events since training" is ``id > cutoff``.
events = sa.Table(
    "events",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("group_arn", sa.String(256), nullable=False),
    sa.Column("user_id", sa.String(256), nullable=True),
    sa.Column("session_id", sa.String(256), nullable=False),
    sa.Column("event_id", sa.String(256), nullable=True),
    sa.Column("event_type", sa.String(256), nullable=False),
    sa.Column("event_value", sa.Float, nullable=True),
    sa.Column("item_id", sa.String(256), nullable=True),
    sa.Column("timestamp", sa.Float, nullable=False),
    sa.Column("properties", sa.Text, nullable=True),
    sa.Column("recommendation_id", sa.String(64), nullable=True),
    sa.Column("impression", sa.Text, nullable=True),
    sa.Column("attribution_source", sa.String(1024), nullable=True),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Index("ix_events_user", "group_arn", "user_id", "id"),
    sa.Index("ix_events_session", "group_arn", "session_id", "id"),
    sa.Index("ix_events_group", "group_arn", "id"),
)

# Items, users and actions sent with PutItems / PutUsers / PutActions: one row per id,
# the newest write wins (upsert), ``seq`` orders writes across the whole catalog.
put_records = sa.Table(
    "put_records",
    metadata,
    sa.Column("dataset_arn", sa.String(256), primary_key=True),
    sa.Column("record_id", sa.String(256), primary_key=True),
    sa.Column("properties", sa.Text, nullable=True),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("ix_put_records_time", "dataset_arn", "updated_at"),
)

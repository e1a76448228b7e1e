"""Automatic training (``performAutoTraining``) and campaigns that follow new versions.

Personalize retrains a solution on a schedule, ``autoTrainingConfig.schedulingExpression``
``rate(N days)`` (default 7), the first run within an hour of the solution becoming
ACTIVE, skipped when a version was created by hand in that hour (spec §4.8). A campaign
deployed from ``<solution>/$LATEST`` with ``syncWithLatestSolutionVersion`` moves to
each new ACTIVE version (spec §4.12).

Any worker may run ``schedule``; the decision and the version it creates are one write
transaction, serialised across workers (SQLite takes its write lock at BEGIN, PostgreSQL
an advisory lock), so two workers never start the same run.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import regex
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pertinent.config import Settings
from pertinent.store.catalog import Catalog, Resource
from pertinent.store.status import ACTIVE, CREATE_PENDING, CREATING

__all__ = [
    "DEFAULT_RATE_DAYS",
    "any_due",
    "follow_latest",
    "rate_days",
    "schedule",
    "version_resource",
]

VERSION_KIND = "solution-version"
DEFAULT_RATE_DAYS = 7
_RATE = regex.compile(r"rate\((\d+) days?\)")
_LOCK_KEY = 7271264  # PostgreSQL advisory lock of the scheduler (migrate uses ...263)


def rate_days(solution_config: dict[str, Any] | None) -> int:
    """The N of ``rate(N days)``, default 7; ValueError naming the rule when malformed."""
    config = (solution_config or {}).get("autoTrainingConfig") or {}
    expression = config.get("schedulingExpression")
    if expression is None:
        return DEFAULT_RATE_DAYS
    match = _RATE.fullmatch(str(expression))
    if match is None or not 1 <= int(match.group(1)) <= 30:
        raise ValueError(
            "solutionConfig.autoTrainingConfig.schedulingExpression must be rate(N days) with "
            f"N from 1 to 30, e.g. rate(7 days); got {expression!r}."
        )
    return int(match.group(1))


def version_resource(
    solution: Resource,
    *,
    mode: str,
    training_type: str,
    name: str | None = None,
    tags: list[dict[str, str]] | None = None,
    now: float | None = None,
) -> Resource:
    """A new CREATE PENDING solution version of ``solution`` (not yet inserted)."""
    version_id = secrets.token_hex(4)
    arn = f"{solution.arn}/{version_id}"
    now = time.time() if now is None else now
    doc = {
        "name": name,
        "solutionVersionArn": arn,
        "solutionArn": solution.arn,
        "performHPO": solution.doc.get("performHPO"),
        "performAutoML": solution.doc.get("performAutoML"),
        "performIncrementalUpdate": solution.doc.get("performIncrementalUpdate"),
        "recipeArn": solution.doc["recipeArn"],
        "eventType": solution.doc.get("eventType"),
        "datasetGroupArn": solution.doc["datasetGroupArn"],
        "solutionConfig": solution.doc.get("solutionConfig"),
        "trainingMode": mode,
        "trainingType": training_type,
        "tags": tags or [],
    }
    return Resource(
        arn=arn,
        account_id=solution.account_id,
        region=solution.region,
        kind=VERSION_KIND,
        name=name or version_id,
        status=CREATE_PENDING,
        created_at=now,
        updated_at=now,
        doc=doc,
        parent_arn=solution.arn,
        group_arn=solution.group_arn,
    )


def _due(solution: Resource, versions: list[Resource], settings: Settings) -> float | None:
    """When the next automatic run is due; None when the solution has a bad schedule."""
    try:
        period = rate_days(solution.doc.get("solutionConfig")) * settings.auto_training_day
    except ValueError:
        return None
    last = solution.doc.get("_lastAutoTrainingAt")
    if last is not None:
        return float(last) + period
    first = solution.created_at + settings.auto_training_delay
    manual = [v for v in versions if v.created_at <= first]
    # A version made by hand before the first automatic run replaces that run.
    return first + period if manual else first


def _due_now(
    conn: Connection, settings: Settings, now: float
) -> list[tuple[Resource, list[Resource]]]:
    out = []
    for solution in Catalog.children(conn, kind="solution", statuses=(ACTIVE,)):
        if not solution.doc.get("performAutoTraining", True):
            continue
        versions = Catalog.children(conn, kind=VERSION_KIND, parent_arn=solution.arn)
        due = _due(solution, versions, settings)
        if due is not None and due <= now:
            out.append((solution, versions))
    return out


def any_due(conn: Connection, settings: Settings, now: float | None = None) -> bool:
    """Whether ``schedule`` has work (a read: workers check often, write only when due)."""
    return bool(_due_now(conn, settings, time.time() if now is None else now))


def schedule(conn: Connection, settings: Settings, now: float | None = None) -> list[str]:
    """Start every automatic run that is due; returns the new version ARNs."""
    now = time.time() if now is None else now
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})"))
    started: list[str] = []
    for solution, versions in _due_now(conn, settings, now):
        doc = dict(solution.doc)
        doc["_lastAutoTrainingAt"] = now
        Catalog.update(conn, solution.arn, doc=doc)
        if any(v.status in CREATING for v in versions):
            continue  # a run is already under way: this slot is spent, not stacked
        version = version_resource(solution, mode="AUTOTRAIN", training_type="AUTOMATIC", now=now)
        Catalog.insert(conn, version)
        Catalog.enqueue(conn, "train", version.arn)
        started.append(version.arn)
    return started


def follow_latest(conn: Connection, version: Resource) -> list[str]:
    """Point every syncing campaign of ``version``'s solution at it (just made ACTIVE)."""
    moved = []
    solution_arn = version.doc["solutionArn"]
    for campaign in Catalog.children(conn, kind="campaign", group_arn=version.group_arn):
        doc = campaign.doc
        syncing = (doc.get("campaignConfig") or {}).get("syncWithLatestSolutionVersion")
        if not syncing or doc.get("_solutionArn") != solution_arn or campaign.status != ACTIVE:
            continue
        doc = dict(doc)
        doc["_servingVersionArn"] = version.arn
        Catalog.update(conn, campaign.arn, doc=doc)
        moved.append(campaign.arn)
    return moved

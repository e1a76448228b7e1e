"""Jobs that move a resource through its statuses: activate, deploy, delete."""

from __future__ import annotations

import time

from pertinent.jobs.base import Defer, JobContext, JobFailed, handler
from pertinent.serving.models import load
from pertinent.store import artifacts
from pertinent.store.catalog import Catalog, Job
from pertinent.store.eventlog import drop_streamed
from pertinent.store.status import (
    ACTIVE,
    CREATE_FAILED,
    CREATE_IN_PROGRESS,
    CREATE_PENDING,
    CREATE_STOPPED,
    CREATE_STOPPING,
    CREATING,
    DELETE_IN_PROGRESS,
)


def _start(jc: JobContext, arn: str) -> bool:
    """Move a CREATE PENDING resource to CREATE IN_PROGRESS; False if it moved elsewhere."""
    with jc.catalog.write() as conn:
        res = Catalog.get(conn, arn)
        if res is None or res.status not in CREATING:
            return False
        if res.status == CREATE_PENDING:
            Catalog.update(conn, arn, status=CREATE_IN_PROGRESS)
        return True


@handler("activate")
def activate(jc: JobContext, job: Job) -> None:
    """Dataset groups, datasets and solutions need no work beyond their parent existing."""
    with jc.catalog.read() as conn:
        res = Catalog.get(conn, job.resource_arn)
        parent = Catalog.get(conn, res.parent_arn) if res and res.parent_arn else None
    if res is None:
        return
    if parent is not None and parent.status in CREATING:
        raise Defer(0.2, f"waiting for {parent.arn} to become ACTIVE")
    if not _start(jc, job.resource_arn):
        return
    with jc.catalog.write() as conn:
        Catalog.update(conn, job.resource_arn, status=ACTIVE)


@handler("deploy")
def deploy(jc: JobContext, job: Job) -> None:
    """Create or update a campaign: the model must load before the campaign serves it."""
    update = bool(job.payload.get("update"))
    with jc.catalog.read() as conn:
        campaign = Catalog.get(conn, job.resource_arn)
    if campaign is None:
        return
    if update:
        pending = campaign.doc.get("_pendingUpdate") or {}
        version_arn = str(pending["servingVersionArn"])
    else:
        if not _start(jc, job.resource_arn):
            return
        version_arn = campaign.doc["_servingVersionArn"]
    try:
        load(artifacts.version_dir(jc.settings, version_arn))
    except Exception as exc:
        raise JobFailed(f"The model of {version_arn} could not be loaded: {exc}") from exc
    now = time.time()
    with jc.catalog.write() as conn:
        current = Catalog.get(conn, job.resource_arn)
        if current is None:
            return
        doc = dict(current.doc)
        if update:
            change = dict(doc.get("latestCampaignUpdate") or {})
            pending = doc.pop("_pendingUpdate", {})
            doc["solutionVersionArn"] = change.get("solutionVersionArn", doc["solutionVersionArn"])
            doc["minProvisionedTPS"] = change.get("minProvisionedTPS", doc["minProvisionedTPS"])
            doc["campaignConfig"] = change.get("campaignConfig", doc.get("campaignConfig"))
            doc["_servingVersionArn"] = pending.get("servingVersionArn", doc["_servingVersionArn"])
            doc["_solutionArn"] = pending.get("solutionArn", doc["_solutionArn"])
            change["status"] = ACTIVE
            change["lastUpdatedDateTime"] = now
            doc["latestCampaignUpdate"] = change
            doc.pop("failureReason", None)
            Catalog.update(conn, job.resource_arn, status=ACTIVE, doc=doc, now=now)
        else:
            Catalog.update(conn, job.resource_arn, status=ACTIVE, now=now)


def fail_campaign_update(jc: JobContext, arn: str, reason: str) -> None:
    """A failed update leaves the campaign serving what it served before (contract)."""
    with jc.catalog.write() as conn:
        res = Catalog.get(conn, arn)
        if res is None:
            return
        doc = dict(res.doc)
        change = dict(doc.get("latestCampaignUpdate") or {})
        change["status"] = CREATE_FAILED
        change["failureReason"] = reason
        change["lastUpdatedDateTime"] = time.time()
        doc["latestCampaignUpdate"] = change
        doc.pop("_pendingUpdate", None)
        Catalog.update(conn, arn, doc=doc)


@handler("delete")
def delete(jc: JobContext, job: Job) -> None:
    arn = job.resource_arn
    with jc.catalog.write() as conn:
        res = Catalog.get(conn, arn)
        if res is None:
            return
        Catalog.update(conn, arn, status=DELETE_IN_PROGRESS)
    doomed: list[str] = []
    with jc.catalog.write() as conn:
        if res.kind == "dataset":
            doomed += Catalog.drop_parts(conn, arn)
            drop_streamed(conn, res.doc["datasetGroupArn"], arn, res.doc["datasetType"])
            for imp in Catalog.children(conn, kind="dataset-import-job", parent_arn=arn):
                Catalog.delete(conn, imp.arn)
            doomed.append(str(artifacts.dataset_dir(jc.settings, arn)))
        elif res.kind == "solution":
            for version in Catalog.children(conn, kind="solution-version", parent_arn=arn):
                doomed.append(str(artifacts.version_dir(jc.settings, version.arn)))
                Catalog.delete(conn, version.arn)
        Catalog.delete(conn, arn)
    # Files go only after the catalog no longer points at them.
    for path in doomed:
        artifacts.remove_path(path)


def mark_failed(jc: JobContext, arn: str, reason: str) -> None:
    """Record why a create job failed; resources not being created are left alone."""
    with jc.catalog.write() as conn:
        res = Catalog.get(conn, arn)
        if res is None:
            return
        if res.status == CREATE_STOPPING:
            # A stop was asked for and the job ended anyway: the user asked for STOPPED.
            Catalog.update(conn, arn, status=CREATE_STOPPED)
            return
        if res.status not in CREATING:
            return
        doc = dict(res.doc)
        doc["failureReason"] = reason
        Catalog.update(conn, arn, status=CREATE_FAILED, doc=doc)

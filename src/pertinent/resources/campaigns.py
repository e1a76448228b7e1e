"""Campaigns: a deployed solution version that answers runtime requests."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.engine import Connection

from pertinent.errors import (
    InvalidInputException,
    LimitExceededException,
    ResourceInUseException,
)
from pertinent.resources._common import (
    Context,
    ensure_new,
    new_resource,
    operation,
    register_reads,
    require,
    start_delete,
    tags_of,
)
from pertinent.resources.recipes import EXPLORING_RECIPES
from pertinent.store.catalog import Catalog
from pertinent.store.status import (
    ACTIVE,
    CREATE_FAILED,
    CREATE_PENDING,
    DELETING,
)

KIND = "campaign"
MAX_CAMPAIGNS_PER_GROUP = 5  # active campaigns per dataset group (spec §15, adjustable)
LATEST = "/$LATEST"


def resolve_version(conn: Connection, ctx: Context, arn: str) -> tuple[str, str]:
    """(solution version ARN to serve, solution ARN) for a concrete or ``…/$LATEST`` ARN."""
    if arn.endswith(LATEST):
        solution_arn = arn[: -len(LATEST)]
        require(conn, ctx, solution_arn, "solution")
        active = Catalog.children(
            conn, kind="solution-version", parent_arn=solution_arn, statuses=(ACTIVE,)
        )
        if not active:
            raise ResourceInUseException(
                f"The solution {solution_arn} has no ACTIVE solution version to deploy yet."
            )
        return active[0].arn, solution_arn
    version = require(conn, ctx, arn, "solution-version")
    if version.status != ACTIVE:
        raise ResourceInUseException(
            f"The solution version {arn} is {version.status}; a campaign needs an ACTIVE one."
        )
    return arn, version.doc["solutionArn"]


def _check_config(config: dict[str, Any], requested_arn: str, recipe_arn: str) -> None:
    recipe = recipe_arn.rsplit("/", 1)[-1]
    if config.get("syncWithLatestSolutionVersion") and not requested_arn.endswith(LATEST):
        raise InvalidInputException(
            "syncWithLatestSolutionVersion needs solutionVersionArn in the form "
            "<solutionArn>/$LATEST."
        )
    exploration = config.get("itemExplorationConfig")
    if exploration:
        if recipe not in EXPLORING_RECIPES:
            raise InvalidInputException(
                f"itemExplorationConfig is only for User-Personalization campaigns; this "
                f"solution version uses {recipe}."
            )
        for key, value in exploration.items():
            if key not in ("explorationWeight", "explorationItemAgeCutOff"):
                raise InvalidInputException(
                    f"Unknown itemExplorationConfig key {key!r}; use explorationWeight or "
                    "explorationItemAgeCutOff."
                )
            try:
                number = float(value)
            except ValueError:
                raise InvalidInputException(
                    f"itemExplorationConfig.{key} must be a number, got {value!r}."
                ) from None
            if key == "explorationWeight" and not 0.0 <= number <= 1.0:
                raise InvalidInputException(
                    f"itemExplorationConfig.explorationWeight must be between 0 and 1, got {value}."
                )
            if key == "explorationItemAgeCutOff" and number < 1.0:
                raise InvalidInputException(
                    "itemExplorationConfig.explorationItemAgeCutOff must be at least 1 (day), "
                    f"got {value}."
                )
    if config.get("rankingInfluence") and recipe != "aws-semantic-similarity":
        raise InvalidInputException("rankingInfluence is only for Semantic-Similarity campaigns.")


@operation("CreateCampaign")
def create_campaign(ctx: Context, req: dict[str, Any]) -> dict[str, Any]:
    name = req["name"]
    arn = ctx.arn(f"campaign/{name}")
    config = req.get("campaignConfig") or {}
    with ctx.catalog.write() as conn:
        ensure_new(conn, arn, KIND)
        version_arn, solution_arn = resolve_version(conn, ctx, req["solutionVersionArn"])
        version = require(conn, ctx, version_arn, "solution-version")
        _check_config(config, req["solutionVersionArn"], version.doc["recipeArn"])
        group_arn = version.group_arn
        live = [
            c
            for c in Catalog.children(conn, kind=KIND, group_arn=group_arn)
            if c.status not in DELETING
        ]
        if len(live) >= MAX_CAMPAIGNS_PER_GROUP:
            raise LimitExceededException(
                "Cannot create a campaign. More than "
                f"{MAX_CAMPAIGNS_PER_GROUP} resources in ACTIVE state."
            )
        doc = {
            "name": name,
            "campaignArn": arn,
            "solutionVersionArn": req["solutionVersionArn"],
            "minProvisionedTPS": req.get("minProvisionedTPS") or 1,
            "campaignConfig": config,
            "tags": tags_of(req),
            "_servingVersionArn": version_arn,
            "_solutionArn": solution_arn,
        }
        res = new_resource(
            ctx,
            kind=KIND,
            arn=arn,
            name=name,
            doc=doc,
            parent_arn=solution_arn,
            group_arn=group_arn,
        )
        Catalog.insert(conn, res)
        Catalog.enqueue(conn, "deploy", arn)
    return {"campaignArn": arn}


register_reads(
    KIND,
    describe_op="DescribeCampaign",
    arn_param="campaignArn",
    out_key="campaign",
    list_op="ListCampaigns",
    list_key="campaigns",
    parent_param="solutionArn",
    parent_kind="solution",
)


@operation("UpdateCampaign")
def update_campaign(ctx: Context, req: dict[str, Any]) -> dict[str, Any]:
    arn = req["campaignArn"]
    with ctx.catalog.write() as conn:
        res = require(conn, ctx, arn, KIND)
        if res.status not in (ACTIVE, CREATE_FAILED):
            raise ResourceInUseException(
                f"Cannot update the campaign {arn} while it is {res.status}; wait until it is "
                "ACTIVE."
            )
        pending = (res.doc.get("latestCampaignUpdate") or {}).get("status")
        if pending in (CREATE_PENDING, "CREATE IN_PROGRESS"):
            raise ResourceInUseException(f"An update of the campaign {arn} is already running.")
        requested = req.get("solutionVersionArn") or res.doc["solutionVersionArn"]
        version_arn, solution_arn = resolve_version(conn, ctx, requested)
        version = require(conn, ctx, version_arn, "solution-version")
        config = req.get("campaignConfig")
        if config is None:
            config = res.doc.get("campaignConfig") or {}
        _check_config(config, requested, version.doc["recipeArn"])
        now = time.time()
        doc = dict(res.doc)
        doc["latestCampaignUpdate"] = {
            "solutionVersionArn": requested,
            "minProvisionedTPS": req.get("minProvisionedTPS") or res.doc.get("minProvisionedTPS"),
            "campaignConfig": config,
            "status": CREATE_PENDING,
            "creationDateTime": now,
            "lastUpdatedDateTime": now,
        }
        doc["_pendingUpdate"] = {"servingVersionArn": version_arn, "solutionArn": solution_arn}
        Catalog.update(conn, arn, doc=doc, now=now)
        Catalog.enqueue(conn, "deploy", arn, {"update": True})
    return {"campaignArn": arn}


@operation("DeleteCampaign")
def delete_campaign(ctx: Context, req: dict[str, Any]) -> dict[str, Any]:
    arn = req["campaignArn"]
    with ctx.catalog.write() as conn:
        start_delete(conn, ctx, arn, KIND)
    return {}

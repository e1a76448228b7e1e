"""Solutions (a recipe plus its configuration) and solution versions (trained models)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from pertinent.errors import (
    InvalidInputException,
    LimitExceededException,
    ResourceInUseException,
)
from pertinent.jobs.autotrain import rate_days, version_resource
from pertinent.recipes._objective import SENSITIVITY
from pertinent.recipes.base import Recipe
from pertinent.recipes.registry import get_recipe
from pertinent.resources._common import (
    Context,
    describe,
    ensure_new,
    ensure_usable,
    new_resource,
    operation,
    register_reads,
    require,
    start_delete,
    tags_of,
)
from pertinent.resources.recipes import trainable_recipe
from pertinent.store.catalog import Catalog, Resource
from pertinent.store.status import (
    ACTIVE,
    CREATE_PENDING,
    CREATE_STOPPED,
    CREATE_STOPPING,
    CREATING,
    DELETING,
)

KIND = "solution"
VERSION_KIND = "solution-version"
MAX_SOLUTIONS_PER_GROUP = 10  # active solutions per dataset group (spec §15, adjustable)
MAX_PENDING_VERSIONS = 20  # per region (spec §15)
# Recipes that accept trainingMode=UPDATE (spec §4.10).
UPDATABLE_RECIPES = ("aws-user-personalization", "aws-hrnn-coldstart")


def _check_config(recipe_name: str, req: dict[str, Any]) -> None:
    config = req.get("solutionConfig") or {}
    recipe = get_recipe(recipe_name)
    try:
        recipe.parse_params(
            config.get("algorithmHyperParameters"), config.get("featureTransformationParameters")
        )
    except ValueError as exc:
        raise InvalidInputException(str(exc)) from None
    threshold = config.get("eventValueThreshold")
    if threshold is not None:
        try:
            float(threshold)
        except ValueError:
            raise InvalidInputException(
                f"solutionConfig.eventValueThreshold must be a number, got {threshold!r}."
            ) from None
    if config.get("hpoConfig") and not req.get("performHPO"):
        raise InvalidInputException("solutionConfig.hpoConfig is only used with performHPO=true.")
    if config.get("autoMLConfig") and not req.get("performAutoML"):
        raise InvalidInputException(
            "solutionConfig.autoMLConfig is only used with performAutoML=true."
        )
    _check_events_config(recipe, config.get("eventsConfig"))
    _check_objective(recipe, config.get("optimizationObjective"))
    _check_training_data_config(config.get("trainingDataConfig"))
    try:
        rate_days(config)
    except ValueError as exc:
        raise InvalidInputException(str(exc)) from None


TRAINING_DATASETS = ("INTERACTIONS", "ITEMS", "USERS")


def _check_events_config(recipe: type[Recipe], events: dict[str, Any] | None) -> None:
    if not events:
        return
    if recipe.recipe_type not in ("USER_PERSONALIZATION", "PERSONALIZED_RANKING"):
        raise InvalidInputException(
            f"solutionConfig.eventsConfig is for user-personalization and personalized-ranking "
            f"recipes; {recipe.name} does not weigh events."
        )
    seen: set[str] = set()
    for entry in events.get("eventParametersList") or []:
        event_type = entry.get("eventType")
        if not event_type:
            raise InvalidInputException(
                "Every eventsConfig.eventParametersList entry needs an eventType."
            )
        if event_type.lower() in seen:
            raise InvalidInputException(
                f"eventsConfig lists the event type {event_type!r} twice; give it one entry."
            )
        seen.add(event_type.lower())


OBJECTIVE_RECIPES = (
    "aws-user-personalization",
    "aws-user-personalization-v2",
    "aws-personalized-ranking",
    "aws-personalized-ranking-v2",
)


def _check_objective(recipe: type[Recipe], objective: dict[str, Any] | None) -> None:
    if not objective:
        return
    if recipe.name not in OBJECTIVE_RECIPES:
        raise InvalidInputException(
            f"solutionConfig.optimizationObjective works with {', '.join(OBJECTIVE_RECIPES)}; "
            f"{recipe.name} cannot optimise for an item attribute."
        )
    if not objective.get("itemAttribute"):
        raise InvalidInputException(
            "solutionConfig.optimizationObjective needs itemAttribute, a numeric Items column."
        )
    if objective.get("objectiveSensitivity", "LOW") not in SENSITIVITY:
        raise InvalidInputException(
            "solutionConfig.optimizationObjective.objectiveSensitivity must be one of "
            f"{', '.join(SENSITIVITY)}."
        )


def _check_training_data_config(config: dict[str, Any] | None) -> None:
    if not config:
        return
    chosen: dict[str, set[str]] = {}
    for part in ("includedDatasetColumns", "excludedDatasetColumns"):
        for dataset_type, columns in (config.get(part) or {}).items():
            if dataset_type.upper() not in TRAINING_DATASETS:
                raise InvalidInputException(
                    f"trainingDataConfig.{part} names the dataset type {dataset_type!r}; use "
                    "Interactions, Items or Users."
                )
            both = chosen.setdefault(dataset_type.upper(), set()) & {c.upper() for c in columns}
            if both:
                raise InvalidInputException(
                    f"The column {sorted(both)[0]} of {dataset_type} is both included and "
                    "excluded in trainingDataConfig."
                )
            chosen[dataset_type.upper()] |= {c.upper() for c in columns}


@operation("CreateSolution")
def create_solution(ctx: Context, req: dict[str, Any]) -> dict[str, Any]:
    name = req["name"]
    recipe_arn = req.get("recipeArn")
    if req.get("performAutoML"):
        if recipe_arn:
            raise InvalidInputException(
                "Set either performAutoML or recipeArn, not both: AutoML chooses the recipe."
            )
        raise InvalidInputException(
            "performAutoML is not supported by this version of Pertinent; pass a recipeArn."
        )
    if not recipe_arn:
        raise InvalidInputException("recipeArn is required when performAutoML is not true.")
    if req.get("performHPO"):
        raise InvalidInputException(
            "performHPO is not supported by this version of Pertinent; set the "
            "hyperparameters in solutionConfig.algorithmHyperParameters instead."
        )
    info = trainable_recipe(recipe_arn)
    _check_config(info.name, req)
    group_arn = req["datasetGroupArn"]
    arn = ctx.arn(f"solution/{name}")
    with ctx.catalog.write() as conn:
        group = require(conn, ctx, group_arn, "dataset-group")
        ensure_usable(group, "create a solution")
        ensure_new(conn, arn, KIND)
        live = Catalog.count(conn, kind=KIND, group_arn=group_arn)
        if live >= MAX_SOLUTIONS_PER_GROUP:
            raise LimitExceededException(
                f"The dataset group {group_arn} already has {live} solutions "
                f"(the limit is {MAX_SOLUTIONS_PER_GROUP}); delete one first."
            )
        doc = {
            "name": name,
            "solutionArn": arn,
            "performHPO": bool(req.get("performHPO", False)),
            "performAutoML": bool(req.get("performAutoML", False)),
            "performAutoTraining": bool(req.get("performAutoTraining", True)),
            "performIncrementalUpdate": req.get("performIncrementalUpdate"),
            "recipeArn": recipe_arn,
            "datasetGroupArn": group_arn,
            "eventType": req.get("eventType"),
            "solutionConfig": req.get("solutionConfig"),
            "tags": tags_of(req),
        }
        res = new_resource(
            ctx, kind=KIND, arn=arn, name=name, doc=doc, parent_arn=group_arn, group_arn=group_arn
        )
        Catalog.insert(conn, res)
        Catalog.enqueue(conn, "activate", arn)
    return {"solutionArn": arn}


def _with_latest_version(conn: Connection, res: Resource) -> dict[str, Any]:
    out = describe(res)
    versions = Catalog.children(conn, kind=VERSION_KIND, parent_arn=res.arn)
    if versions:
        out["latestSolutionVersion"] = describe(versions[0])
    return out


register_reads(
    KIND,
    describe_op="DescribeSolution",
    arn_param="solutionArn",
    out_key="solution",
    list_op="ListSolutions",
    list_key="solutions",
    parent_param="datasetGroupArn",
    parent_kind="dataset-group",
    view=_with_latest_version,
)


def campaigns_using(conn: Connection, solution_arn: str) -> list[Resource]:
    return [
        c
        for c in Catalog.children(conn, kind="campaign")
        if c.doc.get("_solutionArn") == solution_arn and c.status not in DELETING
    ]


@operation("DeleteSolution")
def delete_solution(ctx: Context, req: dict[str, Any]) -> dict[str, Any]:
    arn = req["solutionArn"]
    with ctx.catalog.write() as conn:
        require(conn, ctx, arn, KIND)
        campaigns = campaigns_using(conn, arn)
        if campaigns:
            raise ResourceInUseException(
                f"Cannot delete the solution {arn}: the campaign {campaigns[0].arn} uses it; "
                "delete the campaign first."
            )
        busy = Catalog.children(conn, kind=VERSION_KIND, parent_arn=arn, statuses=CREATING)
        if busy:
            raise ResourceInUseException(
                f"Cannot delete the solution {arn} while the solution version {busy[0].arn} "
                f"is {busy[0].status}."
            )
        start_delete(conn, ctx, arn, KIND)
    return {}


# -- versions -------------------------------------------------------------------------


@operation("CreateSolutionVersion")
def create_solution_version(ctx: Context, req: dict[str, Any]) -> dict[str, Any]:
    solution_arn = req["solutionArn"]
    mode = req.get("trainingMode") or "FULL"
    with ctx.catalog.write() as conn:
        solution = require(conn, ctx, solution_arn, KIND)
        ensure_usable(solution, "create a solution version")
        recipe_name = solution.doc["recipeArn"].rsplit("/", 1)[-1]
        if mode == "UPDATE" and recipe_name not in UPDATABLE_RECIPES:
            raise InvalidInputException(
                f"trainingMode UPDATE is only for {' and '.join(UPDATABLE_RECIPES)}; "
                f"the solution uses {recipe_name}. Use FULL."
            )
        if mode == "UPDATE" and not Catalog.children(
            conn, kind=VERSION_KIND, parent_arn=solution_arn, statuses=(ACTIVE,)
        ):
            raise InvalidInputException(
                f"trainingMode UPDATE needs an ACTIVE solution version of {solution_arn} to "
                "update; create one with trainingMode FULL first."
            )
        if mode == "AUTOTRAIN":
            raise InvalidInputException(
                "trainingMode AUTOTRAIN is set by automatic training; use FULL or UPDATE."
            )
        pending = Catalog.count(
            conn,
            kind=VERSION_KIND,
            account_id=ctx.account_id,
            region=ctx.region,
            statuses=CREATING,
        )
        if pending >= MAX_PENDING_VERSIONS:
            raise LimitExceededException(
                f"More than {MAX_PENDING_VERSIONS} resources with PENDING or IN_PROGRESS status."
            )
        res = version_resource(
            solution, mode=mode, training_type="MANUAL", name=req.get("name"), tags=tags_of(req)
        )
        arn = res.arn
        ensure_new(conn, arn, VERSION_KIND)
        Catalog.insert(conn, res)
        Catalog.enqueue(conn, "train", arn)
    return {"solutionVersionArn": arn}


register_reads(
    VERSION_KIND,
    describe_op="DescribeSolutionVersion",
    arn_param="solutionVersionArn",
    out_key="solutionVersion",
    list_op="ListSolutionVersions",
    list_key="solutionVersions",
    parent_param="solutionArn",
    parent_kind=KIND,
)


@operation("GetSolutionMetrics")
def get_solution_metrics(ctx: Context, req: dict[str, Any]) -> dict[str, Any]:
    arn = req["solutionVersionArn"]
    with ctx.catalog.read() as conn:
        res = require(conn, ctx, arn, VERSION_KIND)
    if res.status != ACTIVE:
        raise ResourceInUseException(
            f"The solution version {arn} is in status {res.status}; metrics are available "
            "once it is ACTIVE."
        )
    return {"solutionVersionArn": arn, "metrics": res.doc.get("_metrics", {})}


@operation("StopSolutionVersionCreation")
def stop_solution_version_creation(ctx: Context, req: dict[str, Any]) -> dict[str, Any]:
    arn = req["solutionVersionArn"]
    with ctx.catalog.write() as conn:
        res = require(conn, ctx, arn, VERSION_KIND)
        if res.status == CREATE_PENDING:
            Catalog.update(conn, arn, status=CREATE_STOPPED)
        elif res.status in CREATING:
            # The training job sees this at its next checkpoint and stops there.
            Catalog.update(conn, arn, status=CREATE_STOPPING)
        else:
            raise ResourceInUseException(
                f"Cannot stop the solution version {arn}: it is {res.status}, "
                "not CREATE PENDING or CREATE IN_PROGRESS."
            )
    return {}

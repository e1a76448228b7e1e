"""The control plane through stock boto3 against a real server: shapes, lists, errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError, ParamValidationError

from tests.conftest import Server, wait_status

INTERACTIONS_SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Interactions",
        "namespace": "com.amazonaws.personalize.schema",
        "fields": [
            {"name": "USER_ID", "type": "string"},
            {"name": "ITEM_ID", "type": "string"},
            {"name": "TIMESTAMP", "type": "long"},
        ],
        "version": "1.0",
    }
)
ITEMS_SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Items",
        "namespace": "com.amazonaws.personalize.schema",
        "fields": [
            {"name": "ITEM_ID", "type": "string"},
            {"name": "GENRE", "type": "string", "categorical": True},
        ],
        "version": "1.0",
    }
)


def error_of(call: Callable[[], Any]) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call()
    err = info.value.response["Error"]
    return err["Code"], err["Message"]


def active_group(pz: Any, name: str) -> str:
    arn: str = pz.create_dataset_group(name=name)["datasetGroupArn"]
    wait_status(lambda: pz.describe_dataset_group(datasetGroupArn=arn)["datasetGroup"])
    return arn


def test_dataset_group_lifecycle(pz: Any, unique: Callable[[str], str]) -> None:
    name = unique("dg")
    arn = pz.create_dataset_group(name=name)["datasetGroupArn"]
    assert arn == f"arn:aws:personalize:us-east-1:000000000000:dataset-group/{name}"
    first = pz.describe_dataset_group(datasetGroupArn=arn)["datasetGroup"]
    assert first["status"] in ("CREATE PENDING", "CREATE IN_PROGRESS", "ACTIVE")
    group = wait_status(lambda: pz.describe_dataset_group(datasetGroupArn=arn)["datasetGroup"])
    assert group["status"] == "ACTIVE"
    assert group["name"] == name
    assert group["creationDateTime"] <= group["lastUpdatedDateTime"]
    pz.delete_dataset_group(datasetGroupArn=arn)
    status = pz.describe_dataset_group(datasetGroupArn=arn)["datasetGroup"]["status"]
    assert status in ("DELETE PENDING", "DELETE IN_PROGRESS")
    with pytest.raises(pz.exceptions.ResourceNotFoundException):
        wait_status(lambda: pz.describe_dataset_group(datasetGroupArn=arn)["datasetGroup"], (), 30)


def test_region_comes_from_the_signature(server: Server, unique: Callable[[str], str]) -> None:
    eu = server.client("personalize", region="eu-west-1")
    arn = eu.create_dataset_group(name=unique("dg"))["datasetGroupArn"]
    assert arn.startswith("arn:aws:personalize:eu-west-1:000000000000:dataset-group/")


def test_duplicate_name(pz: Any, unique: Callable[[str], str]) -> None:
    name = unique("dg")
    pz.create_dataset_group(name=name)
    code, message = error_of(lambda: pz.create_dataset_group(name=name))
    assert code == "ResourceAlreadyExistsException"
    assert name in message


def test_not_found(pz: Any) -> None:
    arn = "arn:aws:personalize:us-east-1:000000000000:dataset-group/missing"
    code, message = error_of(lambda: pz.describe_dataset_group(datasetGroupArn=arn))
    assert code == "ResourceNotFoundException"
    assert arn in message


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"name": "has space"}, "at 'name' failed to satisfy constraint: Member must satisfy"),
        ({"name": "x" * 64}, "Member must have length less than or equal to 63"),
        ({"name": "ok", "domain": "RETAIL"}, "Member must satisfy enum value set"),
    ],
)
def test_invalid_input_names_the_field(pz: Any, kwargs: dict[str, Any], fragment: str) -> None:
    code, message = error_of(lambda: pz.create_dataset_group(**kwargs))
    assert code == "InvalidInputException"
    assert fragment in message


def test_boto3_checks_min_itself(pz: Any) -> None:
    with pytest.raises(ParamValidationError):
        pz.create_dataset_group(name="")


def test_pagination_and_paginator(pz: Any, unique: Callable[[str], str]) -> None:
    prefix = unique("page")
    made = {pz.create_dataset_group(name=f"{prefix}-{i}")["datasetGroupArn"] for i in range(5)}
    first = pz.list_dataset_groups(maxResults=2)
    assert len(first["datasetGroups"]) == 2 and "nextToken" in first
    listed: list[str] = []
    for page in pz.get_paginator("list_dataset_groups").paginate(PaginationConfig={"PageSize": 2}):
        listed += [g["datasetGroupArn"] for g in page["datasetGroups"]]
    assert made <= set(listed)
    assert len(listed) == len(set(listed))
    code, _ = error_of(lambda: pz.list_dataset_groups(nextToken="garbage!!"))
    assert code == "InvalidNextTokenException"


def test_recipes_are_listed(pz: Any) -> None:
    names = {
        r["name"]
        for page in pz.get_paginator("list_recipes").paginate(PaginationConfig={"PageSize": 4})
        for r in page["recipes"]
    }
    for expected in (
        "aws-user-personalization",
        "aws-user-personalization-v2",
        "aws-sims",
        "aws-popularity-count",
        "aws-personalized-ranking",
        "aws-trending-now",
        "aws-hrnn",
        "aws-hrnn-metadata",
        "aws-hrnn-coldstart",
        "aws-item-affinity",
        "aws-next-best-action",
    ):
        assert expected in names
    vod = pz.list_recipes(domain="VIDEO_ON_DEMAND")["recipes"]
    assert vod and all(r["domain"] == "VIDEO_ON_DEMAND" for r in vod)
    sims = pz.describe_recipe(recipeArn="arn:aws:personalize:::recipe/aws-sims")["recipe"]
    assert sims["recipeType"] == "RELATED_ITEMS"
    algo = pz.describe_algorithm(algorithmArn=sims["algorithmArn"])["algorithm"]
    assert algo["defaultHyperParameters"]["popularity_discount_factor"] == "0.5"


def test_schema_validation_and_in_use(pz: Any, unique: Callable[[str], str]) -> None:
    code, message = error_of(lambda: pz.create_schema(name=unique("s"), schema="{not json"))
    assert code == "InvalidInputException" and "schema" in message.lower()
    items_schema = pz.create_schema(name=unique("items"), schema=ITEMS_SCHEMA)["schemaArn"]
    inter_schema = pz.create_schema(name=unique("inter"), schema=INTERACTIONS_SCHEMA)["schemaArn"]
    group = active_group(pz, unique("dg"))
    code, message = error_of(
        lambda: pz.create_dataset(
            name=unique("d"),
            schemaArn=items_schema,
            datasetGroupArn=group,
            datasetType="Interactions",
        )
    )
    assert code == "InvalidInputException" and "Interactions" in message.title()
    ds = pz.create_dataset(
        name=unique("d"), schemaArn=inter_schema, datasetGroupArn=group, datasetType="Interactions"
    )["datasetArn"]
    assert ds.endswith(f"dataset/{group.rsplit('/', 1)[1]}/INTERACTIONS")
    code, _ = error_of(
        lambda: pz.create_dataset(
            name=unique("d"),
            schemaArn=inter_schema,
            datasetGroupArn=group,
            datasetType="INTERACTIONS",
        )
    )
    assert code == "ResourceAlreadyExistsException"
    code, message = error_of(lambda: pz.delete_schema(schemaArn=inter_schema))
    assert code == "ResourceInUseException" and ds in message
    code, message = error_of(lambda: pz.delete_dataset_group(datasetGroupArn=group))
    assert code == "ResourceInUseException" and "dataset" in message
    listed = pz.list_datasets(datasetGroupArn=group)["datasets"]
    assert [d["datasetArn"] for d in listed] == [ds]
    wait_status(lambda: pz.describe_dataset(datasetArn=ds)["dataset"])
    pz.delete_dataset(datasetArn=ds)
    with pytest.raises(pz.exceptions.ResourceNotFoundException):
        wait_status(lambda: pz.describe_dataset(datasetArn=ds)["dataset"], (), 30)
    pz.delete_schema(schemaArn=inter_schema)
    pz.delete_dataset_group(datasetGroupArn=group)


def test_solution_errors(pz: Any, unique: Callable[[str], str]) -> None:
    group = active_group(pz, unique("dg"))
    code, message = error_of(
        lambda: pz.create_solution(
            name=unique("s"),
            datasetGroupArn=group,
            recipeArn="arn:aws:personalize:::recipe/aws-next-best-action",
        )
    )
    assert code == "InvalidInputException" and "not trainable yet" in message
    code, message = error_of(
        lambda: pz.create_solution(
            name=unique("s"),
            datasetGroupArn=group,
            recipeArn="arn:aws:personalize:::recipe/aws-sims",
            solutionConfig={"algorithmHyperParameters": {"popularity_discount_factor": "1.5"}},
        )
    )
    assert code == "InvalidInputException" and "popularity_discount_factor" in message
    code, message = error_of(
        lambda: pz.create_solution(
            name=unique("s"),
            datasetGroupArn=group,
            recipeArn="arn:aws:personalize:::recipe/aws-sims",
            solutionConfig={"algorithmHyperParameters": {"hidden_dimension": "50"}},
        )
    )
    assert code == "InvalidInputException" and "hidden_dimension" in message
    code, _ = error_of(
        lambda: pz.create_solution(
            name=unique("s"),
            datasetGroupArn=group,
            recipeArn="arn:aws:personalize:::recipe/aws-nonexistent",
        )
    )
    assert code == "InvalidInputException"
    code, _ = error_of(lambda: pz.create_solution(name=unique("s"), datasetGroupArn=group))
    assert code == "InvalidInputException"


def test_tags(pz: Any, unique: Callable[[str], str]) -> None:
    arn = pz.create_dataset_group(
        name=unique("dg"), tags=[{"tagKey": "team", "tagValue": "search"}]
    )["datasetGroupArn"]
    pz.tag_resource(resourceArn=arn, tags=[{"tagKey": "env", "tagValue": "dev"}])
    tags = {t["tagKey"]: t["tagValue"] for t in pz.list_tags_for_resource(resourceArn=arn)["tags"]}
    assert tags == {"team": "search", "env": "dev"}
    pz.untag_resource(resourceArn=arn, tagKeys=["team"])
    assert pz.list_tags_for_resource(resourceArn=arn)["tags"] == [
        {"tagKey": "env", "tagValue": "dev"}
    ]


def test_runtime_errors(rt: Any) -> None:
    missing = "arn:aws:personalize:us-east-1:000000000000:campaign/missing"
    with pytest.raises(rt.exceptions.ResourceNotFoundException) as info:
        rt.get_recommendations(campaignArn=missing, userId="u1")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    code, message = error_of(
        lambda: rt.get_recommendations(campaignArn=missing, userId="u1", numResults=501)
    )
    assert code == "InvalidInputException" and "numResults" in message


def test_raw_protocol_errors(server: Server) -> None:
    headers = {"Content-Type": "application/x-amz-json-1.1"}
    r = httpx.post(
        server.url, headers={**headers, "X-Amz-Target": "AmazonPersonalize.Nope"}, content=b"{}"
    )
    assert r.status_code == 400 and r.json()["__type"] == "UnknownOperationException"
    r = httpx.post(
        server.url,
        headers={**headers, "X-Amz-Target": "AmazonPersonalize.ListDatasetGroups"},
        content=b"[1, 2",
    )
    assert r.status_code == 400 and r.json()["__type"] == "SerializationException"
    r = httpx.post(f"{server.url}/recommendations", content=b"{}")
    assert r.status_code == 400 and r.headers["x-amzn-ErrorType"] == "InvalidInputException"


def test_rejected_requests_change_nothing(pz: Any, unique: Callable[[str], str]) -> None:
    def everything() -> tuple[set[str], set[str], set[str]]:
        groups = {
            g["datasetGroupArn"]
            for p in pz.get_paginator("list_dataset_groups").paginate()
            for g in p["datasetGroups"]
        }
        schemas = {
            s["schemaArn"]
            for p in pz.get_paginator("list_schemas").paginate()
            for s in p["schemas"]
        }
        solutions = {
            s["solutionArn"]
            for p in pz.get_paginator("list_solutions").paginate()
            for s in p["solutions"]
        }
        return groups, schemas, solutions

    name = unique("keep")
    group = pz.create_dataset_group(name=name, tags=[{"tagKey": "v", "tagValue": "1"}])[
        "datasetGroupArn"
    ]
    before = everything()
    attempts: list[Callable[[], Any]] = [
        lambda: pz.create_dataset_group(name="bad name"),
        lambda: pz.create_dataset_group(name=name, tags=[{"tagKey": "v", "tagValue": "2"}]),
        lambda: pz.create_schema(name=unique("s"), schema='{"type": "record"}'),
        lambda: pz.create_solution(
            name=unique("s"),
            datasetGroupArn=group,
            recipeArn="arn:aws:personalize:::recipe/aws-item-affinity",
        ),
        lambda: pz.create_solution(
            name=unique("s"),
            datasetGroupArn=group,
            recipeArn="arn:aws:personalize:::recipe/aws-sims",
            solutionConfig={"algorithmHyperParameters": {"min_cointeraction_count": "11"}},
        ),
        lambda: pz.create_dataset(
            name=unique("d"),
            datasetGroupArn=group,
            datasetType="Interactions",
            schemaArn="arn:aws:personalize:us-east-1:000000000000:schema/missing",
        ),
    ]
    for attempt in attempts:
        code, _ = error_of(attempt)
        assert code in (
            "InvalidInputException",
            "ResourceAlreadyExistsException",
            "ResourceNotFoundException",
        )
    assert everything() == before
    assert pz.list_tags_for_resource(resourceArn=group)["tags"] == [
        {"tagKey": "v", "tagValue": "1"}
    ]
    assert pz.list_datasets(datasetGroupArn=group)["datasets"] == []


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        (
            {"eventsConfig": {"eventParametersList": [{"eventType": "click", "weight": 0.5}]}},
            "does not weigh events",
        ),
        (
            {"trainingDataConfig": {"excludedDatasetColumns": {"Actions": ["PRICE"]}}},
            "Interactions, Items or Users",
        ),
        (
            {
                "trainingDataConfig": {
                    "includedDatasetColumns": {"Items": ["PRICE"]},
                    "excludedDatasetColumns": {"ITEMS": ["price"]},
                }
            },
            "both included and excluded",
        ),
    ],
)
def test_solution_config_checks(
    pz: Any, unique: Callable[[str], str], config: dict[str, Any], fragment: str
) -> None:
    group = active_group(pz, unique("dg"))
    code, message = error_of(
        lambda: pz.create_solution(
            name=unique("s"),
            datasetGroupArn=group,
            recipeArn="arn:aws:personalize:::recipe/aws-sims",
            solutionConfig=config,
        )
    )
    assert code == "InvalidInputException" and fragment in message, message

"""The "first campaign" notebook flow, step by step, as helpers the tests share."""

from __future__ import annotations

from typing import Any

from tests.conftest import wait_status

RECIPE = "arn:aws:personalize:::recipe/"


def create_group(pz: Any, name: str) -> str:
    arn: str = pz.create_dataset_group(name=name)["datasetGroupArn"]
    wait_status(lambda: pz.describe_dataset_group(datasetGroupArn=arn)["datasetGroup"])
    return arn


def create_dataset(pz: Any, group: str, name: str, dataset_type: str, schema: str) -> str:
    schema_arn = pz.create_schema(name=f"{name}-schema", schema=schema)["schemaArn"]
    arn: str = pz.create_dataset(
        name=name, schemaArn=schema_arn, datasetGroupArn=group, datasetType=dataset_type
    )["datasetArn"]
    wait_status(lambda: pz.describe_dataset(datasetArn=arn)["dataset"])
    return arn


def import_data(
    pz: Any, dataset: str, name: str, location: str, mode: str = "FULL", timeout: float = 300
) -> dict[str, Any]:
    arn = pz.create_dataset_import_job(
        jobName=name,
        datasetArn=dataset,
        dataSource={"dataLocation": location},
        roleArn="arn:aws:iam::000000000000:role/PersonalizeRole",
        importMode=mode,
    )["datasetImportJobArn"]
    return wait_status(
        lambda: pz.describe_dataset_import_job(datasetImportJobArn=arn)["datasetImportJob"],
        timeout=timeout,
    )


def train(
    pz: Any, group: str, name: str, recipe: str, config: dict[str, Any] | None = None,
    timeout: float = 600,
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"name": name, "datasetGroupArn": group, "recipeArn": RECIPE + recipe}
    if config:
        kwargs["solutionConfig"] = config
    solution = pz.create_solution(**kwargs)["solutionArn"]
    wait_status(lambda: pz.describe_solution(solutionArn=solution)["solution"])
    version = pz.create_solution_version(solutionArn=solution)["solutionVersionArn"]
    return wait_status(
        lambda: pz.describe_solution_version(solutionVersionArn=version)["solutionVersion"],
        timeout=timeout,
    )


def deploy(pz: Any, name: str, version_arn: str, config: dict[str, Any] | None = None) -> str:
    kwargs: dict[str, Any] = {"name": name, "solutionVersionArn": version_arn, "minProvisionedTPS": 1}
    if config:
        kwargs["campaignConfig"] = config
    arn: str = pz.create_campaign(**kwargs)["campaignArn"]
    campaign = wait_status(lambda: pz.describe_campaign(campaignArn=arn)["campaign"])
    assert campaign["status"] == "ACTIVE", campaign
    return arn

"""Bulk imports through the server: FULL / INCREMENTAL, all-or-nothing, from files and S3."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from pertinent.testing import (
    ServerProcess,
    create_dataset,
    create_group,
    deploy,
    import_data,
    train,
)

SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Interactions",
        "namespace": "com.amazonaws.personalize.schema",
        "fields": [
            {"name": "USER_ID", "type": "string"},
            {"name": "ITEM_ID", "type": "string"},
            {"name": "EVENT_TYPE", "type": "string"},
            {"name": "TIMESTAMP", "type": "long"},
        ],
        "version": "1.0",
    }
)


def rows(n: int, users: int = 60, items: int = 40, offset: int = 0) -> list[str]:
    return [
        f"u{(i * 7) % users},i{(i * 13 + i // users) % items},click,{1_700_000_000 + offset + i}"
        for i in range(n)
    ]


def write(
    path: Path, lines: list[str], header: str = "USER_ID,ITEM_ID,EVENT_TYPE,TIMESTAMP"
) -> Path:
    path.write_text(header + "\n" + "\n".join(lines) + "\n")
    return path


@pytest.fixture
def dataset(pz: Any, unique: Callable[[str], str]) -> tuple[str, str]:
    group = create_group(pz, unique("imp"))
    return group, create_dataset(pz, group, unique("imp"), "Interactions", SCHEMA)


def popular(pz: Any, rt: Any, group: str, unique: Callable[[str], str]) -> list[str]:
    version = train(pz, group, unique("pop"), "aws-popularity-count")
    assert version["status"] == "ACTIVE", version
    campaign = deploy(pz, unique("pop"), version["solutionVersionArn"])
    items = rt.get_recommendations(campaignArn=campaign, numResults=100)["itemList"]
    return [i["itemId"] for i in items]


def test_bad_row_fails_the_import_and_changes_nothing(
    pz: Any, rt: Any, tmp_path: Path, dataset: tuple[str, str], unique: Callable[[str], str]
) -> None:
    group, ds = dataset
    good = write(tmp_path / "good.csv", rows(1200))
    assert import_data(pz, ds, unique("good"), good.as_uri())["status"] == "ACTIVE"
    before = popular(pz, rt, group, unique)
    assert len(before) == 40

    lines = rows(1500, items=90, offset=10_000)
    lines[776] = "u1,i2,click,17x"  # file line 778: line 1 is the header
    bad = write(tmp_path / "bad.csv", lines)
    job = import_data(pz, ds, unique("bad"), bad.as_uri())
    assert job["status"] == "CREATE FAILED"
    reason = job["failureReason"]
    assert "bad.csv" in reason and "778" in reason and "TIMESTAMP" in reason and "17x" in reason
    # The 50 new items of the failed file never reached the dataset.
    assert popular(pz, rt, group, unique) == before


@pytest.mark.parametrize(
    ("header", "lines", "fragments"),
    [
        ("USER_ID,ITEM_ID,TIMESTAMP", rows(1000), ["missing", "EVENT_TYPE"]),
        (
            "USER_ID,ITEM_ID,EVENT_TYPE,TIMESTAMP",
            [*rows(999), ",i1,click,1700000000"],
            ["line 1001", "USER_ID"],
        ),
        ("USER_ID,ITEM_ID,EVENT_TYPE,TIMESTAMP", rows(10), ["1000"]),
    ],
    ids=["missing-column", "empty-required", "too-few-rows"],
)
def test_import_failures_say_why(
    pz: Any,
    tmp_path: Path,
    dataset: tuple[str, str],
    unique: Callable[[str], str],
    header: str,
    lines: list[str],
    fragments: list[str],
) -> None:
    _, ds = dataset
    job = import_data(pz, ds, unique("f"), str(write(tmp_path / "f.csv", lines, header)))
    assert job["status"] == "CREATE FAILED"
    for fragment in fragments:
        assert fragment in job["failureReason"], job["failureReason"]


def test_missing_file_fails_with_reason(
    pz: Any, tmp_path: Path, dataset: tuple[str, str], unique: Callable[[str], str]
) -> None:
    _, ds = dataset
    job = import_data(pz, ds, unique("m"), (tmp_path / "nope.csv").as_uri())
    assert job["status"] == "CREATE FAILED" and job["failureReason"]


def test_incremental_needs_a_full_import_first(
    pz: Any, tmp_path: Path, dataset: tuple[str, str], unique: Callable[[str], str]
) -> None:
    _, ds = dataset
    with pytest.raises(pz.exceptions.InvalidInputException) as info:
        pz.create_dataset_import_job(
            jobName=unique("inc"),
            datasetArn=ds,
            importMode="INCREMENTAL",
            dataSource={"dataLocation": str(write(tmp_path / "a.csv", rows(1000)))},
        )
    assert "FULL" in str(info.value)


def test_full_replaces_incremental_appends(
    pz: Any, rt: Any, tmp_path: Path, dataset: tuple[str, str], unique: Callable[[str], str]
) -> None:
    group, ds = dataset
    first = write(tmp_path / "first.csv", rows(1000, items=20))
    assert import_data(pz, ds, unique("a"), first.as_uri())["status"] == "ACTIVE"
    extra = write(tmp_path / "extra.csv", [r.replace(",i", ",x") for r in rows(1000, items=10)])
    job = import_data(pz, ds, unique("b"), extra.as_uri(), mode="INCREMENTAL")
    assert job["status"] == "ACTIVE" and job["importMode"] == "INCREMENTAL"
    both = popular(pz, rt, group, unique)
    assert len(both) == 30 and {i[0] for i in both} == {"i", "x"}
    assert import_data(pz, ds, unique("c"), first.as_uri(), mode="FULL")["status"] == "ACTIVE"
    again = popular(pz, rt, group, unique)
    assert len(again) == 20 and {i[0] for i in again} == {"i"}
    jobs = pz.list_dataset_import_jobs(datasetArn=ds)["datasetImportJobs"]
    assert len(jobs) == 3


def test_folder_of_files(
    pz: Any, rt: Any, tmp_path: Path, dataset: tuple[str, str], unique: Callable[[str], str]
) -> None:
    group, ds = dataset
    folder = tmp_path / "parts"
    folder.mkdir()
    write(folder / "a.csv", rows(600, items=20))
    write(folder / "b.csv", [r.replace(",i", ",z") for r in rows(600, items=5)])
    job = import_data(pz, ds, unique("dir"), folder.as_uri() + "/")
    assert job["status"] == "ACTIVE", job
    assert len(popular(pz, rt, group, unique)) == 25


@pytest.fixture(scope="module")
def s3() -> Iterator[tuple[str, Any]]:
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    moto.start()
    host, port = moto.get_host_and_port()
    url = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
    client.create_bucket(Bucket="personalize-data")
    yield url, client
    moto.stop()


def test_import_from_s3(
    s3: tuple[str, Any], tmp_path_factory: pytest.TempPathFactory, unique: Callable[[str], str]
) -> None:
    url, client = s3
    body = "USER_ID,ITEM_ID,EVENT_TYPE,TIMESTAMP\n" + "\n".join(rows(1200)) + "\n"
    client.put_object(Bucket="personalize-data", Key="single/interactions.csv", Body=body)
    client.put_object(Bucket="personalize-data", Key="many/part-1.csv", Body=body)
    client.put_object(Bucket="personalize-data", Key="many/part-2.csv", Body=body)
    home = tmp_path_factory.mktemp("s3server")
    with ServerProcess(home, env={"PERTINENT_S3_ENDPOINT_URL": url}) as server:
        pz = server.client("personalize")
        group = create_group(pz, unique("s3"))
        ds = create_dataset(pz, group, unique("s3"), "Interactions", SCHEMA)
        one = import_data(pz, ds, unique("one"), "s3://personalize-data/single/interactions.csv")
        assert one["status"] == "ACTIVE", one
        many = import_data(pz, ds, unique("many"), "s3://personalize-data/many/")
        assert many["status"] == "ACTIVE", many
        missing = import_data(pz, ds, unique("none"), "s3://personalize-data/nothing-here/")
        assert missing["status"] == "CREATE FAILED" and missing["failureReason"]
        version = train(pz, group, unique("s3"), "aws-sims")
        assert version["status"] == "ACTIVE", version

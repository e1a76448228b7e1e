"""Validation against botocore's models: the messages name the field and the rule."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from pertinent.api.protocol import operation, shape_output, validate
from pertinent.errors import InvalidInputException


def check(service: str, op: str, params: Any) -> str:
    with pytest.raises(InvalidInputException) as info:
        validate(operation(service, op), params)
    return info.value.message


@pytest.mark.parametrize(
    ("op", "params", "expected"),
    [
        (
            "CreateDatasetGroup",
            {},
            "Value null at 'name' failed to satisfy constraint: Member must not be null",
        ),
        (
            "CreateDatasetGroup",
            {"name": "bad name!"},
            "Value 'bad name!' at 'name' failed to satisfy constraint: Member must satisfy "
            "regular expression pattern",
        ),
        (
            "CreateDatasetGroup",
            {"name": "x" * 64},
            "at 'name' failed to satisfy constraint: "
            "Member must have length less than or equal to 63",
        ),
        (
            "CreateDatasetGroup",
            {"name": "ok", "domain": "RETAIL"},
            "Value 'RETAIL' at 'domain' failed to satisfy constraint: "
            "Member must satisfy enum value set: [ECOMMERCE, VIDEO_ON_DEMAND]",
        ),
        (
            "ListDatasetGroups",
            {"maxResults": 101},
            "at 'maxResults' failed to satisfy constraint: Member must have value less than or "
            "equal to 100",
        ),
        (
            "CreateDatasetImportJob",
            {
                "jobName": "j",
                "datasetArn": "arn:aws:personalize:us-east-1:1:dataset/g/ITEMS",
                "dataSource": {"dataLocation": "ftp://host/file.csv"},
            },
            "at 'dataSource.dataLocation' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern: (s3|http|https)://.+",
        ),
        (
            "CreateSolution",
            {"name": "s", "datasetGroupArn": "not-an-arn"},
            "at 'datasetGroupArn' failed to satisfy constraint",
        ),
        ("CreateDatasetGroup", {"name": 5}, "Member must be a string"),
    ],
)
def test_control_plane_errors(op: str, params: dict[str, Any], expected: str) -> None:
    assert expected in check("personalize", op, params)


def test_error_count_is_reported() -> None:
    msg = check("personalize", "CreateDatasetGroup", {"name": "a b", "domain": "X"})
    assert msg.startswith("2 validation errors detected: ")


def test_local_locations_are_accepted() -> None:
    base = {"jobName": "j", "datasetArn": "arn:aws:personalize:us-east-1:1:dataset/g/ITEMS"}
    for loc in ("file:///data/x.csv", "/data/x.csv", "s3://bucket/x.csv"):
        validate(
            operation("personalize", "CreateDatasetImportJob"),
            {**base, "dataSource": {"dataLocation": loc}},
        )


def test_nested_list_members_are_checked() -> None:
    msg = check(
        "personalize-events",
        "PutEvents",
        {"trackingId": "t", "sessionId": "s", "eventList": [{"eventType": "click"}]},
    )
    assert "'eventList.1.member.sentAt'" in msg


def test_runtime_limits() -> None:
    msg = check(
        "personalize-runtime",
        "GetRecommendations",
        {"campaignArn": "arn:aws:personalize:us-east-1:1:campaign/c", "numResults": -1},
    )
    assert "at 'numResults' failed to satisfy constraint: Member must have value greater" in msg


def test_shape_output_drops_unknown_and_none_and_converts_times() -> None:
    op = operation("personalize", "DescribeDatasetGroup")
    when = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    out = shape_output(
        op.output_shape,
        {"datasetGroup": {"name": "g", "status": None, "_secret": 1, "creationDateTime": when}},
    )
    assert out == {"datasetGroup": {"name": "g", "creationDateTime": 1704067200.0}}

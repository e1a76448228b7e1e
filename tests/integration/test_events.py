"""The events API through boto3: trackers, PutEvents / PutItems / PutUsers validation."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pertinent.testing import create_dataset, create_group, wait_status

INTERACTIONS = json.dumps(
    {
        "type": "record", "name": "Interactions",
        "namespace": "com.amazonaws.personalize.schema", "version": "1.0",
        "fields": [
            {"name": "USER_ID", "type": "string"},
            {"name": "ITEM_ID", "type": "string"},
            {"name": "TIMESTAMP", "type": "long"},
            {"name": "EVENT_TYPE", "type": "string"},
            {"name": "EVENT_VALUE", "type": ["null", "float"]},
            {"name": "DEVICE", "type": ["null", "string"], "categorical": True},
            {"name": "NUMBER_OF_RATINGS", "type": ["null", "int"]},
        ],
    }
)  # fmt: skip
ITEMS = json.dumps(
    {
        "type": "record", "name": "Items",
        "namespace": "com.amazonaws.personalize.schema", "version": "1.0",
        "fields": [
            {"name": "ITEM_ID", "type": "string"},
            {"name": "GENRES", "type": "string", "categorical": True},
            {"name": "PRICE", "type": ["null", "float"]},
        ],
    }
)  # fmt: skip


@pytest.fixture(scope="module")
def tracked(pz: Any) -> dict[str, str]:
    group = create_group(pz, "events-group")
    interactions = create_dataset(pz, group, "events-inter", "Interactions", INTERACTIONS)
    items = create_dataset(pz, group, "events-items", "Items", ITEMS)
    tracker = pz.create_event_tracker(name="events-tracker", datasetGroupArn=group)
    wait_status(
        lambda: pz.describe_event_tracker(eventTrackerArn=tracker["eventTrackerArn"])[
            "eventTracker"
        ]
    )
    return {
        "group": group, "interactions": interactions, "items": items,
        "tracker": tracker["eventTrackerArn"], "trackingId": tracker["trackingId"],
    }  # fmt: skip


def test_tracker_lifecycle(pz: Any, tracked: dict[str, str]) -> None:
    got = pz.describe_event_tracker(eventTrackerArn=tracked["tracker"])["eventTracker"]
    assert got["trackingId"] == tracked["trackingId"] and got["status"] == "ACTIVE"
    assert got["accountId"] == "000000000000"
    listed = pz.list_event_trackers(datasetGroupArn=tracked["group"])["eventTrackers"]
    assert [t["eventTrackerArn"] for t in listed] == [tracked["tracker"]]
    with pytest.raises(pz.exceptions.ResourceAlreadyExistsException):
        pz.create_event_tracker(name="second-tracker", datasetGroupArn=tracked["group"])


def test_put_events_accepts_good_events(server: Any, tracked: dict[str, str]) -> None:
    ev = server.client("personalize-events")
    ev.put_events(
        trackingId=tracked["trackingId"], userId="u1", sessionId="s1",
        eventList=[
            {"eventType": "click", "itemId": "i1", "sentAt": time.time()},
            {"eventType": "rating", "itemId": "i2", "sentAt": time.time(), "eventValue": 4.5,
             "properties": json.dumps({"device": "mobile", "numberOfRatings": "12"}),
             "impression": ["i2", "i3"], "recommendationId": "RID-1", "eventId": "e-1"},
            {"eventType": "click", "sentAt": time.time(),
             "properties": json.dumps({"itemId": "i9"})},
        ],
    )  # fmt: skip
    # Anonymous: a session and no user.
    ev.put_events(
        trackingId=tracked["trackingId"], sessionId="anon-1",
        eventList=[{"eventType": "click", "itemId": "i4", "sentAt": time.time()}],
    )  # fmt: skip


@pytest.mark.parametrize(
    ("event", "fragment"),
    [
        ({"eventType": "click", "sentAt": 1.0}, "itemId is required"),
        (
            {"eventType": "click", "itemId": "i", "sentAt": 1.0,
             "properties": json.dumps({"userId": "x"})},
            "may not contain 'userId'",
        ),
        (
            {"eventType": "click", "itemId": "i", "sentAt": 1.0,
             "properties": json.dumps({"colour": "red"})},
            "'colour', which is not a column",
        ),
        (
            {"eventType": "click", "itemId": "i", "sentAt": 1.0,
             "properties": json.dumps({"numberOfRatings": "many"})},
            "not a valid int for NUMBER_OF_RATINGS",
        ),
        ({"eventType": "click", "itemId": "i", "sentAt": 1.0, "properties": "{not json"},
         "must be a JSON object"),
        ({"eventType": "x" * 257, "itemId": "i", "sentAt": 1.0},
         "length less than or equal to 256"),
    ],
)  # fmt: skip
def test_bad_events_are_rejected_whole(
    server: Any, tracked: dict[str, str], event: dict[str, Any], fragment: str
) -> None:
    ev = server.client("personalize-events")
    good = {"eventType": "click", "itemId": "ok", "sentAt": 1.0}
    with pytest.raises(ClientError) as info:
        ev.put_events(
            trackingId=tracked["trackingId"], userId="u", sessionId="s", eventList=[good, event]
        )
    err = info.value.response["Error"]
    assert err["Code"] == "InvalidInputException"
    assert fragment in err["Message"], err["Message"]
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_unknown_tracking_id(server: Any) -> None:
    ev = server.client("personalize-events")
    with pytest.raises(ev.exceptions.InvalidInputException) as info:
        ev.put_events(
            trackingId="nope", sessionId="s", eventList=[{"eventType": "c", "sentAt": 1.0}]
        )
    assert "trackingId" in str(info.value)


def test_put_items_and_users(
    server: Any, tracked: dict[str, str], unique: Callable[[str], str]
) -> None:
    ev = server.client("personalize-events")
    ev.put_items(
        datasetArn=tracked["items"],
        items=[{"itemId": "new-1", "properties": json.dumps({"genres": "Comedy|Drama"})}],
    )
    with pytest.raises(ev.exceptions.InvalidInputException) as info:
        ev.put_items(
            datasetArn=tracked["items"],
            items=[{"itemId": "new-2", "properties": json.dumps({"price": 3.0})}],
        )
    assert "must include GENRES" in str(info.value)
    with pytest.raises(ev.exceptions.InvalidInputException):
        ev.put_users(datasetArn=tracked["items"], users=[{"userId": "u", "properties": "{}"}])
    missing = tracked["items"].replace("events-group", "nope")
    with pytest.raises(ev.exceptions.ResourceNotFoundException) as nf:
        ev.put_items(datasetArn=missing, items=[{"itemId": "x", "properties": "{}"}])
    assert nf.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404

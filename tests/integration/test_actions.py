"""PutActions and PutActionInteractions through boto3: validated, durable, idempotent."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pertinent.store.catalog import Catalog
from pertinent.store.eventlog import records
from pertinent.testing import create_dataset, create_group, wait_status


def _schema(name: str, fields: list[dict[str, Any]]) -> str:
    return json.dumps(
        {"type": "record", "name": name, "namespace": "com.amazonaws.personalize.schema",
         "version": "1.0", "fields": fields}
    )  # fmt: skip


ACTIONS = _schema(
    "Actions",
    [
        {"name": "ACTION_ID", "type": "string"},
        {"name": "VALUE", "type": ["null", "long"]},
        {"name": "CHANNEL", "type": "string", "categorical": True},
    ],
)
ACTION_INTERACTIONS = _schema(
    "ActionInteractions",
    [
        {"name": "USER_ID", "type": "string"},
        {"name": "ACTION_ID", "type": "string"},
        {"name": "TIMESTAMP", "type": "long"},
        {"name": "EVENT_TYPE", "type": "string"},
        {"name": "DEVICE", "type": ["null", "string"], "categorical": True},
    ],
)


def test_actions_and_action_interactions(pz: Any, server: Any) -> None:
    group = create_group(pz, "actions-group")
    actions = create_dataset(pz, group, "actions", "Actions", ACTIONS)
    interactions = create_dataset(
        pz, group, "action-inter", "Action_Interactions", ACTION_INTERACTIONS
    )
    made = pz.create_event_tracker(name="actions-tracker", datasetGroupArn=group)
    wait_status(
        lambda: pz.describe_event_tracker(eventTrackerArn=made["eventTrackerArn"])["eventTracker"]
    )
    events = server.client("personalize-events")

    events.put_actions(
        datasetArn=actions,
        actions=[
            {"actionId": "join-plus", "properties": json.dumps({"value": 3, "channel": "email"})},
            {"actionId": "rate-app", "properties": json.dumps({"channel": "push"})},
        ],
    )
    with pytest.raises(events.exceptions.InvalidInputException, match="COLOUR|colour"):
        events.put_actions(
            datasetArn=actions,
            actions=[{"actionId": "bad", "properties": json.dumps({"colour": "red"})}],
        )
    with pytest.raises(events.exceptions.InvalidInputException, match="ACTIONS"):
        events.put_actions(datasetArn=interactions, actions=[{"actionId": "x"}])

    ok = {
        "actionId": "join-plus", "userId": "u1", "sessionId": "s1", "timestamp": 1_700_000_000,
        "eventType": "TAKEN", "eventId": "e-1", "properties": json.dumps({"device": "ios"}),
    }  # fmt: skip
    tracking = made["trackingId"]
    events.put_action_interactions(trackingId=tracking, actionInteractions=[ok])
    events.put_action_interactions(trackingId=tracking, actionInteractions=[ok])  # a retry
    with pytest.raises(events.exceptions.InvalidInputException, match="actionInteractions.2"):
        events.put_action_interactions(
            trackingId=tracking,
            actionInteractions=[
                {**ok, "eventId": "e-2"},
                {**ok, "eventId": "e-3", "properties": json.dumps({"nope": 1})},
            ],
        )

    catalog = Catalog(f"sqlite:///{server.home / 'catalog.db'}")
    try:
        with catalog.read() as conn:
            stored_actions = {r[0]: json.loads(r[1]) for r in records(conn, actions)}
            stored_events = {r[0]: json.loads(r[1]) for r in records(conn, interactions)}
    finally:
        catalog.dispose()
    assert stored_actions == {
        "join-plus": {"VALUE": 3, "CHANNEL": "email"},
        "rate-app": {"CHANNEL": "push"},
    }
    # The retry is one event, and nothing of the rejected batch was written.
    assert list(stored_events) == ["e-1"]
    assert stored_events["e-1"]["ACTION_ID"] == "join-plus"
    assert stored_events["e-1"]["DEVICE"] == "ios"
    assert stored_events["e-1"]["TIMESTAMP"] == 1_700_000_000

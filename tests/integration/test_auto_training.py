"""Automatic training on a schedule, and a campaign that follows the latest version.

A server of its own, with a short first-run delay and a short "day", so that
``rate(1 day)`` comes round twice within the test.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pertinent.testing import (
    RECIPE,
    ServerProcess,
    create_dataset,
    create_group,
    import_data,
    wait_status,
)

INTERACTIONS = json.dumps(
    {
        "type": "record", "name": "Interactions",
        "namespace": "com.amazonaws.personalize.schema", "version": "1.0",
        "fields": [
            {"name": "USER_ID", "type": "string"},
            {"name": "ITEM_ID", "type": "string"},
            {"name": "TIMESTAMP", "type": "long"},
        ],
    }
)  # fmt: skip
DAY = 6.0  # seconds in a scheduling "day" on this server
T0 = 1_700_000_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"PERTINENT_AUTO_TRAINING_DELAY": "1", "PERTINENT_AUTO_TRAINING_DAY": str(DAY)}
    with ServerProcess(tmp_path_factory.mktemp("autotrain"), env=env) as srv:
        yield srv


def _csv(path: Path) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["USER_ID", "ITEM_ID", "TIMESTAMP"])
        for u in range(110):
            # OLD-HIT is everyone's (110 interactions); NEW-HIT nobody's yet.
            w.writerow([f"u{u}", "OLD-HIT", T0 + u])
            for k in range(9):
                w.writerow([f"u{u}", f"i{(u + k) % 30}", T0 + 200 + 10 * u + k])
    return path


def _versions(pz: Any, solution: str) -> list[dict[str, Any]]:
    found = pz.list_solution_versions(solutionArn=solution)["solutionVersions"]
    return [pz.describe_solution_version(solutionVersionArn=v["solutionVersionArn"])[
        "solutionVersion"] for v in found]  # fmt: skip


def _wait_versions(pz: Any, solution: str, count: int, timeout: float = 120) -> list[Any]:
    deadline = time.time() + timeout
    while True:
        active = [v for v in _versions(pz, solution) if v["status"] == "ACTIVE"]
        if len(active) >= count:
            return active
        if time.time() > deadline:
            raise TimeoutError(f"{len(active)} ACTIVE versions of {solution} after {timeout}s")
        time.sleep(0.2)


def test_versions_on_schedule_and_a_campaign_that_follows(
    server: ServerProcess, tmp_path: Path
) -> None:
    pz = server.client("personalize")
    rt = server.client("personalize-runtime")
    events = server.client("personalize-events")
    group = create_group(pz, "auto")
    dataset = create_dataset(pz, group, "auto-inter", "Interactions", INTERACTIONS)
    job = import_data(pz, dataset, "auto-import", _csv(tmp_path / "i.csv").as_uri())
    assert job["status"] == "ACTIVE", job.get("failureReason")
    tracker = pz.create_event_tracker(name="auto-tracker", datasetGroupArn=group)
    wait_status(lambda: pz.describe_event_tracker(
        eventTrackerArn=tracker["eventTrackerArn"])["eventTracker"])  # fmt: skip

    with pytest.raises(pz.exceptions.InvalidInputException, match="rate\\(N days\\)"):
        pz.create_solution(
            name="auto-bad", datasetGroupArn=group, recipeArn=RECIPE + "aws-popularity-count",
            solutionConfig={"autoTrainingConfig": {"schedulingExpression": "rate(31 days)"}},
        )  # fmt: skip
    manual_only = pz.create_solution(
        name="auto-off", datasetGroupArn=group, recipeArn=RECIPE + "aws-popularity-count",
        performAutoTraining=False,
    )["solutionArn"]  # fmt: skip
    solution = pz.create_solution(
        name="auto-on", datasetGroupArn=group, recipeArn=RECIPE + "aws-popularity-count",
        solutionConfig={"autoTrainingConfig": {"schedulingExpression": "rate(1 day)"}},
    )["solutionArn"]  # fmt: skip

    # Nobody calls CreateSolutionVersion: the first run starts by itself.
    first = _wait_versions(pz, solution, 1)[0]
    assert first["trainingType"] == "AUTOMATIC"
    campaign = pz.create_campaign(
        name="auto-campaign", solutionVersionArn=f"{solution}/$LATEST",
        campaignConfig={"syncWithLatestSolutionVersion": True},
    )["campaignArn"]  # fmt: skip
    wait_status(lambda: pz.describe_campaign(campaignArn=campaign)["campaign"])
    top = rt.get_recommendations(campaignArn=campaign, userId="u1", numResults=1)["itemList"]
    assert top[0]["itemId"] == "OLD-HIT"

    # NEW-HIT takes off in the event stream; the next scheduled version trains on it and
    # the campaign moves to that version without anyone updating it.
    for fan in range(150):  # popularity counts users: 150 fans beat OLD-HIT's 110
        events.put_events(
            trackingId=tracker["trackingId"], userId=f"fan{fan}", sessionId=f"s{fan}",
            eventList=[{"eventType": "click", "itemId": "NEW-HIT", "sentAt": T0 + 5000 + fan}],
        )  # fmt: skip
    active = _wait_versions(pz, solution, 2, timeout=DAY * 10 + 60)
    assert all(v["trainingType"] == "AUTOMATIC" for v in active)
    deadline = time.time() + 10
    while True:
        top = rt.get_recommendations(campaignArn=campaign, userId="u1", numResults=1)
        if top["itemList"][0]["itemId"] == "NEW-HIT" or time.time() > deadline:
            break
        time.sleep(0.2)
    assert top["itemList"][0]["itemId"] == "NEW-HIT"
    assert _versions(pz, manual_only) == []

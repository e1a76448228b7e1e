"""User-personalization, the HRNN family and personalized ranking through boto3."""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import polars as pl
import pytest

from pertinent.demo.generate import DemoData, generate
from pertinent.testing import (
    create_dataset,
    create_group,
    deploy,
    import_data,
    train,
    wait_status,
)

USER_RECIPES = [
    "aws-user-personalization",
    "aws-user-personalization-v2",
    "aws-hrnn",
    "aws-hrnn-metadata",
    "aws-hrnn-coldstart",
]
RANKING_RECIPES = ["aws-personalized-ranking", "aws-personalized-ranking-v2"]
NEW_ITEM = "P-NEW-0001"
# Small models keep the suite fast; the recipes' defaults are exercised by bench/.
SMALL = {"hidden_dimension": "32", "bptt": "16"}
SMALL_PARAMS = {
    "aws-user-personalization": SMALL,
    "aws-personalized-ranking": SMALL,
    "aws-hrnn": SMALL,
    "aws-hrnn-metadata": SMALL,
    "aws-hrnn-coldstart": SMALL,
}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> DemoData:
    data = generate(tmp_path_factory.mktemp("up-shop"), users=1200, items=300, seed=21)
    # A brand-new item: in the catalogue (Items dataset), never interacted with.
    newest = pl.read_csv(data.interactions_csv)["TIMESTAMP"].max()
    with data.items_csv.open("a", newline="") as f:
        csv.writer(f).writerow(
            [NEW_ITEM, "books", "fiction", "12.5", newest, "Brand new novel, hardcover"]
        )
    return data


@pytest.fixture(scope="module")
def group(pz: Any, shop: DemoData) -> str:
    arn = create_group(pz, "up-shop")
    for kind, schema, path in (
        ("Interactions", shop.interactions_schema, shop.interactions_csv),
        ("Items", shop.items_schema, shop.items_csv),
        ("Users", shop.users_schema, shop.users_csv),
    ):
        ds = create_dataset(pz, arn, f"up-shop-{kind.lower()}", kind, schema)
        assert import_data(pz, ds, f"up-shop-{kind.lower()}", path.as_uri())["status"] == "ACTIVE"
    return arn


@pytest.fixture(autouse=True)
def _delete_solutions(pz: Any, group: str) -> Iterator[None]:
    """Each test's solutions go when it ends (after its campaigns: this fixture is set up
    first, so torn down last): a group holds at most 10 solutions, and the module makes
    more than that, whichever worker runs which test."""
    yield
    for found in pz.list_solutions(datasetGroupArn=group)["solutions"]:
        if found["status"] == "ACTIVE":
            pz.delete_solution(solutionArn=found["solutionArn"])


@pytest.fixture
def deployed(pz: Any) -> Iterator[Callable[..., str]]:
    """``deploy`` that deletes the campaigns when the test ends: all tests share one
    group, and a group holds at most 5 active campaigns (spec quota)."""
    made: list[str] = []

    def make(*args: Any) -> str:
        made.append(deploy(pz, *args))
        return made[-1]

    yield make
    for arn in made:
        pz.delete_campaign(campaignArn=arn)


@pytest.fixture(scope="module")
def tracker(pz: Any, group: str) -> str:
    """The group's event tracker (one per group), for PutEvents/PutItems/PutUsers."""
    made = pz.create_event_tracker(name="up-shop-tracker", datasetGroupArn=group)
    wait_status(
        lambda: pz.describe_event_tracker(eventTrackerArn=made["eventTrackerArn"])["eventTracker"]
    )
    return str(made["trackingId"])


def _train(pz: Any, group: str, recipe: str, name: str) -> dict[str, Any]:
    params = SMALL_PARAMS.get(recipe)
    config = {"algorithmHyperParameters": params} if params else None
    version = train(pz, group, name, recipe, config)
    assert version["status"] == "ACTIVE", version
    return version


def _check_scores(items: list[dict[str, Any]], catalogue: set[str]) -> None:
    ids = [i["itemId"] for i in items]
    scores = [i["score"] for i in items]
    assert len(ids) == len(set(ids)), "duplicates"
    assert set(ids) <= catalogue
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores == sorted(scores, reverse=True)


def test_same_data_same_seed_same_metrics(
    pz: Any, group: str, unique: Callable[[str], str]
) -> None:
    runs = [_train(pz, group, "aws-user-personalization", unique("repro")) for _ in range(2)]
    metrics = [
        pz.get_solution_metrics(solutionVersionArn=r["solutionVersionArn"])["metrics"] for r in runs
    ]
    assert metrics[0] == metrics[1]


@pytest.mark.parametrize("recipe", USER_RECIPES)
def test_user_recipes_end_to_end(
    pz: Any,
    rt: Any,
    shop: DemoData,
    group: str,
    recipe: str,
    unique: Callable[[str], str],
    deployed: Callable[..., str],
) -> None:
    version = _train(pz, group, recipe, unique(recipe))
    metrics = pz.get_solution_metrics(solutionVersionArn=version["solutionVersionArn"])["metrics"]
    assert metrics["normalized_discounted_cumulative_gain_at_10"] > 0
    campaign = deployed(unique(recipe), version["solutionVersionArn"])
    catalogue = set(shop.item_category) | {NEW_ITEM}
    user = next(iter(shop.user_taste))
    items = rt.get_recommendations(campaignArn=campaign, userId=user, numResults=25)["itemList"]
    assert len(items) == 25
    _check_scores(items, catalogue)
    # A taste model: most of users' lists fall in their categories (≈ 2 of 10, so a
    # list blind to taste scores ~0.2). Over 30 users: a session model may follow a
    # newest session that strays from a user's main tastes, as it should.
    shares = []
    for someone in list(shop.user_taste)[:30]:
        listed = rt.get_recommendations(campaignArn=campaign, userId=someone)["itemList"]
        taste = set(shop.user_taste[someone])
        shares.append(sum(shop.item_category.get(i["itemId"]) in taste for i in listed) / 25)
    assert sum(shares) / len(shares) >= 0.5, (recipe, shares)
    stranger = rt.get_recommendations(campaignArn=campaign, userId="someone-new")["itemList"]
    assert len(stranger) == 25
    _check_scores(stranger, catalogue)
    with pytest.raises(rt.exceptions.InvalidInputException):
        rt.get_recommendations(campaignArn=campaign)


@pytest.mark.parametrize("recipe", RANKING_RECIPES)
def test_ranking_recipes(
    pz: Any,
    rt: Any,
    shop: DemoData,
    group: str,
    recipe: str,
    unique: Callable[[str], str],
    deployed: Callable[..., str],
) -> None:
    version = _train(pz, group, recipe, unique(recipe))
    campaign = deployed(unique(recipe), version["solutionVersionArn"])
    user = next(iter(shop.user_taste))
    taste = set(shop.user_taste[user])
    inside = [i for i, c in shop.item_category.items() if c in taste][:10]
    outside = [i for i, c in shop.item_category.items() if c not in taste][:10]
    ranked = rt.get_personalized_ranking(
        campaignArn=campaign, userId=user, inputList=[*outside, *inside, "no-such-item"]
    )["personalizedRanking"]
    ids = [r["itemId"] for r in ranked]
    assert sorted(ids) == sorted([*outside, *inside, "no-such-item"])
    assert ids[-1] == "no-such-item" and ranked[-1]["score"] == 0.0
    known = ranked[:-1]
    assert abs(sum(r["score"] for r in known) - 1.0) < 1e-3  # a softmax over the list
    assert [r["score"] for r in known] == sorted((r["score"] for r in known), reverse=True)
    top_half = {r["itemId"] for r in known[:10]}
    assert len(top_half & set(inside)) >= 7, ids
    with pytest.raises(rt.exceptions.InvalidInputException):
        rt.get_recommendations(campaignArn=campaign, userId=user)


@pytest.mark.parametrize("recipe", ["aws-user-personalization", "aws-hrnn-coldstart"])
def test_exploration_shows_new_items_only_when_asked(
    recipe: str,
    pz: Any,
    rt: Any,
    shop: DemoData,
    group: str,
    unique: Callable[[str], str],
    deployed: Callable[..., str],
) -> None:
    version = _train(pz, group, recipe, unique("explore"))
    arn = version["solutionVersionArn"]
    exploring = deployed(unique("explore-1"), arn,
        {"itemExplorationConfig": {"explorationWeight": "1", "explorationItemAgeCutOff": "5"}},
    )  # fmt: skip
    exploiting = deployed(
        unique("explore-0"), arn, {"itemExplorationConfig": {"explorationWeight": "0"}}
    )
    readers = [u for u, t in shop.user_taste.items() if t[0] == "books"][:20]
    assert readers

    def shown(campaign: str) -> int:
        return sum(
            NEW_ITEM
            in {
                i["itemId"]
                for i in rt.get_recommendations(campaignArn=campaign, userId=u)["itemList"]
            }
            for u in readers
        )

    assert shown(exploring) >= len(readers) // 2
    assert shown(exploiting) == 0


def test_metadata_columns(
    pz: Any,
    rt: Any,
    shop: DemoData,
    group: str,
    unique: Callable[[str], str],
    deployed: Callable[..., str],
) -> None:
    version = _train(pz, group, "aws-user-personalization", unique("meta"))
    arn = version["solutionVersionArn"]
    plain = deployed(unique("meta-off"), arn)
    rich = deployed(unique("meta-on"), arn, {"enableMetadataWithRecommendations": True})
    user = next(iter(shop.user_taste))
    columns = {"ITEMS": ["CATEGORY_L1", "price"]}
    with pytest.raises(rt.exceptions.InvalidInputException) as info:
        rt.get_recommendations(campaignArn=plain, userId=user, metadataColumns=columns)
    assert "enableMetadataWithRecommendations" in str(info.value)
    items = rt.get_recommendations(
        campaignArn=rich, userId=user, metadataColumns=columns, numResults=50
    )["itemList"]
    assert len(items) == 50
    for item in items:
        assert item["metadata"]["CATEGORY_L1"] == shop.item_category.get(item["itemId"], "books")
        assert float(item["metadata"]["price"]) > 0
    with pytest.raises(rt.exceptions.InvalidInputException) as info:
        rt.get_recommendations(
            campaignArn=rich, userId=user, metadataColumns=columns, numResults=51
        )
    assert "50" in str(info.value)
    with pytest.raises(rt.exceptions.InvalidInputException) as info:
        rt.get_recommendations(campaignArn=rich, userId=user, metadataColumns={"ITEMS": ["NOPE"]})
    assert "NOPE" in str(info.value)


def test_put_users_metadata_is_used_at_once(
    pz: Any,
    rt: Any,
    server: Any,
    group: str,
    tracker: str,
    unique: Callable[[str], str],
    deployed: Callable[..., str],
) -> None:
    version = _train(pz, group, "aws-user-personalization", unique("putusers"))
    campaign = deployed(unique("putusers"), version["solutionVersionArn"])
    events = server.client("personalize-events")

    def recs() -> list[str]:
        items = rt.get_recommendations(campaignArn=campaign, userId="brand-new-user")["itemList"]
        return [i["itemId"] for i in items]

    lists = {}
    for age in ("18-24", "65+"):
        events.put_users(
            datasetArn=_users_dataset(pz, group),
            users=[
                {
                    "userId": "brand-new-user",
                    "properties": json.dumps({"ageGroup": age, "membership": "free"}),
                }
            ],
        )
        lists[age] = recs()  # no wait: the 200 means it is committed and used
    # The user's metadata moves the list, and the newest PutUsers wins.
    assert lists["18-24"] != lists["65+"]
    assert recs() == lists["65+"]


def _users_dataset(pz: Any, group: str) -> str:
    found = pz.list_datasets(datasetGroupArn=group)["datasets"]
    return next(d["datasetArn"] for d in found if d["datasetType"].upper() == "USERS")


def _dataset(pz: Any, group: str, kind: str) -> str:
    found = pz.list_datasets(datasetGroupArn=group)["datasets"]
    return next(d["datasetArn"] for d in found if d["datasetType"].upper() == kind)


def test_put_items_new_items_are_recommendable_at_once(
    pz: Any,
    rt: Any,
    server: Any,
    shop: DemoData,
    group: str,
    tracker: str,
    unique: Callable[[str], str],
    deployed: Callable[..., str],
) -> None:
    up = _train(pz, group, "aws-user-personalization", unique("putitems"))
    exploring = deployed(
        unique("putitems-up"), up["solutionVersionArn"],
        {"itemExplorationConfig": {"explorationWeight": "1", "explorationItemAgeCutOff": "5"}},
    )  # fmt: skip
    sims = _train(pz, group, "aws-sims", unique("putitems-sims"))
    related = deployed(unique("putitems-sims"), sims["solutionVersionArn"])
    readers = [u for u, t in shop.user_taste.items() if t[0] == "books"][:10]
    live = "P-LIVE-0001"

    def shown() -> int:
        lists = [
            rt.get_recommendations(campaignArn=exploring, userId=u)["itemList"] for u in readers
        ]
        return sum(live in {i["itemId"] for i in items} for items in lists)

    assert shown() == 0  # not in the catalogue yet
    server.client("personalize-events").put_items(
        datasetArn=_dataset(pz, group, "ITEMS"),
        items=[{"itemId": live, "properties": json.dumps({
            "categoryL1": "books", "categoryL2": "fiction", "price": 9.5,
            "creationTimestamp": 1_900_000_000, "productName": "A novel sent by PutItems",
        })}],
    )  # fmt: skip
    time.sleep(1.2)  # campaigns re-read their catalogue at most once a second
    assert shown() >= len(readers) // 2
    # SIMS never saw it, yet its related items are its metadata neighbours at once.
    similar = rt.get_recommendations(campaignArn=related, itemId=live, numResults=10)["itemList"]
    assert len(similar) == 10
    category = {**shop.item_category, NEW_ITEM: "books"}
    assert all(category[i["itemId"]] == "books" for i in similar), similar


def test_update_brings_streamed_items_into_the_model(
    pz: Any,
    rt: Any,
    server: Any,
    shop: DemoData,
    group: str,
    tracker: str,
    unique: Callable[[str], str],
    deployed: Callable[..., str],
) -> None:
    full = _train(pz, group, "aws-user-personalization", unique("update"))
    solution = full["solutionArn"]
    sims = pz.create_solution(
        name=unique("update-sims"), datasetGroupArn=group,
        recipeArn="arn:aws:personalize:::recipe/aws-sims",
    )["solutionArn"]  # fmt: skip
    with pytest.raises(pz.exceptions.InvalidInputException, match="UPDATE"):
        pz.create_solution_version(solutionArn=sims, trainingMode="UPDATE")
    pz.delete_solution(solutionArn=sims)
    readers = [u for u, t in shop.user_taste.items() if t[0] == "books"]
    others = [u for u, t in shop.user_taste.items() if "books" not in t]
    streamed = "P-STREAM-0001"
    events = server.client("personalize-events")
    for user in readers[:40]:
        events.put_events(
            trackingId=tracker, userId=user, sessionId=f"s-{user}",
            eventList=[{"eventType": "purchase", "itemId": streamed, "sentAt": 1_900_000_000}],
        )  # fmt: skip
    version = pz.create_solution_version(solutionArn=solution, trainingMode="UPDATE")
    updated = wait_status(
        lambda: pz.describe_solution_version(
            solutionVersionArn=version["solutionVersionArn"])["solutionVersion"],
    )  # fmt: skip
    assert updated["status"] == "ACTIVE", updated.get("failureReason")
    assert updated["trainingMode"] == "UPDATE"
    metrics = [
        pz.get_solution_metrics(solutionVersionArn=v["solutionVersionArn"])["metrics"]
        for v in (full, updated)
    ]
    assert metrics[0] == metrics[1]  # an update reports the version it continues
    campaign = deployed(unique("update"), updated["solutionVersionArn"],
                        {"itemExplorationConfig": {"explorationWeight": "0"}})  # fmt: skip

    def position(user: str) -> int:
        items = rt.get_recommendations(campaignArn=campaign, userId=user, numResults=500)
        ids = [i["itemId"] for i in items["itemList"]]
        return ids.index(streamed)

    # The model learnt the streamed item from who took it up: readers get it far higher.
    reader_pos = np.mean([position(u) for u in readers[40:60]])
    other_pos = np.mean([position(u) for u in others[:20]])
    assert reader_pos < other_pos / 2, (reader_pos, other_pos)

"""Filters and promotions through boto3 against a real server, on generated shop data.

Every assertion reads the Items CSV the campaign was trained on, so a filter that lets a
wrong item through (or drops a right one) fails here.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import polars as pl
import pytest
from botocore.exceptions import ClientError

from pertinent.demo.generate import DemoData, generate
from pertinent.testing import (
    ServerProcess,
    create_dataset,
    create_group,
    deploy,
    import_data,
    train,
    wait_status,
)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> DemoData:
    return generate(tmp_path_factory.mktemp("filter-shop"), users=600, items=400, seed=5)


@pytest.fixture(scope="module")
def catalogue(shop: DemoData) -> dict[str, dict[str, Any]]:
    items = pl.read_csv(shop.items_csv)
    return {row["ITEM_ID"]: row for row in items.to_dicts()}


@pytest.fixture(scope="module")
def group(pz: Any, shop: DemoData) -> dict[str, str]:
    """A dataset group with interactions, items and users, and an event tracker."""
    arn = create_group(pz, f"filters-{uuid.uuid4().hex[:8]}")
    out = {"group": arn}
    for kind, csv, schema in (
        ("Interactions", shop.interactions_csv, shop.interactions_schema),
        ("Items", shop.items_csv, shop.items_schema),
        ("Users", shop.users_csv, shop.users_schema),
    ):
        ds = create_dataset(pz, arn, f"{arn[-8:]}-{kind}", kind, schema)
        out[kind] = ds
        assert import_data(pz, ds, f"{arn[-8:]}-{kind}", csv.as_uri())["status"] == "ACTIVE"
    tracker = pz.create_event_tracker(name=f"{arn[-8:]}-tracker", datasetGroupArn=arn)
    wait_status(
        lambda: pz.describe_event_tracker(eventTrackerArn=tracker["eventTrackerArn"])[
            "eventTracker"
        ]
    )
    out["trackingId"] = tracker["trackingId"]
    return out


def _campaign(
    pz: Any, group: dict[str, str], recipe: str, config: dict[str, Any] | None = None
) -> str:
    name = f"{recipe}-{uuid.uuid4().hex[:6]}"
    version = train(pz, group["group"], name, recipe, config)
    assert version["status"] == "ACTIVE", version
    return deploy(pz, name, version["solutionVersionArn"])


@pytest.fixture(scope="module")
def popular(pz: Any, group: dict[str, str]) -> str:
    return _campaign(pz, group, "aws-popularity-count")


@pytest.fixture(scope="module")
def sims(pz: Any, group: dict[str, str]) -> str:
    return _campaign(pz, group, "aws-sims")


@pytest.fixture(scope="module")
def ranking(pz: Any, group: dict[str, str]) -> str:
    config = {"algorithmHyperParameters": {"hidden_dimension": "32", "bptt": "16"}}
    return _campaign(pz, group, "aws-personalized-ranking", config)


def _filter(pz: Any, group: dict[str, str], expression: str) -> str:
    arn: str = pz.create_filter(
        name=f"f-{uuid.uuid4().hex[:10]}",
        datasetGroupArn=group["group"],
        filterExpression=expression,
    )["filterArn"]
    found = wait_status(lambda: pz.describe_filter(filterArn=arn)["filter"])
    assert found["status"] == "ACTIVE", found
    return arn


def _ids(rt: Any, campaign: str, **kwargs: Any) -> list[str]:
    return [i["itemId"] for i in rt.get_recommendations(campaignArn=campaign, **kwargs)["itemList"]]


def _error(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


def test_filter_lifecycle(pz: Any, group: dict[str, str]) -> None:
    expression = 'EXCLUDE ItemID WHERE Items.CATEGORY_L1 IN ("books")'
    arn = _filter(pz, group, expression)
    found = pz.describe_filter(filterArn=arn)["filter"]
    assert found["filterExpression"] == expression
    assert found["datasetGroupArn"] == group["group"]
    listed = pz.list_filters(datasetGroupArn=group["group"])["Filters"]
    assert arn in {f["filterArn"] for f in listed}
    assert _error(pz.create_filter, name=found["name"], datasetGroupArn=group["group"],
                  filterExpression=expression)[0] == "ResourceAlreadyExistsException"  # fmt: skip
    pz.delete_filter(filterArn=arn)
    wait_status(lambda: _described(pz, arn), done=("GONE",))


def _described(pz: Any, arn: str) -> dict[str, Any]:
    # One call: checking existence first raced the deletion finishing in between.
    try:
        found: dict[str, Any] = pz.describe_filter(filterArn=arn)["filter"]
    except ClientError:
        return {"status": "GONE"}
    return found


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ('EXCLUDE ItemID WHERE Items.CATEGORY_L1 IN "books"', "line 1, column 43"),
        ('INCLUDE ItemID WHERE Items.COLOUR IN ("red")', "Items.COLOUR is not a field"),
        ('INCLUDE ItemID WHERE Items.PRODUCT_NAME IN ("red")', "textual"),
        ("INCLUDE ItemID WHERE Items.CATEGORY_L1 < 3", "needs a numeric field"),
        (
            'INCLUDE ItemID WHERE Items.CATEGORY_L1 IN ("a") AND Interactions.EVENT_TYPE IN ("x")',
            "same dataset",
        ),
        ('INCLUDE ItemID WHERE Items.CATEGORY_L1 IN ("*")', '"*" can only be used'),
        ('INCLUDE ItemID WHERE CurrentUser.AGE_GROUP IN ("a")', "Use it after IF"),
        ("INCLUDE ItemID WHERE Actions.VALUE > 3", "ItemID filter can use Items or Interactions"),
    ],
)
def test_invalid_expressions_are_refused_with_the_reason(
    pz: Any, group: dict[str, str], expression: str, fragment: str
) -> None:
    code, message = _error(
        pz.create_filter, name=f"bad-{uuid.uuid4().hex[:8]}", datasetGroupArn=group["group"],
        filterExpression=expression,
    )  # fmt: skip
    assert code == "InvalidInputException"
    assert fragment in message, message


def test_genre_exclude(rt: Any, pz: Any, group: dict[str, str], popular: str,
                       catalogue: dict[str, dict[str, Any]]) -> None:  # fmt: skip
    arn = _filter(pz, group, 'EXCLUDE ItemID WHERE Items.CATEGORY_L1 IN ("electronics")')
    plain = _ids(rt, popular, numResults=100)
    assert any(catalogue[i]["CATEGORY_L1"] == "electronics" for i in plain)
    got = _ids(rt, popular, numResults=100, filterArn=arn)
    assert len(got) == 100
    assert all(catalogue[i]["CATEGORY_L1"] != "electronics" for i in got)
    # The survivors keep their order.
    assert got == [i for i in _ids(rt, popular, numResults=400) if i in set(got)][:100]


@pytest.mark.parametrize("values", [["electronics"], ["electronics", "books"]])
@pytest.mark.parametrize("action", ["INCLUDE", "EXCLUDE"])
def test_placeholders_with_one_and_two_values(
    rt: Any, pz: Any, group: dict[str, str], popular: str,
    catalogue: dict[str, dict[str, Any]], action: str, values: list[str],
) -> None:  # fmt: skip
    arn = _filter(pz, group, f"{action} ItemID WHERE Items.CATEGORY_L1 IN ($CATS)")
    encoded = ",".join(f'"{v}"' for v in values)
    got = _ids(rt, popular, numResults=50, filterArn=arn, filterValues={"CATS": encoded})
    assert got
    inside = [catalogue[i]["CATEGORY_L1"] in values for i in got]
    assert all(inside) if action == "INCLUDE" else not any(inside)
    if action == "EXCLUDE":
        # No value: the EXCLUDE condition is dropped, the list is unfiltered.
        assert _ids(rt, popular, numResults=50, filterArn=arn) == _ids(rt, popular, numResults=50)
    else:
        code, message = _error(rt.get_recommendations, campaignArn=popular, filterArn=arn)
        assert code == "InvalidInputException" and "$CATS" in message


def test_timestamp_cut_off(rt: Any, pz: Any, group: dict[str, str], popular: str,
                           catalogue: dict[str, dict[str, Any]]) -> None:  # fmt: skip
    stamps = sorted(row["CREATION_TIMESTAMP"] for row in catalogue.values())
    cut = stamps[len(stamps) // 2]
    arn = _filter(pz, group, "INCLUDE ItemID WHERE Items.CREATION_TIMESTAMP > $DATE")
    for encoded in (str(cut), f'"{cut}"'):  # numbers come bare or quoted
        got = _ids(rt, popular, numResults=60, filterArn=arn, filterValues={"DATE": encoded})
        assert len(got) == 60
        assert all(catalogue[i]["CREATION_TIMESTAMP"] > cut for i in got)
    price = _filter(pz, group, "INCLUDE ItemID WHERE Items.PRICE <= 20 AND Items.PRICE > 5")
    got = _ids(rt, popular, numResults=30, filterArn=price)
    assert got and all(5 < catalogue[i]["PRICE"] <= 20 for i in got)


def test_filter_that_removes_everything_gives_an_empty_list(
    rt: Any, pz: Any, group: dict[str, str], popular: str
) -> None:
    arn = _filter(pz, group, 'INCLUDE ItemID WHERE Items.CATEGORY_L1 IN ("no-such-category")')
    assert _ids(rt, popular, filterArn=arn) == []


def test_exclude_purchased_right_after_put_events(
    server: ServerProcess, rt: Any, pz: Any, group: dict[str, str], popular: str, ranking: str
) -> None:
    arn = _filter(pz, group, 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")')
    user = f"buyer-{uuid.uuid4().hex[:8]}"
    before = _ids(rt, popular, userId=user, numResults=10, filterArn=arn)
    bought = before[:3]
    events = server.client("personalize-events")
    events.put_events(
        trackingId=group["trackingId"], userId=user, sessionId="s",
        eventList=[{"eventType": "Purchase", "itemId": i, "sentAt": time.time()} for i in bought],
    )  # fmt: skip
    after = _ids(rt, popular, userId=user, numResults=10, filterArn=arn)
    assert not set(bought) & set(after)
    assert after[: len(before) - 3] == before[3:]
    # The same filter on a ranking campaign drops the purchased items from the list.
    ranked = rt.get_personalized_ranking(
        campaignArn=ranking, userId=user, inputList=before, filterArn=arn
    )["personalizedRanking"]
    assert {i["itemId"] for i in ranked} == set(before) - set(bought)
    # A filter reading interactions needs a user.
    code, message = _error(rt.get_recommendations, campaignArn=popular, filterArn=arn)
    assert code == "InvalidInputException" and "userId" in message


def test_trained_interactions_are_excluded(
    rt: Any, pz: Any, group: dict[str, str], popular: str, shop: DemoData
) -> None:
    interactions = pl.read_csv(shop.interactions_csv)
    views = interactions.filter(pl.col("EVENT_TYPE") == "View")
    user = views["USER_ID"].value_counts(sort=True)["USER_ID"][0]
    mine = views.filter(pl.col("USER_ID") == user).sort("TIMESTAMP")
    # Filters read the 100 newest interactions per event type (spec §10.3).
    seen = set(mine.tail(100)["ITEM_ID"].to_list())
    arn = _filter(pz, group, 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("VIEW")')
    got = _ids(rt, popular, userId=str(user), numResults=100, filterArn=arn)
    assert len(got) == 100 and not seen & set(got)
    everything = _filter(pz, group, 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")')
    by_type = interactions.filter(pl.col("USER_ID") == user).sort("TIMESTAMP")
    touched = set(by_type.group_by("EVENT_TYPE").tail(100)["ITEM_ID"].to_list())
    assert not touched & set(
        _ids(rt, popular, userId=str(user), numResults=100, filterArn=everything)
    )


def test_sims_with_current_item(rt: Any, pz: Any, group: dict[str, str], sims: str,
                                catalogue: dict[str, dict[str, Any]]) -> None:  # fmt: skip
    arn = _filter(
        pz, group,
        "INCLUDE ItemID WHERE Items.CATEGORY_L1 IN CurrentItem.CATEGORY_L1 "
        "AND Items.PRICE < CurrentItem.PRICE",
    )  # fmt: skip
    seed = max(catalogue, key=lambda i: catalogue[i]["PRICE"])
    got = _ids(rt, sims, itemId=seed, numResults=20, filterArn=arn)
    assert got
    for item in got:
        assert catalogue[item]["CATEGORY_L1"] == catalogue[seed]["CATEGORY_L1"]
        assert catalogue[item]["PRICE"] < catalogue[seed]["PRICE"]


def test_current_item_needs_a_related_items_campaign(
    rt: Any, pz: Any, group: dict[str, str], popular: str
) -> None:
    arn = _filter(pz, group, "INCLUDE ItemID WHERE Items.PRICE < CurrentItem.PRICE")
    code, message = _error(rt.get_recommendations, campaignArn=popular, filterArn=arn)
    assert code == "InvalidInputException" and "CurrentItem" in message


def test_if_current_user(rt: Any, pz: Any, group: dict[str, str], popular: str, shop: DemoData,
                         catalogue: dict[str, dict[str, Any]]) -> None:  # fmt: skip
    users = pl.read_csv(shop.users_csv)
    member = users.filter(pl.col("MEMBERSHIP") == users["MEMBERSHIP"][0])["USER_ID"][0]
    other = users.filter(pl.col("MEMBERSHIP") != users["MEMBERSHIP"][0])["USER_ID"][0]
    arn = _filter(
        pz, group,
        'EXCLUDE ItemID WHERE Items.CATEGORY_L1 IN ("electronics") '
        "IF CurrentUser.MEMBERSHIP IN ($M)",
    )  # fmt: skip
    values = {"M": f'"{users["MEMBERSHIP"][0]}"'}
    kept = _ids(rt, popular, userId=str(member), numResults=100, filterArn=arn, filterValues=values)
    assert all(catalogue[i]["CATEGORY_L1"] != "electronics" for i in kept)
    untouched = _ids(rt, popular, userId=str(other), numResults=100, filterArn=arn,
                     filterValues=values)  # fmt: skip
    assert untouched == _ids(rt, popular, numResults=100)


def test_promotions_take_their_share_of_slots(
    rt: Any, pz: Any, group: dict[str, str], popular: str, catalogue: dict[str, dict[str, Any]]
) -> None:
    books = _filter(pz, group, 'INCLUDE ItemID WHERE Items.CATEGORY_L1 IN ("books")')
    no_books = _filter(pz, group, 'EXCLUDE ItemID WHERE Items.CATEGORY_L1 IN ("books")')
    got = rt.get_recommendations(
        campaignArn=popular, numResults=20, filterArn=no_books,
        promotions=[{"name": "read-more", "percentPromotedItems": 25, "filterArn": books}],
    )["itemList"]  # fmt: skip
    promoted = [i for i in got if i.get("promotionName") == "read-more"]
    organic = [i for i in got if "promotionName" not in i]
    assert len(got) == 20 and len(promoted) == 5
    assert all(catalogue[i["itemId"]]["CATEGORY_L1"] == "books" for i in promoted)
    assert all(catalogue[i["itemId"]]["CATEGORY_L1"] != "books" for i in organic)
    assert len({i["itemId"] for i in got}) == 20
    # Promoted items keep their own (popularity) order.
    top_books = _ids(rt, popular, numResults=5, filterArn=books)
    assert [i["itemId"] for i in promoted] == top_books
    code, _ = _error(
        rt.get_recommendations, campaignArn=popular,
        promotions=[{"name": "x", "percentPromotedItems": 10}] * 2,
    )  # fmt: skip
    assert code == "InvalidInputException"


def test_v2_promoted_items_say_why(
    rt: Any, pz: Any, shop: DemoData, group: dict[str, str], catalogue: dict[str, dict[str, Any]]
) -> None:
    v2 = _campaign(pz, group, "aws-user-personalization-v2")
    books = _filter(pz, group, 'INCLUDE ItemID WHERE Items.CATEGORY_L1 IN ("books")')
    user = next(iter(shop.user_taste))
    got = rt.get_recommendations(
        campaignArn=v2, userId=user, numResults=10,
        promotions=[{"name": "read-more", "percentPromotedItems": 30, "filterArn": books}],
    )["itemList"]  # fmt: skip
    promoted = [i for i in got if i.get("promotionName") == "read-more"]
    assert len(promoted) == 3
    assert all(i["reason"] == ["Promoted item"] for i in promoted)
    assert all("reason" not in i for i in got if "promotionName" not in i)
    assert all(catalogue[i["itemId"]]["CATEGORY_L1"] == "books" for i in promoted)
    pz.delete_campaign(campaignArn=v2)  # the group's quota is 5 campaigns


def test_put_items_changes_are_filtered_at_once(
    server: ServerProcess, rt: Any, pz: Any, group: dict[str, str], popular: str,
    catalogue: dict[str, dict[str, Any]],
) -> None:  # fmt: skip
    arn = _filter(pz, group, 'EXCLUDE ItemID WHERE Items.CATEGORY_L1 IN ("discontinued")')
    top = _ids(rt, popular, numResults=5, filterArn=arn)
    row = {k: v for k, v in catalogue[top[0]].items() if k != "ITEM_ID"}
    row = {"categoryL1": "discontinued", **{k: v for k, v in row.items() if k != "CATEGORY_L1"}}
    events = server.client("personalize-events")
    events.put_items(
        datasetArn=group["Items"],
        items=[{"itemId": top[0], "properties": json.dumps(row)}],
    )
    # The campaign re-reads its state within a second.
    deadline = time.time() + 5
    while top[0] in _ids(rt, popular, numResults=5, filterArn=arn) and time.time() < deadline:
        time.sleep(0.2)
    assert top[0] not in _ids(rt, popular, numResults=5, filterArn=arn)
    assert top[0] in _ids(rt, popular, numResults=5)


def test_filter_of_another_group_and_unknown_filter(rt: Any, pz: Any, popular: str) -> None:
    other = create_group(pz, f"other-{uuid.uuid4().hex[:8]}")
    unknown = other.replace("dataset-group", "filter")
    code, _ = _error(rt.get_recommendations, campaignArn=popular, filterArn=unknown)
    assert code == "ResourceNotFoundException"


def _mean_price(
    rt: Any, campaign: str, users: list[str], catalogue: dict[str, dict[str, Any]]
) -> float:
    prices = [
        catalogue[i]["PRICE"] for u in users for i in _ids(rt, campaign, userId=u, numResults=10)
    ]
    return sum(prices) / len(prices)


def test_objective_optimisation_moves_the_mean_attribute(
    rt: Any, pz: Any, group: dict[str, str], shop: DemoData,
    catalogue: dict[str, dict[str, Any]],
) -> None:  # fmt: skip
    config = {"algorithmHyperParameters": {"hidden_dimension": "32", "bptt": "16"}}
    plain = _campaign(pz, group, "aws-user-personalization", config)
    objective = {"itemAttribute": "PRICE", "objectiveSensitivity": "HIGH"}
    name = f"objective-{uuid.uuid4().hex[:6]}"
    version = train(
        pz, group["group"], name, "aws-user-personalization",
        {**config, "optimizationObjective": objective},
    )  # fmt: skip
    assert version["status"] == "ACTIVE", version
    metrics = pz.get_solution_metrics(solutionVersionArn=version["solutionVersionArn"])["metrics"]
    assert 0.0 < metrics["average_rewards_at_k"] <= 1.0
    optimised = deploy(pz, name, version["solutionVersionArn"])
    users = sorted(shop.user_taste)[:40]
    before = _mean_price(rt, plain, users, catalogue)
    after = _mean_price(rt, optimised, users, catalogue)
    assert after > 1.2 * before, (before, after)
    print(f"mean PRICE of the top 10: {before:.1f} plain, {after:.1f} with HIGH")
    # Campaigns count against the group's quota of 5.
    for arn in (plain, optimised):
        pz.delete_campaign(campaignArn=arn)


def test_objective_is_checked(pz: Any, group: dict[str, str]) -> None:
    code, message = _error(
        pz.create_solution, name=f"bad-{uuid.uuid4().hex[:6]}", datasetGroupArn=group["group"],
        recipeArn="arn:aws:personalize:::recipe/aws-sims",
        solutionConfig={"optimizationObjective": {"itemAttribute": "PRICE"}},
    )  # fmt: skip
    assert code == "InvalidInputException" and "aws-sims" in message
    version = train(
        pz, group["group"], f"obj-{uuid.uuid4().hex[:6]}", "aws-user-personalization",
        {"optimizationObjective": {"itemAttribute": "CATEGORY_L1", "objectiveSensitivity": "LOW"}},
    )  # fmt: skip
    assert version["status"] == "CREATE FAILED"
    assert "must be numeric" in version["failureReason"]

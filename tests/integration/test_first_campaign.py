"""The "Building your first campaign" notebook flow, end to end, through stock boto3."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
from tests.conftest import DATASETS

METRIC_KEYS = {
    "coverage",
    "mean_reciprocal_rank_at_25",
    "normalized_discounted_cumulative_gain_at_5",
    "normalized_discounted_cumulative_gain_at_10",
    "normalized_discounted_cumulative_gain_at_25",
    "precision_at_5",
    "precision_at_10",
    "precision_at_25",
}
ML100K = DATASETS / "movielens-100k"
GENRES = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]
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


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> DemoData:
    return generate(tmp_path_factory.mktemp("shop"), users=1500, items=400, seed=3)


@pytest.fixture(scope="module")
def shop_group(pz: Any, shop: DemoData) -> dict[str, str]:
    """A dataset group with the shop's three datasets imported."""
    group = create_group(pz, "first-campaign-shop")
    out = {"group": group}
    for kind, schema, csv in (
        ("Interactions", shop.interactions_schema, shop.interactions_csv),
        ("Items", shop.items_schema, shop.items_csv),
        ("Users", shop.users_schema, shop.users_csv),
    ):
        ds = create_dataset(pz, group, f"shop-{kind.lower()}", kind, schema)
        job = import_data(pz, ds, f"shop-import-{kind.lower()}", csv.as_uri())
        assert job["status"] == "ACTIVE", job
        out[kind] = ds
    return out


def test_popularity_and_sims_campaigns(
    pz: Any, rt: Any, shop: DemoData, shop_group: dict[str, str]
) -> None:
    group = shop_group["group"]
    pop = train(pz, group, "shop-popularity", "aws-popularity-count")
    assert pop["status"] == "ACTIVE", pop
    assert pop["trainingMode"] == "FULL" and pop["trainingHours"] >= 0
    metrics = pz.get_solution_metrics(solutionVersionArn=pop["solutionVersionArn"])["metrics"]
    assert set(metrics) == METRIC_KEYS
    assert all(0.0 <= v <= 1.0 for v in metrics.values())

    sims = train(pz, group, "shop-sims", "aws-sims")
    assert sims["status"] == "ACTIVE", sims
    sims_metrics = pz.get_solution_metrics(solutionVersionArn=sims["solutionVersionArn"])["metrics"]
    # Co-occurrence knows more than a global top list on data with taste structure.
    assert sims_metrics["coverage"] > metrics["coverage"]
    assert (
        sims_metrics["normalized_discounted_cumulative_gain_at_10"]
        > metrics["normalized_discounted_cumulative_gain_at_10"]
    )

    pop_campaign = deploy(pz, "shop-popularity", pop["solutionVersionArn"])
    sims_campaign = deploy(pz, "shop-sims", sims["solutionVersionArn"])

    top = rt.get_recommendations(campaignArn=pop_campaign, userId="U0001")
    assert len(top["itemList"]) == 25
    assert top["recommendationId"] and len(top["recommendationId"]) <= 40
    assert all("score" not in item for item in top["itemList"])
    counts = Counter(pl.read_csv(shop.interactions_csv, columns=["ITEM_ID"])["ITEM_ID"].to_list())
    assert top["itemList"][0]["itemId"] in {i for i, _ in counts.most_common(5)}
    # Unknown users get the same popular items, as Personalize does.
    stranger = rt.get_recommendations(campaignArn=pop_campaign, userId="nobody", numResults=5)
    assert [i["itemId"] for i in stranger["itemList"]] == [i["itemId"] for i in top["itemList"][:5]]

    seed = counts.most_common(20)[-1][0]
    related = rt.get_recommendations(campaignArn=sims_campaign, itemId=seed, numResults=10)
    ids = [i["itemId"] for i in related["itemList"]]
    assert len(ids) == 10 and len(set(ids)) == 10 and seed not in ids
    same = sum(shop.item_category[i] == shop.item_category[seed] for i in ids)
    assert same >= 7, (seed, [shop.item_category[i] for i in ids])
    big = rt.get_recommendations(campaignArn=sims_campaign, itemId=seed, numResults=500)
    assert len(big["itemList"]) == 399  # the whole catalogue except the seed itself
    missing = rt.get_recommendations(campaignArn=sims_campaign, itemId="no-such-item")
    assert len(missing["itemList"]) == 25

    with pytest.raises(rt.exceptions.InvalidInputException) as info:
        rt.get_recommendations(campaignArn=sims_campaign, userId="U0001")
    assert "itemId is required" in str(info.value)

    # The campaign pins its version: deleting the solution is refused while it serves.
    with pytest.raises(pz.exceptions.ResourceInUseException):
        pz.delete_solution(solutionArn=sims["solutionArn"])
    listed = pz.list_campaigns(solutionArn=sims["solutionArn"])["campaigns"]
    assert [c["campaignArn"] for c in listed] == [sims_campaign]


def test_metrics_are_reproducible(pz: Any, shop_group: dict[str, str]) -> None:
    group = shop_group["group"]
    runs = [train(pz, group, f"shop-repro-{i}", "aws-sims") for i in range(2)]
    metrics = [
        pz.get_solution_metrics(solutionVersionArn=r["solutionVersionArn"])["metrics"] for r in runs
    ]
    assert metrics[0] == metrics[1]


def test_too_little_data_fails_with_a_reason(
    pz: Any, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    group = create_group(pz, unique("tiny"))
    ds = create_dataset(pz, group, unique("tiny"), "Interactions", INTERACTIONS_SCHEMA)
    # 1000 rows from only 10 users: enough rows to import, too few users to train.
    rows = [f"u{i % 10},i{i % 50},{1_700_000_000 + i}" for i in range(1000)]
    csv = tmp_path / "tiny.csv"
    csv.write_text("USER_ID,ITEM_ID,TIMESTAMP\n" + "\n".join(rows) + "\n")
    assert import_data(pz, ds, unique("tiny"), str(csv))["status"] == "ACTIVE"
    version = train(pz, group, unique("tiny"), "aws-sims")
    assert version["status"] == "CREATE FAILED"
    assert "25 users" in version["failureReason"]
    with pytest.raises(pz.exceptions.ResourceInUseException):
        pz.get_solution_metrics(solutionVersionArn=version["solutionVersionArn"])


@pytest.mark.skipif(not ML100K.exists(), reason=f"MovieLens-100K is not at {ML100K}")
def test_movielens_sims_is_genre_coherent(
    pz: Any, rt: Any, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    ratings = pl.read_csv(
        ML100K / "u.data",
        separator="\t",
        has_header=False,
        new_columns=["USER_ID", "ITEM_ID", "RATING", "TIMESTAMP"],
    )
    csv = tmp_path / "ml100k.csv"
    ratings.select("USER_ID", "ITEM_ID", "TIMESTAMP").write_csv(csv)
    movies = pl.read_csv(
        ML100K / "u.item",
        separator="|",
        has_header=False,
        encoding="latin1",
        new_columns=["ITEM_ID", "TITLE", "RELEASE", "VIDEO", "URL", *GENRES],
    )
    genres = {
        str(row["ITEM_ID"]): {g for g in GENRES if row[g] == 1}
        for row in movies.iter_rows(named=True)
    }

    group = create_group(pz, unique("ml100k"))
    ds = create_dataset(pz, group, unique("ml100k"), "Interactions", INTERACTIONS_SCHEMA)
    assert import_data(pz, ds, unique("ml100k"), csv.as_uri())["status"] == "ACTIVE"
    sims = train(pz, group, unique("ml100k-sims"), "aws-sims")
    pop = train(pz, group, unique("ml100k-pop"), "aws-popularity-count")
    assert sims["status"] == pop["status"] == "ACTIVE"
    sims_campaign = deploy(pz, unique("ml100k-sims"), sims["solutionVersionArn"])
    pop_campaign = deploy(pz, unique("ml100k-pop"), pop["solutionVersionArn"])

    def share(campaign: str, seed: str) -> float:
        items = rt.get_recommendations(campaignArn=campaign, itemId=seed, numResults=10)
        ids = [i["itemId"] for i in items["itemList"]]
        return sum(bool(genres[i] & genres[seed]) for i in ids) / len(ids)

    # Toy Story, Star Wars, Scream, Pulp Fiction, Sleepless in Seattle, Aliens, Fargo,
    # The Lion King, Batman, Alien.
    seeds = ["1", "50", "288", "56", "88", "176", "100", "71", "403", "183"]
    related = sum(share(sims_campaign, s) for s in seeds) / len(seeds)
    baseline = sum(share(pop_campaign, s) for s in seeds) / len(seeds)
    # Measured 0.69 against 0.47 for the popular list: MovieLens genres are coarse, and
    # co-watched films cross them (Pulp Fiction's neighbours are action films).
    assert related >= 0.6, related
    assert related > baseline + 0.15, (related, baseline)
    star_wars = rt.get_recommendations(campaignArn=sims_campaign, itemId="50", numResults=10)
    titles = dict(zip(movies["ITEM_ID"].cast(pl.String), movies["TITLE"], strict=True))
    named = [titles[i["itemId"]] for i in star_wars["itemList"]]
    assert any("Star Trek" in t or "Indiana Jones" in t or "Star Wars" in t for t in named), named


def test_update_and_delete_campaign(
    pz: Any, rt: Any, shop_group: dict[str, str], unique: Callable[[str], str]
) -> None:
    group = shop_group["group"]
    first = train(pz, group, unique("upd"), "aws-sims")
    campaign = deploy(pz, unique("upd"), first["solutionVersionArn"])
    second = pz.create_solution_version(solutionArn=first["solutionArn"])["solutionVersionArn"]
    with pytest.raises(pz.exceptions.ResourceInUseException):
        pz.update_campaign(campaignArn=campaign, solutionVersionArn=second)  # not ACTIVE yet
    wait_status(lambda: pz.describe_solution_version(solutionVersionArn=second)["solutionVersion"])
    pz.update_campaign(campaignArn=campaign, solutionVersionArn=second, minProvisionedTPS=2)
    updated = wait_status(
        lambda: pz.describe_campaign(campaignArn=campaign)["campaign"]["latestCampaignUpdate"]
    )
    assert updated["status"] == "ACTIVE"
    described = pz.describe_campaign(campaignArn=campaign)["campaign"]
    assert described["solutionVersionArn"] == second and described["minProvisionedTPS"] == 2
    assert rt.get_recommendations(campaignArn=campaign, itemId="P0001")["itemList"]
    versions = pz.list_solution_versions(solutionArn=first["solutionArn"])["solutionVersions"]
    assert {v["solutionVersionArn"] for v in versions} == {first["solutionVersionArn"], second}

    pz.delete_campaign(campaignArn=campaign)
    with pytest.raises(pz.exceptions.ResourceNotFoundException):
        wait_status(lambda: pz.describe_campaign(campaignArn=campaign)["campaign"], (), 30)
    pz.delete_solution(solutionArn=first["solutionArn"])
    with pytest.raises(pz.exceptions.ResourceNotFoundException):
        wait_status(
            lambda: pz.describe_solution(solutionArn=first["solutionArn"])["solution"], (), 30
        )
    with pytest.raises(pz.exceptions.ResourceNotFoundException):
        pz.describe_solution_version(solutionVersionArn=second)


def test_stop_solution_version_creation(
    pz: Any, shop_group: dict[str, str], unique: Callable[[str], str]
) -> None:
    solution = pz.create_solution(
        name=unique("stop"),
        datasetGroupArn=shop_group["group"],
        recipeArn="arn:aws:personalize:::recipe/aws-sims",
    )["solutionArn"]
    wait_status(lambda: pz.describe_solution(solutionArn=solution)["solution"])
    version = pz.create_solution_version(solutionArn=solution)["solutionVersionArn"]
    pz.stop_solution_version_creation(solutionVersionArn=version)
    final = wait_status(
        lambda: pz.describe_solution_version(solutionVersionArn=version)["solutionVersion"],
        ("ACTIVE", "CREATE FAILED", "CREATE STOPPED"),
    )
    # Small data may finish before the stop lands; otherwise it must end stopped.
    assert final["status"] in ("CREATE STOPPED", "ACTIVE")
    with pytest.raises(pz.exceptions.ResourceInUseException):
        pz.stop_solution_version_creation(solutionVersionArn=version)

"""The generated demo dataset: format, determinism, and the structure models should find."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from pertinent.demo.generate import DemoData, generate

START = 1_700_000_000
DAYS = 90
END = START + DAYS * 86_400

FIELDS = {
    "Interactions": ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"],
    "Items": [
        "ITEM_ID",
        "CATEGORY_L1",
        "CATEGORY_L2",
        "PRICE",
        "CREATION_TIMESTAMP",
        "PRODUCT_NAME",
    ],
    "Users": ["USER_ID", "AGE_GROUP", "MEMBERSHIP"],
}


def num(value: object) -> float:
    """A polars scalar (``Series.mean()`` and friends) as a float, for typed comparisons."""
    assert isinstance(value, int | float), value
    return float(value)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> DemoData:
    return generate(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def interactions(data: DemoData) -> pl.DataFrame:
    # Row order is the file order: users one after another, time ascending within a user.
    return pl.read_csv(
        data.interactions_csv, schema_overrides={"EVENT_VALUE": pl.Float64}
    ).with_row_index("row")


@pytest.fixture(scope="module")
def items(data: DemoData) -> pl.DataFrame:
    return pl.read_csv(data.items_csv)


@pytest.fixture(scope="module")
def users(data: DemoData) -> pl.DataFrame:
    return pl.read_csv(data.users_csv)


@pytest.fixture(scope="module")
def enriched(data: DemoData, interactions: pl.DataFrame, items: pl.DataFrame) -> pl.DataFrame:
    """Interactions with the item's category, subcategory, price and creation time."""
    return interactions.join(
        items.select(
            "ITEM_ID",
            pl.col("CATEGORY_L1").alias("cat"),
            pl.col("CATEGORY_L2").str.split("|").list.first().alias("sub"),
            "PRICE",
            "CREATION_TIMESTAMP",
        ),
        on="ITEM_ID",
        how="left",
    ).sort("row")


# ---- Format ----------------------------------------------------------------------------


def test_schemas_are_personalize_avro_records(data: DemoData) -> None:
    for name, text in [
        ("Interactions", data.interactions_schema),
        ("Items", data.items_schema),
        ("Users", data.users_schema),
    ]:
        schema = json.loads(text)
        assert schema["type"] == "record"
        assert schema["name"] == name
        assert schema["namespace"] == "com.amazonaws.personalize.schema"
        assert schema["version"] == "1.0"
        assert [f["name"] for f in schema["fields"]] == FIELDS[name]

    types = {f["name"]: f for f in json.loads(data.interactions_schema)["fields"]}
    assert types["TIMESTAMP"]["type"] == "long"
    assert types["EVENT_TYPE"] == {"name": "EVENT_TYPE", "type": "string"}  # not categorical
    assert types["EVENT_VALUE"]["type"] == ["null", "float"]
    types = {f["name"]: f for f in json.loads(data.items_schema)["fields"]}
    assert types["CATEGORY_L1"] == {"name": "CATEGORY_L1", "type": "string", "categorical": True}
    assert types["CATEGORY_L2"]["categorical"] is True
    assert types["PRICE"]["type"] == "float"
    assert types["CREATION_TIMESTAMP"]["type"] == "long"
    assert types["PRODUCT_NAME"] == {"name": "PRODUCT_NAME", "type": "string", "textual": True}
    types = {f["name"]: f for f in json.loads(data.users_schema)["fields"]}
    assert types["AGE_GROUP"]["categorical"] is True
    assert types["MEMBERSHIP"]["categorical"] is True


def test_csv_headers_and_row_counts_match(
    data: DemoData, interactions: pl.DataFrame, items: pl.DataFrame, users: pl.DataFrame
) -> None:
    for path, name in [
        (data.interactions_csv, "Interactions"),
        (data.items_csv, "Items"),
        (data.users_csv, "Users"),
    ]:
        assert path.parent == data.directory
        # Personalize wants an unquoted header in schema order (spec §7.2).
        assert path.read_text().splitlines()[0] == ",".join(FIELDS[name])
    assert items.height == 500
    assert users.height == 2000
    assert interactions.height == data.n_interactions
    assert items["ITEM_ID"][:2].to_list() == ["P0001", "P0002"]
    assert users["USER_ID"][:2].to_list() == ["U00001", "U00002"]
    assert items["ITEM_ID"].is_unique().all() and users["USER_ID"].is_unique().all()
    assert items.schema["PRICE"] == pl.Float64
    assert items.schema["CREATION_TIMESTAMP"] == pl.Int64
    assert interactions.schema["TIMESTAMP"] == pl.Int64


def test_product_names_with_commas_round_trip(data: DemoData, items: pl.DataFrame) -> None:
    with data.items_csv.open(newline="") as f:
        rows = list(csv.reader(f))
    assert all(len(r) == 6 for r in rows)
    names = [r[5] for r in rows[1:]]
    assert names == items["PRODUCT_NAME"].to_list()
    assert sum("," in n for n in names) == len(names)
    assert not any('"' in n or "\\" in n for n in names)  # nothing to escape either way


def test_item_metadata(data: DemoData, items: pl.DataFrame) -> None:
    assert len(data.categories) == 10
    assert set(items["CATEGORY_L1"]) == set(data.categories)
    assert data.item_category == dict(zip(items["ITEM_ID"], items["CATEGORY_L1"], strict=True))
    l2 = items.select(pl.col("CATEGORY_L1"), pl.col("CATEGORY_L2").str.split("|")).explode(
        "CATEGORY_L2"
    )
    subs = l2.group_by("CATEGORY_L1").agg(pl.col("CATEGORY_L2").n_unique())
    assert subs["CATEGORY_L2"].is_between(3, 5).all()
    # Each subcategory belongs to exactly one main category.
    assert l2.unique().group_by("CATEGORY_L2").len()["len"].max() == 1
    multi = num(items["CATEGORY_L2"].str.contains("|", literal=True).mean())
    assert 0.05 < multi < 0.3
    medians = dict(items.group_by("CATEGORY_L1").agg(pl.col("PRICE").median()).iter_rows())
    assert medians["electronics"] > 3 * medians["books"]
    assert medians["books"] > 1.5 * medians["grocery"]
    assert (items["PRICE"] > 0).all()
    created = items["CREATION_TIMESTAMP"]
    period = END - START
    assert (created < END).all()
    assert num((created < START).mean()) > 0.4  # a back catalogue
    assert (created >= START + 0.85 * period).sum() >= 20  # and cold items


def test_same_seed_same_files_other_seed_other_files(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", users=300, items=120, seed=3)
    b = generate(tmp_path / "b", users=300, items=120, seed=3)
    c = generate(tmp_path / "c", users=300, items=120, seed=4)
    for name in ("interactions.csv", "items.csv", "users.csv"):
        assert (a.directory / name).read_bytes() == (b.directory / name).read_bytes()
        assert (a.directory / name).read_bytes() != (c.directory / name).read_bytes()
    assert a.user_taste == b.user_taste and a.item_category == b.item_category


# ---- Interactions --------------------------------------------------------------------------


def test_minimum_training_data(
    data: DemoData, interactions: pl.DataFrame, users: pl.DataFrame
) -> None:
    assert data.n_interactions >= 1000
    per_user = interactions.group_by("USER_ID").len()
    assert per_user.height == users.height  # every user has history
    assert num(per_user["len"].min()) >= 3
    assert (per_user["len"] >= 2).sum() >= 25
    assert 20 < num(per_user["len"].mean()) < 30  # default mean_events_per_user = 25
    purchases = (interactions["EVENT_TYPE"] == "Purchase").sum()
    assert purchases >= 1000  # enough for a Purchase-only solution


def test_ids_events_and_values(
    interactions: pl.DataFrame, items: pl.DataFrame, users: pl.DataFrame, enriched: pl.DataFrame
) -> None:
    assert interactions["USER_ID"].is_in(users["USER_ID"].implode()).all()
    assert interactions["ITEM_ID"].is_in(items["ITEM_ID"].implode()).all()
    counts = dict(interactions.group_by("EVENT_TYPE").len().iter_rows())
    assert set(counts) == {"View", "AddToCart", "Purchase"}
    assert counts["View"] > 5 * counts["AddToCart"] > 5 * counts["Purchase"] / 2
    # EVENT_VALUE is the price on purchases and null otherwise.
    buy = enriched["EVENT_TYPE"] == "Purchase"
    assert enriched.filter(~buy)["EVENT_VALUE"].is_null().all()
    paid = enriched.filter(buy)
    assert ((paid["EVENT_VALUE"] - paid["PRICE"]).abs() < 0.006).all()


def test_timestamps(enriched: pl.DataFrame) -> None:
    ts = enriched["TIMESTAMP"]
    assert num(ts.min()) >= START
    assert num(ts.max()) < END
    # Nothing is touched before it exists.
    assert (enriched["TIMESTAMP"] >= enriched["CREATION_TIMESTAMP"]).all()
    # Increasing per user in file order.
    steps = enriched.select(pl.col("TIMESTAMP").diff().over("USER_ID").alias("step")).drop_nulls()[
        "step"
    ]
    assert (steps >= 0).all()
    # Cold items (created in the last 15 % of the period) still get some traffic.
    cold = enriched.filter(pl.col("CREATION_TIMESTAMP") >= START + 0.85 * (END - START))
    assert cold.height > 0


def test_purchases_follow_carts_and_views(interactions: pl.DataFrame) -> None:
    events = interactions.select("row", "USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE")
    for later, earlier in [("Purchase", "AddToCart"), ("AddToCart", "View")]:
        targets = events.filter(pl.col("EVENT_TYPE") == later)
        before = events.filter(pl.col("EVENT_TYPE") == earlier)
        matched = (
            targets.join(before, on=["USER_ID", "ITEM_ID"], suffix="_b")
            .filter(
                (pl.col("row_b") < pl.col("row")) & (pl.col("TIMESTAMP_b") <= pl.col("TIMESTAMP"))
            )
            .select("row")
            .unique()
        )
        assert matched.height == targets.height, f"{later} without an earlier {earlier}"


# ---- Structure -----------------------------------------------------------------------------


def test_users_stay_within_their_tastes(data: DemoData, enriched: pl.DataFrame) -> None:
    assert set(data.user_taste) == set(enriched["USER_ID"])
    sizes = [len(t) for t in data.user_taste.values()]
    assert min(sizes) == 1 and max(sizes) == 3
    assert all(
        set(t) <= set(data.categories) and len(set(t)) == len(t) for t in data.user_taste.values()
    )
    taste = pl.DataFrame(
        {"USER_ID": list(data.user_taste), "taste": list(data.user_taste.values())}
    )
    share = (
        enriched.join(taste, on="USER_ID")
        .with_columns(pl.col("taste").list.contains(pl.col("cat")).alias("in_taste"))
        .group_by("USER_ID")
        .agg(pl.col("in_taste").mean(), pl.len())
    )
    overall = (
        enriched.join(taste, on="USER_ID")
        .select(pl.col("taste").list.contains(pl.col("cat")).mean())
        .item()
    )
    assert overall >= 0.8
    # Per user, among users with a real history: nearly all are mostly in-taste.
    regular = share.filter(pl.col("len") >= 10)
    assert num((regular["in_taste"] >= 0.7).mean()) >= 0.8
    assert num(share["in_taste"].median()) >= 0.8


def test_co_interactions_concentrate_within_categories(enriched: pl.DataFrame) -> None:
    # Of all item pairs that one user touched, how many share a category, against the
    # rate two random interactions would.
    per = enriched.group_by("USER_ID", "cat").len()
    same = per.select((pl.col("len") * (pl.col("len") - 1)).sum()).item()
    totals = enriched.group_by("USER_ID").len()
    pairs = totals.select((pl.col("len") * (pl.col("len") - 1)).sum()).item()
    shares = enriched["cat"].value_counts(normalize=True)["proportion"]
    chance = float((shares**2).sum())
    assert same / pairs > 3 * chance


def test_sessions_have_sequential_signal(enriched: pl.DataFrame) -> None:
    steps = enriched.with_columns(
        pl.col("TIMESTAMP").diff().over("USER_ID").alias("gap"),
        (pl.col("cat") == pl.col("cat").shift().over("USER_ID")).alias("same_cat"),
        (pl.col("sub") == pl.col("sub").shift().over("USER_ID")).alias("same_sub"),
        (pl.col("ITEM_ID") == pl.col("ITEM_ID").shift().over("USER_ID")).alias("same_item"),
    ).filter(pl.col("gap").is_not_null() & (pl.col("EVENT_TYPE") == "View"))
    in_session = steps.filter(pl.col("gap") < 1800)
    across = steps.filter(pl.col("gap") >= 1800)
    assert in_session.height > across.height > 0
    cat_in = num(in_session["same_cat"].mean())
    cat_across = num(across["same_cat"].mean())
    sub_in = num(in_session["same_sub"].mean())
    assert cat_in >= 0.8 and cat_in > cat_across + 0.2
    sub_shares = enriched["sub"].value_counts(normalize=True)["proportion"]
    assert sub_in > 4 * float((sub_shares**2).sum())
    assert num(in_session["same_item"].mean()) < 0.15  # views do not just repeat


def test_popularity_is_long_tailed(enriched: pl.DataFrame, items: pl.DataFrame) -> None:
    counts = (
        items.select("ITEM_ID", pl.col("CATEGORY_L1").alias("cat"))
        .join(enriched.group_by("ITEM_ID").len(), on="ITEM_ID", how="left")
        .fill_null(0)
        .sort("len", descending=True)
    )
    top = num(counts.head(len(counts) // 10)["len"].sum())
    assert top / num(counts["len"].sum()) > 0.35  # top 10 % of items > 35 % of traffic


# ---- Sizes -----------------------------------------------------------------------------


def test_tiny_catalogue_still_valid(tmp_path: Path) -> None:
    data = generate(tmp_path, users=20, items=4, seed=1, mean_events_per_user=2, days=1)
    frame = pl.read_csv(data.interactions_csv, schema_overrides={"EVENT_VALUE": pl.Float64})
    assert frame.height == data.n_interactions == 60  # the 3-event floor
    assert set(frame["ITEM_ID"]) <= set(data.item_category)
    assert frame["TIMESTAMP"].is_between(START, START + 86_399).all()
    for user, taste in data.user_taste.items():
        assert 1 <= len(taste) <= 3, user
        assert set(taste) <= set(data.item_category.values())  # only non-empty categories


@pytest.mark.parametrize(
    "kwargs",
    [{"users": 0}, {"items": 0}, {"days": 0}, {"mean_events_per_user": 0.0}],
)
def test_rejects_non_positive_sizes(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        generate(tmp_path, **kwargs)


def test_large_dataset_is_fast(tmp_path: Path) -> None:
    began = time.perf_counter()
    data = generate(tmp_path, users=100_000, items=20_000, mean_events_per_user=20)
    elapsed = time.perf_counter() - began
    assert 1_800_000 < data.n_interactions < 2_200_000
    assert elapsed < 30, f"{elapsed:.1f} s for {data.n_interactions} interactions"
    assert len(data.user_taste) == 100_000 and len(data.item_category) == 20_000


def test_user_metadata_carries_signal(data: DemoData, users: pl.DataFrame) -> None:
    # Age groups skew tastes, so a model using AGE_GROUP has something to gain.
    tastes = users.with_columns(
        pl.col("USER_ID")
        .replace_strict(data.user_taste, return_dtype=pl.List(pl.String))
        .alias("taste")
    ).explode("taste")
    by_age = (
        tastes.group_by("AGE_GROUP", "taste")
        .len()
        .with_columns((pl.col("len") / pl.col("len").sum().over("AGE_GROUP")).alias("share"))
    )
    spread = by_age.group_by("taste").agg(pl.col("share").max() - pl.col("share").min())
    assert num(spread["share"].max()) > 0.1
    assert set(users["MEMBERSHIP"]) == {"free", "plus", "premium"}
    assert users["AGE_GROUP"].n_unique() == 6


def test_latent_truth_matches_the_files(
    data: DemoData, items: pl.DataFrame, enriched: pl.DataFrame
) -> None:
    # bench/oracle.py scores the held-out events with this hidden state.
    latent = data.latent
    cats, subs = data.categories, latent.subcategories
    assert [cats[c] for c in latent.item_category] == items["CATEGORY_L1"].to_list()
    primary = items["CATEGORY_L2"].str.split("|").list.first().to_list()
    assert [subs[s] for s in latent.item_subcategory] == primary
    assert latent.item_created.tolist() == items["CREATION_TIMESTAMP"].to_list()
    assert set(latent.nonempty_categories.tolist()) == set(latent.item_category.tolist())
    n = data.n_interactions
    assert all(a.shape == (n,) for a in (latent.session_category, latent.focused, latent.drift))
    # A focus subcategory lies in its session's category.
    sub_cat = np.zeros(len(subs), dtype=np.int64)
    sub_cat[latent.item_subcategory] = latent.item_category
    assert np.array_equal(sub_cat[latent.focus_subcategory], latent.session_category)
    # A view is drawn from the session's category unless it drifted; carts copy the view.
    session = np.array(cats)[latent.session_category]
    focus = np.array(subs)[latent.focus_subcategory]
    view = (enriched["EVENT_TYPE"] == "View").to_numpy()
    in_session = enriched["cat"].to_numpy() == session
    assert np.all(in_session[view & ~latent.drift])
    assert in_session.mean() > 0.9
    assert 0.05 < latent.drift.mean() < 0.09
    assert 0.4 < latent.focused.mean() < 0.6
    # Focused sessions pick from the focus subcategory at least 75 % of their kept views.
    hunt = view & latent.focused & ~latent.drift
    assert (enriched["sub"].to_numpy()[hunt] == focus[hunt]).mean() > 0.75

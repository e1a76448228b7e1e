"""Snapshot features: Items / Users metadata, interaction context, impressions, weights."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pertinent.data.csv_import import read_location, write_part
from pertinent.data.features import (
    ColumnSelection,
    categorical_feature,
    permute_csr,
    text_feature,
)
from pertinent.data.schema import DatasetSchema, parse_schema
from pertinent.data.snapshot import (
    InsufficientData,
    Snapshot,
    TrainingConfigError,
    build_snapshot,
)
from pertinent.recipes.base import CategoricalFeature, FeatureTable

Row = dict[str, Any]


def avro(name: str, *fields: tuple[str, Any] | tuple[str, Any, str]) -> str:
    out: list[dict[str, Any]] = []
    for spec in fields:
        field: dict[str, Any] = {"name": spec[0], "type": spec[1]}
        if len(spec) == 3:
            field[spec[2]] = True
        out.append(field)
    return json.dumps({"type": "record", "name": name, "fields": out})


NULL_STR = ["null", "string"]
ITEMS = avro(
    "Items",
    ("ITEM_ID", "string"),
    ("GENRES", NULL_STR, "categorical"),
    ("DESCRIPTION", NULL_STR, "textual"),
    ("PRICE", ["null", "float"]),
    ("IN_STOCK", ["null", "boolean"]),
    ("TITLE", NULL_STR),  # a plain string: not trained on
    ("CREATION_TIMESTAMP", ["null", "long"]),
)
USERS = avro(
    "Users",
    ("USER_ID", "string"),
    ("AGE", ["null", "int"]),
    ("TIER", NULL_STR, "categorical"),
    ("VIP", ["null", "boolean"]),
    ("NICKNAME", NULL_STR),
)
INTERACTIONS = avro(
    "Interactions",
    ("USER_ID", "string"),
    ("ITEM_ID", "string"),
    ("TIMESTAMP", "long"),
    ("EVENT_TYPE", NULL_STR),
    ("EVENT_VALUE", ["null", "float"]),
    ("DEVICE", NULL_STR, "categorical"),
    ("DISCOUNT", ["null", "double"]),
    ("IMPRESSION", NULL_STR),
    ("RECOMMENDATION_ID", NULL_STR),
    ("NOTE", NULL_STR),
)
SCHEMAS = {"Items": ITEMS, "Users": USERS, "Interactions": INTERACTIONS}

ITEMS_CSV = """ITEM_ID,GENRES,DESCRIPTION,PRICE,IN_STOCK,TITLE,CREATION_TIMESTAMP
i1,Action|Crime,"<p>A <b>gritty</b> crime story</p>",9.5,true,Heat,100
i2,Comedy,"A funny crime caper &amp; a GRITTY twist",,false,Fargo,
i3,,"Unique words only here",3,,Up,50
"""
USERS_CSV = """USER_ID,AGE,TIER,VIP,NICKNAME
u2,41,gold,true,Bee
u1,,silver|gold,false,Ay
u9,30,,,Zed
"""
INTERACTIONS_CSV = (
    "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE,DEVICE,DISCOUNT,IMPRESSION,"
    "RECOMMENDATION_ID,NOTE\n"
    """u2,i2,30,click,,tablet,0.5,i2|i1|nope|i3,r1,hello
u1,i4,20,Purchase,12.5,mobile,,i1|i4,,x
u1,i1,10,click,,mobile,1.25,,,y
u2,i1,5,view,1,,,i3,,z
"""
)


def imported(tmp_path: Path, dataset_type: str, schema: str, text: str) -> Path:
    """A CSV imported the way the import job does it: checked, typed, one Parquet part."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    csv = tmp_path / f"{dataset_type.lower()}.csv"
    csv.write_text(text)
    part = tmp_path / "parts" / f"{dataset_type.lower()}.parquet"
    write_part(read_location(str(csv), parse_schema(schema), dataset_type), part)
    return part


def schemas(**overrides: str) -> dict[str, DatasetSchema]:
    return {k: parse_schema(v) for k, v in {**SCHEMAS, **overrides}.items()}


def values(feature: CategoricalFeature, row: int) -> list[str]:
    return [feature.vocabulary[c] for c in feature.row(row)]


def cat(table: FeatureTable | None, name: str) -> CategoricalFeature:
    assert table is not None
    return next(f for f in table.categorical if f.name == name)


def num(table: FeatureTable | None, name: str) -> list[float | None]:
    assert table is not None
    feature = next(f for f in table.numeric if f.name == name)
    assert feature.values.dtype == np.float32
    return [None if math.isnan(v) else float(v) for v in feature.values]


def check_csr(feature: CategoricalFeature, n_rows: int) -> None:
    assert feature.offsets.dtype == np.int64 and feature.codes.dtype == np.int32
    assert len(feature.offsets) == n_rows + 1 and feature.offsets[0] == 0
    assert feature.offsets[-1] == len(feature.codes)
    assert list(feature.vocabulary) == sorted(feature.vocabulary)
    assert len(set(feature.vocabulary)) == len(feature.vocabulary)


@pytest.fixture
def imported_snapshot(tmp_path: Path) -> Snapshot:
    return build_snapshot(
        [imported(tmp_path, "INTERACTIONS", INTERACTIONS, INTERACTIONS_CSV)],
        [imported(tmp_path, "ITEMS", ITEMS, ITEMS_CSV)],
        [imported(tmp_path, "USERS", USERS, USERS_CSV)],
        schemas=schemas(),
    )


def test_item_features_from_a_csv_import(imported_snapshot: Snapshot) -> None:
    snap = imported_snapshot
    # i4 is known only from interactions: it is in the catalogue with missing metadata.
    assert snap.item_ids == ["i1", "i2", "i3", "i4"]
    table = snap.data.item_features
    assert table is not None and table.n_rows == 4
    # Schema order, categorical first; the plain string, the id and CREATION_TIMESTAMP
    # are not features.
    assert table.names == ("GENRES", "DESCRIPTION", "PRICE", "IN_STOCK")

    genres = cat(table, "GENRES")
    check_csr(genres, 4)
    assert genres.vocabulary == ("Action", "Comedy", "Crime")
    assert [values(genres, i) for i in range(4)] == [["Action", "Crime"], ["Comedy"], [], []]

    # Tokens are lower-cased with markup stripped; a token of only one item is dropped.
    words = cat(table, "DESCRIPTION")
    check_csr(words, 4)
    assert words.vocabulary == ("a", "crime", "gritty")
    assert [values(words, i) for i in range(4)] == [
        ["a", "crime", "gritty"],
        ["a", "crime", "gritty"],
        [],
        [],
    ]

    assert num(table, "PRICE") == [9.5, None, 3.0, None]
    assert num(table, "IN_STOCK") == [1.0, 0.0, None, None]
    assert snap.data.item_creation_time is not None
    assert snap.data.item_creation_time.tolist()[0] == 100


def test_user_features_from_a_csv_import(imported_snapshot: Snapshot) -> None:
    snap = imported_snapshot
    assert snap.user_ids == ["u1", "u2", "u9"]
    table = snap.data.user_features
    assert table is not None and table.n_rows == 3
    assert table.names == ("TIER", "AGE", "VIP")
    tier = cat(table, "TIER")
    check_csr(tier, 3)
    assert [values(tier, u) for u in range(3)] == [["gold", "silver"], ["gold"], []]
    assert num(table, "AGE") == [None, 41.0, 30.0]
    assert num(table, "VIP") == [0.0, 1.0, None]


def test_context_and_impressions_follow_the_sorted_rows(imported_snapshot: Snapshot) -> None:
    snap = imported_snapshot
    inter = snap.data.interactions
    rows = [
        (snap.user_ids[u], snap.item_ids[i]) for u, i in zip(inter.user, inter.item, strict=True)
    ]
    assert rows == [("u1", "i1"), ("u1", "i4"), ("u2", "i1"), ("u2", "i2")]

    context = inter.context
    assert context is not None and context.n_rows == 4
    # Reserved fields and the plain string NOTE are not context.
    assert context.names == ("DEVICE", "DISCOUNT")
    device = cat(context, "DEVICE")
    check_csr(device, 4)
    assert [values(device, r) for r in range(4)] == [["mobile"], ["mobile"], [], ["tablet"]]
    assert num(context, "DISCOUNT") == [1.25, None, None, 0.5]

    assert inter.impressions is not None
    offsets, shown = inter.impressions
    assert offsets.dtype == np.int64 and shown.dtype == np.int32
    lists = [[snap.item_ids[i] for i in shown[offsets[r] : offsets[r + 1]]] for r in range(4)]
    # Unknown ids and the row's own item are dropped; the shown order is kept.
    assert lists == [[], ["i1"], ["i3"], ["i1", "i3"]]
    assert inter.weight is None


def test_without_schemas_there_are_no_features(tmp_path: Path) -> None:
    snap = build_snapshot(
        [imported(tmp_path, "INTERACTIONS", INTERACTIONS, INTERACTIONS_CSV)],
        [imported(tmp_path, "ITEMS", ITEMS, ITEMS_CSV)],
    )
    assert snap.data.item_features is None and snap.data.user_features is None
    assert snap.data.interactions.context is None
    # IMPRESSION is a reserved name: it needs no schema to be read.
    assert snap.data.interactions.impressions is not None


def test_latest_item_row_gives_the_features(tmp_path: Path) -> None:
    old = imported(tmp_path / "a", "ITEMS", ITEMS, ITEMS_CSV)
    new = imported(
        tmp_path / "b",
        "ITEMS",
        ITEMS,
        "ITEM_ID,GENRES,DESCRIPTION,PRICE,IN_STOCK,TITLE,CREATION_TIMESTAMP\ni1,Drama,,1,,,\n",
    )
    inter = imported(tmp_path, "INTERACTIONS", INTERACTIONS, INTERACTIONS_CSV)
    snap = build_snapshot([inter], [old, new], schemas=schemas())
    genres = cat(snap.data.item_features, "GENRES")
    assert [values(genres, i) for i in range(4)] == [["Drama"], ["Comedy"], [], []]
    assert num(snap.data.item_features, "PRICE") == [1.0, None, 3.0, None]


@pytest.mark.parametrize(
    ("config", "items", "users", "context", "impressions"),
    [
        (None, ("GENRES", "DESCRIPTION", "PRICE", "IN_STOCK"), ("TIER", "AGE", "VIP"), True, True),
        (
            {"excludedDatasetColumns": {"items": ["price", "Genres"], "USERS": ["V_I_P"]}},
            ("DESCRIPTION", "IN_STOCK"),
            ("TIER", "AGE"),
            True,
            True,
        ),
        (
            {"includedDatasetColumns": {"Items": ["DESCRIPTION", "TITLE"], "Users": []}},
            ("DESCRIPTION",),
            None,
            True,
            True,
        ),
        (
            {
                "includedDatasetColumns": {"Interactions": ["DEVICE"]},
                "excludedDatasetColumns": {"Interactions": ["DEVICE"], "Items": ["IN_STOCK"]},
            },
            ("GENRES", "DESCRIPTION", "PRICE"),
            ("TIER", "AGE", "VIP"),
            False,
            False,
        ),
        (
            {"excludedDatasetColumns": {"Interactions": ["impression"]}},
            ("GENRES", "DESCRIPTION", "PRICE", "IN_STOCK"),
            ("TIER", "AGE", "VIP"),
            True,
            False,
        ),
    ],
)
def test_training_data_config_selects_columns(
    tmp_path: Path,
    config: dict[str, Any] | None,
    items: tuple[str, ...],
    users: tuple[str, ...] | None,
    context: bool,
    impressions: bool,
) -> None:
    snap = build_snapshot(
        [imported(tmp_path, "INTERACTIONS", INTERACTIONS, INTERACTIONS_CSV)],
        [imported(tmp_path, "ITEMS", ITEMS, ITEMS_CSV)],
        [imported(tmp_path, "USERS", USERS, USERS_CSV)],
        schemas=schemas(),
        training_data_config=config,
    )
    assert snap.data.item_features is not None
    assert snap.data.item_features.names == items
    got_users = snap.data.user_features
    assert (None if got_users is None else got_users.names) == users
    assert (snap.data.interactions.context is not None) == context
    assert (snap.data.interactions.impressions is not None) == impressions
    # Ids, timestamps and event fields always train.
    assert len(snap.data.interactions) == 4
    assert snap.data.interactions.event_types == ("click", "Purchase", "view")


@pytest.mark.parametrize(
    "config",
    [
        {"excludedDatasetColumns": {"Movies": ["X"]}},
        {"includedDatasetColumns": {"Items": "GENRES"}},
        {"includedDatasetColumns": ["Items"]},
    ],
)
def test_malformed_training_data_config(config: dict[str, Any]) -> None:
    with pytest.raises(TrainingConfigError, match="trainingDataConfig"):
        ColumnSelection.parse(config)


def test_schema_fields_missing_from_the_data_are_skipped(tmp_path: Path) -> None:
    # UpdateDataset added RATING; no import has brought it yet.
    later = json.loads(ITEMS)
    later["fields"].append({"name": "RATING", "type": ["null", "double"]})
    snap = build_snapshot(
        [imported(tmp_path, "INTERACTIONS", INTERACTIONS, INTERACTIONS_CSV)],
        [imported(tmp_path, "ITEMS", ITEMS, ITEMS_CSV)],
        schemas=schemas(Items=json.dumps(later)),
    )
    assert snap.data.item_features is not None
    assert "RATING" not in snap.data.item_features.names


def test_a_schema_with_no_trainable_metadata_gives_none(tmp_path: Path) -> None:
    plain = avro("Items", ("ITEM_ID", "string"), ("TITLE", NULL_STR))
    part = imported(tmp_path, "ITEMS", plain, "ITEM_ID,TITLE\ni1,Heat\n")
    inter = imported(tmp_path, "INTERACTIONS", INTERACTIONS, INTERACTIONS_CSV)
    snap = build_snapshot([inter], [part], schemas=schemas(Items=plain))
    assert snap.data.item_features is None


# --- context through duplicates, sorting and event selection ----------------------------


def test_context_alignment_after_duplicates_sorting_and_selection(tmp_path: Path) -> None:
    rows = [
        {"USER_ID": "b", "ITEM_ID": "x", "TIMESTAMP": 9, "EVENT_TYPE": "buy", "DEVICE": "tv"},
        {"USER_ID": "a", "ITEM_ID": "y", "TIMESTAMP": 7, "EVENT_TYPE": "view", "DEVICE": "pc"},
        {"USER_ID": "a", "ITEM_ID": "x", "TIMESTAMP": 3, "EVENT_TYPE": "BUY", "DEVICE": None},
        {"USER_ID": "b", "ITEM_ID": "x", "TIMESTAMP": 9, "EVENT_TYPE": "buy", "DEVICE": "tv"},
        {"USER_ID": "b", "ITEM_ID": "z", "TIMESTAMP": 1, "EVENT_TYPE": "Buy", "DEVICE": "pc|tv"},
        {"USER_ID": "a", "ITEM_ID": "z", "TIMESTAMP": 3, "EVENT_TYPE": "buy", "DEVICE": "phone"},
    ]
    part = tmp_path / "i.parquet"
    write_part(pl.DataFrame(rows), part)
    snap = build_snapshot([part], schemas=schemas(), event_type="buy")
    inter = snap.data.interactions
    got = [
        (snap.user_ids[u], snap.item_ids[i], int(t))
        for u, i, t in zip(inter.user, inter.item, inter.timestamp, strict=True)
    ]
    # Ties on time keep import order; the duplicate counts once; "view" is filtered out.
    assert got == [("a", "x", 3), ("a", "z", 3), ("b", "z", 1), ("b", "x", 9)]
    device = cat(inter.context, "DEVICE")
    assert device.vocabulary == ("pc", "phone", "tv")
    assert [values(device, r) for r in range(4)] == [[], ["phone"], ["pc", "tv"], ["tv"]]


# --- eventsConfig -------------------------------------------------------------------------


def events_part(tmp_path: Path) -> Path:
    rows = [
        ("u1", "a", 1, "click", None),
        ("u1", "b", 2, "Purchase", 5.0),
        ("u1", "c", 3, "purchase", 20.0),
        ("u2", "a", 4, "watch", 0.2),
        ("u2", "d", 5, None, None),
        ("u2", "e", 6, "PURCHASE", None),
    ]
    frame = pl.DataFrame(
        rows,
        schema={
            "USER_ID": pl.String,
            "ITEM_ID": pl.String,
            "TIMESTAMP": pl.Int64,
            "EVENT_TYPE": pl.String,
            "EVENT_VALUE": pl.Float32,
        },
        orient="row",
    )
    part = tmp_path / "events.parquet"
    write_part(frame, part)
    return part


def kept(snap: Snapshot) -> list[str]:
    return [snap.item_ids[i] for i in snap.data.interactions.item]


def test_events_config_weights_thresholds_and_normalisation(tmp_path: Path) -> None:
    config = [
        {"eventType": "PURCHASE", "weight": 1.0, "eventValueThreshold": 10},
        {"eventType": "click", "weight": 0.25},
    ]
    snap = build_snapshot([events_part(tmp_path)], events_config=config)
    # Purchases below 10 or without a value are dropped (any spelling); the rest stay.
    assert kept(snap) == ["a", "c", "a", "d"]
    weight = snap.data.interactions.weight
    assert weight is not None and weight.dtype == np.float32
    # Raw weights: click 0.25, purchase 1, and 1 for the unlisted "watch" and no type.
    raw = np.array([0.25, 1.0, 1.0, 1.0])
    assert weight.tolist() == pytest.approx((raw / raw.mean()).tolist())
    assert float(weight.mean()) == pytest.approx(1.0)


def test_events_config_combines_with_event_type(tmp_path: Path) -> None:
    config = [{"eventType": "purchase", "weight": 0.5, "eventValueThreshold": 10}]
    snap = build_snapshot([events_part(tmp_path)], event_type="Purchase", events_config=config)
    assert kept(snap) == ["c"]
    assert snap.data.interactions.weight is not None
    assert snap.data.interactions.weight.tolist() == [1.0]


def test_empty_events_config_weighs_everything_one(tmp_path: Path) -> None:
    snap = build_snapshot([events_part(tmp_path)], events_config=[])
    assert snap.data.interactions.weight is not None
    assert snap.data.interactions.weight.tolist() == [1.0] * 6


def test_zero_weights_stay_zero(tmp_path: Path) -> None:
    config = [{"eventType": t, "weight": 0} for t in ("click", "purchase", "watch")]
    snap = build_snapshot([events_part(tmp_path)], event_type="click", events_config=config)
    assert snap.data.interactions.weight is not None
    assert snap.data.interactions.weight.tolist() == [0.0]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ([{"weight": 1}], r"eventParametersList\[0\] needs an eventType"),
        ([{"eventType": "a"}, "b"], r"eventParametersList\[1\] needs an eventType"),
        ([{"eventType": "a", "weight": "heavy"}], "weight must be a number, got 'heavy'"),
        ([{"eventType": "a", "weight": -1}], "weight must be 0 or more"),
        ([{"eventType": "a", "eventValueThreshold": "nan"}], "must be a finite number"),
    ],
)
def test_malformed_events_config(tmp_path: Path, config: list[Any], message: str) -> None:
    with pytest.raises(TrainingConfigError, match=message):
        build_snapshot([events_part(tmp_path)], events_config=config)


def test_events_config_needs_its_columns(tmp_path: Path) -> None:
    part = tmp_path / "plain.parquet"
    write_part(pl.DataFrame({"USER_ID": ["u"], "ITEM_ID": ["a"], "TIMESTAMP": [1]}), part)
    with pytest.raises(InsufficientData, match="no EVENT_TYPE field"):
        build_snapshot([part], events_config=[{"eventType": "click", "weight": 1}])
    typed = tmp_path / "typed.parquet"
    write_part(
        pl.DataFrame({"USER_ID": ["u"], "ITEM_ID": ["a"], "TIMESTAMP": [1], "EVENT_TYPE": ["c"]}),
        typed,
    )
    with pytest.raises(InsufficientData, match="no EVENT_VALUE field"):
        build_snapshot([typed], events_config=[{"eventType": "c", "eventValueThreshold": 1}])


# --- encoders -----------------------------------------------------------------------------


def test_text_vocabulary_keeps_the_most_frequent_tokens() -> None:
    column = pl.Series(["b a c", "A b", "<i>c</i> B d", "d&nbsp;e", None, "e c"])
    # Rows per token: a 2, b 3, c 3, d 2, e 2. With room for 3: b, c, then a (ties by token).
    feature = text_feature("T", column, max_vocabulary=3)
    assert feature.vocabulary == ("a", "b", "c")
    assert [values(feature, r) for r in range(6)] == [
        ["a", "b", "c"],
        ["a", "b"],
        ["b", "c"],
        [],
        [],
        ["c"],
    ]
    everything = text_feature("T", column)
    assert everything.vocabulary == ("a", "b", "c", "d", "e")


def test_categorical_repeats_and_empty_values() -> None:
    feature = categorical_feature("C", pl.Series(["b|a|b", "", None, "a||c"]))
    assert feature.vocabulary == ("a", "b", "c")
    assert [values(feature, r) for r in range(4)] == [["a", "b"], [], [], ["a", "c"]]
    single = categorical_feature("C", pl.Series(["z", "", None, "y"]))
    assert single.vocabulary == ("y", "z")
    assert [values(single, r) for r in range(4)] == [["z"], [], [], ["y"]]


def test_encoders_apply_the_row_order() -> None:
    order = np.array([2, 0, 1], dtype=np.int32)
    single = categorical_feature("C", pl.Series(["x", None, "y"]), order)
    assert [values(single, r) for r in range(3)] == [["y"], ["x"], []]
    multi = categorical_feature("C", pl.Series(["x|y", None, "y"]), order)
    assert [values(multi, r) for r in range(3)] == [["y"], ["x", "y"], []]
    offsets, items = permute_csr(
        np.array([0, 2, 2, 5], dtype=np.int64), np.array([5, 6, 7, 8, 9], dtype=np.int32), order
    )
    assert offsets.tolist() == [0, 3, 5, 5]
    assert items.tolist() == [7, 8, 9, 5, 6]


# --- everything against a plain-Python reference ------------------------------------------

USERS_P = ["u1", "u2", "U1", "v"]
ITEMS_P = ["a", "b", "c", "é"]
DEVICES = [None, "tv", "pc", "tv|pc", "pc|pc"]
TYPES = ["click", "Buy", "buy", None]
IMPRESSIONS = [None, "a", "a|b|zz", "c|a|é", "b|b"]
META_SCHEMA = avro(
    "Interactions",
    ("USER_ID", "string"),
    ("ITEM_ID", "string"),
    ("TIMESTAMP", "long"),
    ("EVENT_TYPE", NULL_STR),
    ("EVENT_VALUE", ["null", "float"]),
    ("DEVICE", NULL_STR, "categorical"),
    ("SCORE", ["null", "double"]),
    ("IMPRESSION", NULL_STR),
)
ITEMS_SCHEMA = avro(
    "Items",
    ("ITEM_ID", "string"),
    ("GENRES", NULL_STR, "categorical"),
    ("PRICE", ["null", "float"]),
)
INTER_TYPES = {
    "USER_ID": pl.String,
    "ITEM_ID": pl.String,
    "TIMESTAMP": pl.Int64,
    "EVENT_TYPE": pl.String,
    "EVENT_VALUE": pl.Float32,
    "DEVICE": pl.String,
    "SCORE": pl.Float64,
    "IMPRESSION": pl.String,
}

interaction_rows = st.lists(
    st.fixed_dictionaries(
        {
            "USER_ID": st.sampled_from(USERS_P),
            "ITEM_ID": st.sampled_from(ITEMS_P),
            "TIMESTAMP": st.integers(0, 3),
            "EVENT_TYPE": st.sampled_from(TYPES),
            "EVENT_VALUE": st.sampled_from([None, 0.5, 2.0]),
            "DEVICE": st.sampled_from(DEVICES),
            "SCORE": st.sampled_from([None, 1.5, -2.0]),
            "IMPRESSION": st.sampled_from(IMPRESSIONS),
        }
    ),
    max_size=30,
)
item_rows = st.lists(
    st.fixed_dictionaries(
        {
            "ITEM_ID": st.sampled_from([*ITEMS_P, "only-in-items"]),
            "GENRES": st.sampled_from([None, "x", "y|x", "z"]),
            "PRICE": st.sampled_from([None, 1.0, 2.5]),
        }
    ),
    max_size=8,
)
events_configs = st.sampled_from(
    [
        None,
        [],
        [{"eventType": "BUY", "weight": 0.5, "eventValueThreshold": 1.0}],
        [{"eventType": "click", "weight": 0.2}, {"eventType": "buy", "weight": 0.8}],
    ]
)


def reference(
    parts: list[list[Row]], items: list[Row], config: list[Row] | None
) -> tuple[list[str], list[Row], dict[str, Row], list[float] | None]:
    """(item ids, final rows with their raw weight, latest item row by id, weights)."""
    seen: set[tuple[Any, ...]] = set()
    rows: list[Row] = []
    for row in (r for p in parts for r in p):
        key = tuple(row[c] for c in INTER_TYPES)
        if key not in seen:
            seen.add(key)
            rows.append(dict(row))
    params = {e["eventType"].lower(): e for e in config or []}
    final: list[Row] = []
    for row in rows:
        entry = params.get((row["EVENT_TYPE"] or "").lower()) if row["EVENT_TYPE"] else None
        threshold = None if entry is None else entry.get("eventValueThreshold")
        if threshold is not None and (row["EVENT_VALUE"] is None or row["EVENT_VALUE"] < threshold):
            continue
        row["_weight"] = 1.0 if entry is None else entry["weight"]
        final.append(row)
    latest = {r["ITEM_ID"]: r for r in items}
    user_ids = sorted({r["USER_ID"] for r in final})
    item_ids = sorted({r["ITEM_ID"] for r in final} | set(latest))
    final.sort(key=lambda r: (user_ids.index(r["USER_ID"]), r["TIMESTAMP"]))
    weights = None
    if config is not None:
        raw = [r["_weight"] for r in final]
        mean = sum(raw) / len(raw) if raw else 0.0
        weights = [w / mean for w in raw] if mean > 0 else raw
    return item_ids, final, latest, weights


def split(cell: str | None) -> list[str]:
    return sorted({v for v in (cell or "").split("|") if v})


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    parts=st.lists(interaction_rows, min_size=1, max_size=3),
    items=item_rows,
    config=events_configs,
)
def test_features_match_reference(
    tmp_path_factory: pytest.TempPathFactory,
    parts: list[list[Row]],
    items: list[Row],
    config: list[Row] | None,
) -> None:
    root = tmp_path_factory.mktemp("parts")
    paths = []
    for n, rows in enumerate(parts):
        paths.append(root / f"i{n}.parquet")
        write_part(pl.DataFrame(rows, schema=INTER_TYPES), paths[-1])
    item_parts = []
    if items:
        item_parts.append(root / "items.parquet")
        types = {"ITEM_ID": pl.String, "GENRES": pl.String, "PRICE": pl.Float32}
        write_part(pl.DataFrame(items, schema=types), item_parts[0])
    snap = build_snapshot(
        paths,
        item_parts,
        schemas={
            "INTERACTIONS": parse_schema(META_SCHEMA),
            "items": parse_schema(ITEMS_SCHEMA),
        },
        events_config=config,
    )
    item_ids, final, latest, weights = reference(parts, items, config)
    inter = snap.data.interactions
    assert snap.item_ids == item_ids
    assert [
        (snap.user_ids[u], snap.item_ids[i]) for u, i in zip(inter.user, inter.item, strict=True)
    ] == [(r["USER_ID"], r["ITEM_ID"]) for r in final]

    # Item i's features are item i's (latest row; none for items only in interactions).
    if items:
        table = snap.data.item_features
        assert table is not None and table.n_rows == len(item_ids)
        genres = cat(table, "GENRES")
        check_csr(genres, len(item_ids))
        for i, item in enumerate(item_ids):
            row = latest.get(item, {})
            assert values(genres, i) == split(row.get("GENRES"))
        assert num(table, "PRICE") == [latest.get(i, {}).get("PRICE") for i in item_ids]
    else:
        assert snap.data.item_features is None

    # Context row r is final row r's.
    context = inter.context
    assert context is not None and context.n_rows == len(final)
    device = cat(context, "DEVICE")
    check_csr(device, len(final))
    assert set(device.vocabulary) == {v for r in final for v in split(r["DEVICE"])}
    assert [values(device, r) for r in range(len(final))] == [split(r["DEVICE"]) for r in final]
    assert num(context, "SCORE") == [r["SCORE"] for r in final]

    assert inter.impressions is not None
    offsets, shown = inter.impressions
    assert len(offsets) == len(final) + 1
    for n, r in enumerate(final):
        expected = [x for x in (r["IMPRESSION"] or "").split("|") if x in item_ids]
        expected = [x for x in expected if x != r["ITEM_ID"]]
        assert [snap.item_ids[i] for i in shown[offsets[n] : offsets[n + 1]]] == expected

    if weights is None:
        assert inter.weight is None
    else:
        assert inter.weight is not None
        assert inter.weight.tolist() == pytest.approx(weights, rel=1e-6)

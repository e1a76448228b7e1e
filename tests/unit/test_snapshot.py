"""Training snapshots from committed parts: ids, order, duplicates, upserts, filters."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pertinent.data import snapshot as snapshot_module
from pertinent.data.csv_import import write_part
from pertinent.data.snapshot import (
    InsufficientData,
    Snapshot,
    build_snapshot,
    check_minimum_data,
    dense_ids,
    drop_exact_duplicates,
)
from pertinent.recipes.base import Interactions, TrainingData

Row = dict[str, Any]


class Parts:
    """Writes numbered parts into a directory, as imports would."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.count = 0

    def __call__(self, rows: list[Row] | pl.DataFrame) -> Path:
        self.count += 1
        path = self.root / f"part-{self.count:04d}.parquet"
        frame = rows if isinstance(rows, pl.DataFrame) else pl.DataFrame(rows)
        write_part(frame, path)
        return path


@pytest.fixture
def part(tmp_path: Path) -> Parts:
    return Parts(tmp_path)


def triples(snap: Snapshot) -> list[tuple[str, str, int]]:
    inter = snap.data.interactions
    return [
        (snap.user_ids[u], snap.item_ids[i], int(t))
        for u, i, t in zip(inter.user, inter.item, inter.timestamp, strict=True)
    ]


def r(user: str, item: str, ts: int, **extra: Any) -> Row:
    return {"USER_ID": user, "ITEM_ID": item, "TIMESTAMP": ts, **extra}


def test_ids_are_sorted_and_rows_grouped_by_user_then_time(part: Parts) -> None:
    p = part([r("u2", "b", 5), r("u1", "c", 9), r("u2", "a", 1), r("u1", "a", 2)])
    snap = build_snapshot([p], seed=3)
    assert snap.user_ids == ["u1", "u2"]
    assert snap.item_ids == ["a", "b", "c"]
    assert snap.user_index() == {"u1": 0, "u2": 1}
    assert snap.item_index() == {"a": 0, "b": 1, "c": 2}
    assert triples(snap) == [("u1", "a", 2), ("u1", "c", 9), ("u2", "a", 1), ("u2", "b", 5)]
    inter = snap.data.interactions
    assert inter.user.dtype == np.int32 and inter.item.dtype == np.int32
    assert inter.timestamp.dtype == np.int64
    assert (inter.n_users, inter.n_items) == (2, 3)
    assert inter.event_type is None and inter.event_types == () and inter.event_value is None
    assert inter.user_offsets().tolist() == [0, 2, 4]
    assert snap.data.seed == 3
    assert snap.items is None and snap.users is None


def test_ties_keep_import_order_across_parts(part: Parts) -> None:
    first = part([r("u", "x", 5), r("u", "y", 5)])
    second = part([r("u", "a", 5), r("u", "z", 1)])
    snap = build_snapshot([first, second])
    assert [snap.item_ids[i] for i in snap.data.interactions.item] == ["z", "x", "y", "a"]


def test_exact_duplicates_count_once(part: Parts) -> None:
    rows = [
        r("u", "a", 1, EVENT_TYPE="click", EVENT_VALUE=1.0),
        r("u", "a", 1, EVENT_TYPE="click", EVENT_VALUE=1.0),
        r("u", "a", 1, EVENT_TYPE="Click", EVENT_VALUE=1.0),  # differs in spelling: kept
        r("u", "a", 1, EVENT_TYPE="click", EVENT_VALUE=None),
        r("u", "a", 1, EVENT_TYPE="click", EVENT_VALUE=None),
    ]
    snap = build_snapshot([part(rows), part(rows[:1])])
    assert len(snap.data.interactions) == 3


def test_drop_exact_duplicates_treats_nulls_and_nans_as_equal() -> None:
    df = pl.DataFrame(
        {"a": [1, 1, 1, 2, 1], "b": [None, None, 1.0, float("nan"), None]},
        schema={"a": pl.Int64, "b": pl.Float64},
    )
    df = pl.concat([df, df.tail(2)])
    out = drop_exact_duplicates(df)
    assert out.height == 3
    assert out["a"].to_list() == [1, 1, 2]


def test_latest_item_and_user_rows_win(part: Parts) -> None:
    inter = part([r("u1", "a", 1), r("u2", "b", 2)])
    items_1 = part(
        pl.DataFrame(
            {"ITEM_ID": ["a", "z", "a"], "GENRE": ["x", "y", "x2"], "CREATION_TIMESTAMP": [1, 2, 3]}
        )
    )
    items_2 = part(pl.DataFrame({"ITEM_ID": ["z"], "GENRE": ["y2"], "CREATION_TIMESTAMP": [4]}))
    users_1 = part(pl.DataFrame({"USER_ID": ["u9", "u1"], "AGE": [40, 30]}))
    users_2 = part(pl.DataFrame({"USER_ID": ["u1"], "AGE": [31]}))
    snap = build_snapshot([inter], [items_1, items_2], [users_1, users_2])

    # Items and users known only from their datasets are part of the catalogue.
    assert snap.item_ids == ["a", "b", "z"]
    assert snap.user_ids == ["u1", "u2", "u9"]
    assert snap.items is not None and snap.users is not None
    assert snap.items.rows() == [("a", "x2", 3), ("b", None, None), ("z", "y2", 4)]
    assert snap.users.rows() == [("u1", 31), ("u2", None), ("u9", 40)]
    assert snap.data.n_items == 3 and snap.data.n_users == 3


def test_parts_written_under_different_schemas_line_up(part: Parts) -> None:
    old = part([r("u", "a", 1)])
    new = part([r("u", "b", 2, EVENT_TYPE="buy", EVENT_VALUE=2.5)])
    snap = build_snapshot([old, new])
    inter = snap.data.interactions
    assert inter.event_types == ("buy",)
    assert inter.event_type is not None and inter.event_type.tolist() == [-1, 0]
    assert inter.event_value is not None
    assert math.isnan(inter.event_value[0]) and inter.event_value[1] == 2.5


def test_event_types_keep_first_spelling_and_sort(part: Parts) -> None:
    rows = [
        r("u", "a", 1, EVENT_TYPE="Watch"),
        r("u", "a", 2, EVENT_TYPE="click"),
        r("u", "a", 3, EVENT_TYPE="WATCH"),
        r("u", "a", 4, EVENT_TYPE=None),
        r("u", "a", 5, EVENT_TYPE="Click"),
        r("u", "a", 6, EVENT_TYPE="buy"),
    ]
    snap = build_snapshot([part(rows)])
    inter = snap.data.interactions
    assert inter.event_types == ("buy", "click", "Watch")
    assert inter.event_type is not None
    assert inter.event_type.dtype == np.int16
    assert inter.event_type.tolist() == [2, 1, 2, -1, 1, 0]


@pytest.mark.parametrize(
    ("event_type", "threshold", "expected"),
    [
        (None, None, ["a", "b", "c", "d", "e"]),
        ("click", None, ["a", "c"]),
        ("CLICK", None, ["a", "c"]),
        ("Watch", None, ["b", "d"]),
        ("purchase", None, []),
        (None, 0.5, ["b", "c", "d"]),
        ("watch", 0.5, ["b", "d"]),
        ("click", 1.5, []),
    ],
)
def test_event_selection(
    part: Parts, event_type: str | None, threshold: float | None, expected: list[str]
) -> None:
    rows = [
        r("u", "a", 1, EVENT_TYPE="click", EVENT_VALUE=None),
        r("u", "b", 2, EVENT_TYPE="watch", EVENT_VALUE=0.5),
        r("u", "c", 3, EVENT_TYPE="Click", EVENT_VALUE=1.0),
        r("u", "d", 4, EVENT_TYPE="WATCH", EVENT_VALUE=0.9),
        r("u", "e", 5, EVENT_TYPE=None, EVENT_VALUE=0.1),
    ]
    snap = build_snapshot([part(rows)], event_type=event_type, event_value_threshold=threshold)
    # Items seen only in rows that were filtered out are not in the catalogue.
    assert snap.item_ids == expected
    assert [item for _, item, _ in triples(snap)] == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"event_type": "click"},
            "Create failed. eventType is 'click' but the Interactions dataset has no "
            "EVENT_TYPE field.",
        ),
        (
            {"event_value_threshold": 0.5},
            "Create failed. eventValueThreshold is 0.5 but the Interactions dataset has no "
            "EVENT_VALUE field.",
        ),
    ],
)
def test_selection_needs_its_column(part: Parts, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InsufficientData) as err:
        build_snapshot([part([r("u", "a", 1)])], **kwargs)
    assert str(err.value) == message


def test_item_creation_time(part: Parts) -> None:
    inter = part([r("u", "a", 50), r("u", "a", 20), r("u", "b", 30), r("u", "c", 90)])
    items = part(
        pl.DataFrame(
            {
                "ITEM_ID": ["a", "c", "new", "old"],
                "CREATION_TIMESTAMP": [None, 5, None, 7],
                "GENRE": ["g", "g", "g", "g"],
            },
            schema_overrides={"CREATION_TIMESTAMP": pl.Int64},
        )
    )
    snap = build_snapshot([inter], [items])
    created = snap.data.item_creation_time
    assert created is not None and created.dtype == np.int64
    by_item = dict(zip(snap.item_ids, created.tolist(), strict=True))
    # a: oldest interaction; b: oldest interaction; c: CREATION_TIMESTAMP wins;
    # new: no timestamp and no interactions -> newest interaction; old: its own timestamp.
    assert by_item == {"a": 20, "b": 30, "c": 5, "new": 90, "old": 7}


def test_no_interactions(part: Parts) -> None:
    items = part(pl.DataFrame({"ITEM_ID": ["b", "a"], "GENRE": ["x", "y"]}))
    snap = build_snapshot([], [items])
    assert snap.item_ids == ["a", "b"]
    assert snap.user_ids == []
    assert len(snap.data.interactions) == 0
    assert snap.data.item_creation_time is not None
    assert snap.data.item_creation_time.tolist() == [0, 0]


def test_dense_ids_fall_back_to_exact_on_hash_collision(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = pl.Series("USER_ID", ["c", "a", "b", "a", "c"])
    fast_index, fast_ids = dense_ids(values, pl.Series(["d"]))

    def colliding(series: pl.Series, seed: int) -> npt.NDArray[np.uint64]:
        out = np.zeros(len(series), dtype=np.uint64)
        if seed != snapshot_module._HASH_SEED:  # the check hash still tells ids apart
            out[:] = series.hash(seed=seed).to_numpy()
        return out

    monkeypatch.setattr(snapshot_module, "_hash_ids", colliding)
    exact_index, exact_ids = dense_ids(values, pl.Series(["d"]))
    assert fast_ids.to_list() == exact_ids.to_list() == ["a", "b", "c", "d"]
    assert fast_index.tolist() == exact_index.tolist() == [2, 0, 1, 0, 2]


def training(users: list[int], n_users: int) -> TrainingData:
    user = np.asarray(users, dtype=np.int32)
    inter = Interactions(
        user=user,
        item=np.zeros(len(user), dtype=np.int32),
        timestamp=np.zeros(len(user), dtype=np.int64),
        n_users=n_users,
        n_items=1,
    )
    return TrainingData(interactions=inter)


@pytest.mark.parametrize(
    ("users", "kwargs", "message"),
    [
        ([0] * 999, {}, "Create failed. Dataset has fewer than 1000 interactions."),
        (
            [0] * 10,
            {"min_interactions": 11, "event_type": "Watch"},
            "Create failed. Dataset has fewer than 11 interactions after filtering by event "
            "type: Watch.",
        ),
        (
            [u for u in range(24) for _ in range(2)] + list(range(24, 1000)),
            {},
            "Create failed. Dataset has fewer than 25 users with at least 2 interactions each.",
        ),
        (
            [0, 0, 1, 1, 2],
            {"min_interactions": 5, "min_users": 3},
            "Create failed. Dataset has fewer than 3 users with at least 2 interactions each.",
        ),
    ],
)
def test_minimum_data(users: list[int], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InsufficientData) as err:
        check_minimum_data(training(users, 1000), **kwargs)
    assert str(err.value) == message


def test_minimum_data_met() -> None:
    check_minimum_data(training([u for u in range(25) for _ in range(2)] + [0] * 950, 25))
    check_minimum_data(training([0, 0, 1, 1, 2], 3), min_interactions=5, min_users=2)


# --- the whole thing against a plain-Python reference ------------------------------------

USERS = ["u1", "U1", "u2", "b", "a10", "a9"]
ITEMS = ["i1", "i2", "I2", "x", "é"]
TYPES = ["click", "Click", "VIEW", "view", None]
VALUES = [None, 0.5, 1.0, 2.0]

rows_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "USER_ID": st.sampled_from(USERS),
            "ITEM_ID": st.sampled_from(ITEMS),
            "TIMESTAMP": st.integers(0, 4),
            "EVENT_TYPE": st.sampled_from(TYPES),
            "EVENT_VALUE": st.sampled_from(VALUES),
        }
    ),
    min_size=0,
    max_size=40,
)


def reference(
    parts: list[list[Row]], items: list[str], event_type: str | None, threshold: float | None
) -> tuple[list[str], list[str], list[tuple[str, str, int, str | None]], tuple[str, ...]]:
    seen: set[tuple[Any, ...]] = set()
    rows: list[Row] = []
    for rows_of_part in parts:
        for row in rows_of_part:
            key = tuple(
                row[c] for c in ("USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE")
            )
            if key not in seen:
                seen.add(key)
                rows.append(row)
    if event_type is not None:
        rows = [x for x in rows if (x["EVENT_TYPE"] or "").lower() == event_type.lower()]
    if threshold is not None:
        rows = [x for x in rows if x["EVENT_VALUE"] is not None and x["EVENT_VALUE"] >= threshold]
    user_ids = sorted({x["USER_ID"] for x in rows})
    item_ids = sorted({x["ITEM_ID"] for x in rows} | set(items))
    first: dict[str, str] = {}
    for x in rows:
        if x["EVENT_TYPE"] is not None:
            first.setdefault(x["EVENT_TYPE"].lower(), x["EVENT_TYPE"])
    types = tuple(sorted(first.values(), key=lambda s: (s.lower(), s)))
    ordered = sorted(rows, key=lambda x: (user_ids.index(x["USER_ID"]), x["TIMESTAMP"]))
    expected = [
        (
            x["USER_ID"],
            x["ITEM_ID"],
            x["TIMESTAMP"],
            None if x["EVENT_TYPE"] is None else first[x["EVENT_TYPE"].lower()],
        )
        for x in ordered
    ]
    return user_ids, item_ids, expected, types


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    parts=st.lists(rows_strategy, min_size=1, max_size=3),
    items=st.lists(st.sampled_from([*ITEMS, "only-in-items"]), max_size=3),
    event_type=st.sampled_from([None, "click", "VIEW"]),
    threshold=st.sampled_from([None, 1.0]),
)
def test_matches_reference(
    tmp_path_factory: pytest.TempPathFactory,
    parts: list[list[Row]],
    items: list[str],
    event_type: str | None,
    threshold: float | None,
) -> None:
    root = tmp_path_factory.mktemp("parts")
    schema = {
        "USER_ID": pl.String,
        "ITEM_ID": pl.String,
        "TIMESTAMP": pl.Int64,
        "EVENT_TYPE": pl.String,
        "EVENT_VALUE": pl.Float32,
    }
    paths = []
    for n, rows in enumerate(parts):
        paths.append(root / f"i{n}.parquet")
        write_part(pl.DataFrame(rows, schema=schema), paths[-1])
    item_parts = []
    if items:
        item_parts.append(root / "items.parquet")
        write_part(pl.DataFrame({"ITEM_ID": items, "X": [1] * len(items)}), item_parts[0])

    snap = build_snapshot(paths, item_parts, event_type=event_type, event_value_threshold=threshold)
    user_ids, item_ids, expected, types = reference(parts, items, event_type, threshold)
    inter = snap.data.interactions
    assert snap.user_ids == user_ids
    assert snap.item_ids == item_ids
    assert inter.event_types == types
    assert inter.event_type is not None
    got = [
        (
            snap.user_ids[u],
            snap.item_ids[i],
            int(t),
            None if code < 0 else inter.event_types[code],
        )
        for u, i, t, code in zip(
            inter.user, inter.item, inter.timestamp, inter.event_type, strict=True
        )
    ]
    assert got == expected


def test_one_percent_of_users_need_two_interactions() -> None:
    import numpy as np

    from pertinent.data.snapshot import InsufficientData, check_minimum_data
    from pertinent.recipes.base import Interactions, TrainingData

    # 30 users with 2 interactions and 4000 one-off visitors: 30 / 4030 < 1 %.
    users = np.concatenate([np.repeat(np.arange(30), 2), np.arange(30, 4030)]).astype(np.int32)
    data = TrainingData(
        Interactions(
            user=users,
            item=np.zeros(users.shape[0], dtype=np.int32),
            timestamp=np.arange(users.shape[0], dtype=np.int64),
            n_users=4030,
            n_items=1,
        )
    )
    with pytest.raises(InsufficientData, match="at least 1% of users"):
        check_minimum_data(data)

"""The compiled filter (masks, posting lists, cached conditions) against a plain
interpreter that walks item by item, on random catalogues and random expressions.

The expressions are generated as trees, rendered to text and parsed back, so the
grammar's round trip is checked on every example too.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pertinent.errors import InvalidInputException
from pertinent.filters.evaluate import ItemTable, Request, Rows, allowed_items
from pertinent.filters.grammar import (
    Condition,
    Expression,
    FieldRef,
    FilterExpression,
    Param,
    Values,
    parse,
    render,
)

CATS = ["a", "b", "c", "d"]
EVENTS = ["click", "Buy", "view"]
MEMBERSHIPS = ["gold", "silver"]
CMP = ["=", "!=", "<", "<=", ">", ">="]

# -- random data --------------------------------------------------------------------------

cat_value = st.one_of(
    st.none(), st.lists(st.sampled_from(CATS), min_size=1, max_size=3).map("|".join)
)
price = st.one_of(st.none(), st.integers(0, 20).map(float))


@st.composite
def catalogues(draw: Any) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 25))
    return [
        {"CAT": draw(cat_value), "PRICE": draw(price), "COUNT": draw(st.integers(0, 5))}
        for _ in range(n)
    ]


@st.composite
def interactions(draw: Any, n_items: int) -> list[dict[str, Any]]:
    return [
        {
            "item": draw(st.integers(-1, n_items - 1)),  # -1: an item not in the catalogue
            "EVENT_TYPE": draw(st.sampled_from(EVENTS)),
            "EVENT_VALUE": draw(st.one_of(st.none(), st.integers(0, 10).map(float))),
        }
        for _ in range(draw(st.integers(0, 8)))
    ]


# -- random expressions --------------------------------------------------------------------


def _ref(dataset: str, name: str) -> FieldRef:
    return FieldRef(dataset, name)


@st.composite
def item_conditions(draw: Any) -> Condition:
    kind = draw(st.sampled_from(["cat", "price", "count", "current"]))
    if kind == "cat":
        op = draw(st.sampled_from(["IN", "NOT IN", "=", "!="]))
        right: Any = None
        if draw(st.booleans()):
            right = Param(draw(st.sampled_from(["CATP", "CATQ"])))
        elif op in ("IN", "NOT IN"):
            right = Values(tuple(draw(st.lists(st.sampled_from(CATS), min_size=1, max_size=3))))
        else:
            right = Values((draw(st.sampled_from(CATS)),))
        return Condition(_ref("Items", "CAT"), op, right)
    if kind == "price":
        op = draw(st.sampled_from(CMP))
        right = (
            Param("PRICEP") if draw(st.booleans()) else Values((float(draw(st.integers(0, 20))),))
        )
        return Condition(_ref("Items", "PRICE"), op, right)
    if kind == "count":
        op = draw(st.sampled_from(["IN", "NOT IN", *CMP]))
        if op in ("IN", "NOT IN"):
            right = Values(tuple(float(v) for v in draw(st.lists(st.integers(0, 5), min_size=1))))
        else:
            right = Values((float(draw(st.integers(0, 5))),))
        return Condition(_ref("items", "count"), op, right)  # any case
    op = draw(st.sampled_from(["IN", "<", ">="]))
    field = "CAT" if op == "IN" else "PRICE"
    return Condition(_ref("Items", field), op, _ref("CurrentItem", field))


@st.composite
def interaction_conditions(draw: Any) -> Condition:
    if draw(st.booleans()):
        op = draw(st.sampled_from(["IN", "NOT IN"]))
        if draw(st.booleans()):
            right: Any = Param("EVENTS")
        else:
            pool = [e.upper() for e in EVENTS] + EVENTS + ["*"]
            right = Values(tuple(draw(st.lists(st.sampled_from(pool), min_size=1, max_size=2))))
        return Condition(_ref("Interactions", "EVENT_TYPE"), op, right)
    op = draw(st.sampled_from(CMP))
    return Condition(
        _ref("Interactions", "EVENT_VALUE"),
        op,
        Values((float(draw(st.integers(0, 10))),)),
    )


@st.composite
def user_conditions(draw: Any) -> Condition:
    if draw(st.booleans()):
        return Condition(
            _ref("CurrentUser", "MEMBERSHIP"),
            draw(st.sampled_from(["IN", "NOT IN"])),
            Values((draw(st.sampled_from(MEMBERSHIPS)),)),
        )
    return Condition(
        _ref("CurrentUser", "AGE"),
        draw(st.sampled_from(CMP)),
        Values((float(draw(st.integers(10, 60))),)),
    )


@st.composite
def expressions(draw: Any) -> Expression:
    conditions = interaction_conditions() if draw(st.booleans()) else item_conditions()
    groups = draw(
        st.lists(st.lists(conditions, min_size=1, max_size=3).map(tuple), min_size=1, max_size=2)
    )
    when = tuple(draw(st.lists(user_conditions(), max_size=2)))
    return Expression(draw(st.sampled_from(["INCLUDE", "EXCLUDE"])), "ItemID", tuple(groups), when)


filters = st.lists(expressions(), min_size=1, max_size=3).map(lambda e: FilterExpression(tuple(e)))


# -- the plain interpreter ----------------------------------------------------------------


def _num(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except ValueError:
        return None


def _holds(op: str, value: Any, wanted: list[Any], event_type: bool = False) -> bool:
    """One value against a condition, by the spec's words, without any index."""
    if op in ("IN", "NOT IN") or (
        op in ("=", "!=") and (_num(value) is None or _num(wanted[0]) is None)
    ):
        if value is None:
            return op in ("NOT IN", "!=")
        tokens = str(value).split("|") if not isinstance(value, float) else [_fmt(value)]
        wanted_s = [_fmt(w) if isinstance(w, float) else str(w) for w in wanted]
        if event_type:
            hit = "*" in wanted_s or str(value).lower() in {w.lower() for w in wanted_s}
        else:
            hit = any(t in wanted_s for t in tokens)
        return hit == (op in ("IN", "="))
    left, right = _num(value), _num(wanted[0])
    if left is None or right is None or math.isnan(left):
        return False
    return {
        "=": left == right,
        "!=": left != right,
        "<": left < right,
        "<=": left <= right,
        ">": left > right,
        ">=": left >= right,
    }[op]


def _fmt(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _wanted(
    c: Condition, values: dict[str, list[str]], catalogue: list[dict[str, Any]], current: int
) -> list[Any] | None:
    if isinstance(c.right, Param):
        return values.get(c.right.name)
    if isinstance(c.right, FieldRef):
        raw = catalogue[current][c.right.field]
        if raw is None:
            return []
        return raw.split("|") if c.op == "IN" else [raw]
    return list(c.right.items)


def interpret(
    tree: FilterExpression,
    catalogue: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    user: dict[str, Any],
    values: dict[str, list[str]],
    current: int,
) -> list[bool] | None:
    include: set[int] | None = None
    exclude: set[int] | None = None
    for e in tree.expressions:

        def bound(c: Condition) -> bool:
            return not isinstance(c.right, Param) or c.right.name in values

        if e.action == "INCLUDE" and not all(bound(c) for c in e.conditions()):
            raise InvalidInputException("missing value")
        groups = [[c for c in g if bound(c)] for g in e.where]
        groups = [g for g in groups if g]
        if not groups:
            continue
        if not all(
            _holds(c.op, user.get(c.left.field), _wanted(c, values, catalogue, current) or [None])
            for c in e.when
            if bound(c)
        ):
            continue
        matched = set()
        for i, item in enumerate(catalogue):
            for g in groups:
                if g[0].left.dataset == "Interactions":
                    ok = any(
                        r["item"] == i
                        and all(
                            _holds(
                                c.op,
                                r[c.left.field],
                                _wanted(c, values, catalogue, current) or [None],
                                event_type=c.left.field == "EVENT_TYPE",
                            )
                            for c in g
                        )
                        for r in rows
                    )
                else:
                    ok = all(_item_holds(c, item, values, catalogue, current) for c in g)
                if ok:
                    matched.add(i)
                    break
        if e.action == "INCLUDE":
            include = matched | (include or set())
        else:
            exclude = matched | (exclude or set())
    if include is None and exclude is None:
        return None
    return [
        (include is None or i in include) and not (exclude and i in exclude)
        for i in range(len(catalogue))
    ]


def _item_holds(
    c: Condition,
    item: dict[str, Any],
    values: dict[str, list[str]],
    catalogue: list[dict[str, Any]],
    current: int,
) -> bool:
    wanted = _wanted(c, values, catalogue, current)
    if isinstance(c.right, FieldRef) and not wanted:
        return False
    return _holds(c.op, item[c.left.field.upper()], wanted or [None])


# -- the property --------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_compiled_masks_match_the_interpreter(data: Any) -> None:
    catalogue = data.draw(catalogues())
    tree = data.draw(filters)
    assert parse(render(tree)) == tree
    rows = data.draw(interactions(len(catalogue)))
    user = data.draw(
        st.fixed_dictionaries(
            {"MEMBERSHIP": st.sampled_from(MEMBERSHIPS), "AGE": st.integers(10, 60).map(str)}
        )
    )
    values: dict[str, list[str]] = {}
    for name, pool in (
        ("CATP", CATS),
        ("CATQ", CATS),
        ("PRICEP", [str(v) for v in range(21)]),
        ("EVENTS", EVENTS),
    ):
        if data.draw(st.booleans()):
            count = 1 if name == "PRICEP" else data.draw(st.integers(1, 2))
            values[name] = data.draw(
                st.lists(st.sampled_from(pool), min_size=count, max_size=count)
            )
    current = data.draw(st.integers(0, len(catalogue) - 1))
    table = ItemTable(
        pl.DataFrame(catalogue, schema={"CAT": pl.String, "PRICE": pl.Float64, "COUNT": pl.Int64}),
        len(catalogue),
    )
    request = Request(
        values={k: tuple(v) for k, v in values.items()},
        rows=Rows(
            items=np.array([r["item"] for r in rows], dtype=np.int64),
            columns={
                "EVENTTYPE": [r["EVENT_TYPE"] for r in rows],
                "EVENTVALUE": [r["EVENT_VALUE"] for r in rows],
            },
        ),
        user={"MEMBERSHIP": user["MEMBERSHIP"], "AGE": user["AGE"]},
        current_item=current,
    )
    try:
        expected = interpret(tree, catalogue, rows, user, values, current)
    except InvalidInputException:
        with pytest.raises(InvalidInputException):
            allowed_items(tree, table, request)
        return
    got = allowed_items(tree, table, request)
    # Twice: the second call answers from the cached masks.
    again = allowed_items(tree, table, request)
    if expected is None:
        assert got is None and again is None
    else:
        assert got is not None and again is not None
        assert got.tolist() == expected, render(tree)
        assert again.tolist() == expected

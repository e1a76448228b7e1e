"""Table tests of the filter language: expressions and their trees, invalid expressions
and their exact messages, static validation against schemas, filterValues decoding."""

from __future__ import annotations

import json

import pytest

from pertinent.data.schema import parse_schema
from pertinent.errors import InvalidInputException
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
from pertinent.filters.validate import validate
from pertinent.filters.values import decode

ITEMS = FieldRef("Items", "GENRE")


def _one(
    action: str, *groups: tuple[Condition, ...], when: tuple[Condition, ...] = ()
) -> FilterExpression:
    return FilterExpression((Expression(action, "ItemID", tuple(groups), when),))  # type: ignore[arg-type]


TREES = [
    (
        'EXCLUDE ItemID WHERE Items.GENRE IN ("comedy", "drama")',
        _one("EXCLUDE", (Condition(ITEMS, "IN", Values(("comedy", "drama"))),)),
    ),
    (
        "include itemid where Items.GENRE not in ($G)",
        _one("INCLUDE", (Condition(ITEMS, "NOT IN", Param("G")),)),
    ),
    (
        "INCLUDE ItemID WHERE Items.PRICE <= $PRICE",
        _one("INCLUDE", (Condition(FieldRef("Items", "PRICE"), "<=", Param("PRICE")),)),
    ),
    (
        "INCLUDE ItemID WHERE Items.PRICE > (10.5)",
        None,  # a number in parentheses is not a scalar: refused below
    ),
    (
        'INCLUDE ItemID WHERE Items.A IN ("x") OR Items.B IN ("y") AND Items.C = 3',
        _one(
            "INCLUDE",
            (Condition(FieldRef("Items", "A"), "IN", Values(("x",))),),
            (
                Condition(FieldRef("Items", "B"), "IN", Values(("y",))),
                Condition(FieldRef("Items", "C"), "=", Values((3.0,))),
            ),
        ),
    ),
    (
        "EXCLUDE ItemID WHERE Items.GENRE IN ($GENRE) IF CurrentUser.AGE = $AGE",
        _one(
            "EXCLUDE",
            (Condition(ITEMS, "IN", Param("GENRE")),),
            when=(Condition(FieldRef("CurrentUser", "AGE"), "=", Param("AGE")),),
        ),
    ),
    (
        "INCLUDE ItemID WHERE Items.GENRE IN CurrentItem.GENRE",
        _one("INCLUDE", (Condition(ITEMS, "IN", FieldRef("CurrentItem", "GENRE")),)),
    ),
    (
        'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN (*, "click")',
        _one(
            "EXCLUDE",
            (Condition(FieldRef("Interactions", "EVENT_TYPE"), "IN", Values(("*", "click"))),),
        ),
    ),
]


@pytest.mark.parametrize(("text", "tree"), [t for t in TREES if t[1] is not None])
def test_expressions_parse_to_their_trees(text: str, tree: FilterExpression) -> None:
    assert parse(text) == tree
    assert parse(render(tree)) == tree


def test_expressions_joined_with_bars() -> None:
    tree = parse(
        "INCLUDE ItemID WHERE Items.GENRE IN ($GENRE) | "
        'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click", "stream")'
    )
    assert [e.action for e in tree.expressions] == ["INCLUDE", "EXCLUDE"]
    assert tree.params() == ("GENRE",)


ERRORS = [
    ("", "Could not create filter. The expression ends too early. Expected INCLUDE or EXCLUDE."),
    (
        "INCLUDE ItemID Items.GENRE IN ($G)",
        "Could not create filter. Invalid input symbol 'Items' at line 1, column 16. "
        "Expected WHERE.",
    ),
    (
        "INCLUDE ItemID WHERE Items.PRICE > (10.5)",
        "Could not create filter. Invalid input symbol '10.5' at line 1, column 37. "
        "Expected a $PLACEHOLDER.",
    ),
    (
        'INCLUDE ItemID WHERE Items.GENRE IN ("a"',
        'Could not create filter. The expression ends too early. Expected ")" or ",".',
    ),
    (
        'INCLUDE ItemID WHERE Items.GENRE IN ("a") IF CurrentUser.A = 1 IF CurrentUser.B = 2',
        "Could not create filter. Invalid input symbol 'IF' at line 1, column 64. "
        'Expected "|" or AND or the end of the expression.',
    ),
    (
        "SHOW ItemID WHERE Items.GENRE IN ($G)",
        "Could not create filter. Invalid input symbol 'SHOW' at line 1, column 1. "
        "Expected INCLUDE or EXCLUDE.",
    ),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_invalid_expressions_and_their_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidInputException) as info:
        parse(text)
    assert info.value.message == message


def _schema(*fields: dict[str, object]) -> str:
    return json.dumps(
        {
            "type": "record",
            "name": "R",
            "namespace": "com.amazonaws.personalize.schema",
            "fields": list(fields),
            "version": "1.0",
        }  # fmt: skip
    )


SCHEMAS = {
    "ITEMS": parse_schema(
        _schema(
            {"name": "ITEM_ID", "type": "string"},
            {"name": "GENRE", "type": "string", "categorical": True},
            {"name": "PRICE", "type": "float"},
            {"name": "IN_STOCK", "type": "boolean"},
            {"name": "DESCRIPTION", "type": "string", "textual": True},
        )
    ),
    "INTERACTIONS": parse_schema(
        _schema(
            {"name": "USER_ID", "type": "string"},
            {"name": "ITEM_ID", "type": "string"},
            {"name": "EVENT_TYPE", "type": "string"},
            {"name": "TIMESTAMP", "type": "long"},
        )
    ),
}

INVALID = [
    (
        'INCLUDE ItemID WHERE Items.COLOR IN ("red")',
        "Items.COLOR is not a field of the ITEMS schema",
    ),
    ('INCLUDE ItemID WHERE Items.DESCRIPTION IN ("x")', "textual field"),
    ('INCLUDE ItemID WHERE Items.IN_STOCK IN ("true")', "boolean"),
    ("INCLUDE ItemID WHERE Items.GENRE > 3", "needs a numeric field"),
    ('INCLUDE ItemID WHERE Items.PRICE < "cheap"', "needs a number"),
    ('INCLUDE ItemID WHERE Items.PRICE IN ("1")', "compare it with <"),
    (
        "INCLUDE ItemID WHERE Items.GENRE IN (*)",
        '"*" can only be used with Interactions.EVENT_TYPE',
    ),
    ("INCLUDE ItemID WHERE Users.AGE > 3", "can use Items or Interactions in WHERE, not Users"),
    ('INCLUDE ItemID WHERE Items.GENRE IN ("a") IF CurrentUser.AGE > 3', "no Users dataset"),
    (
        'INCLUDE ItemID WHERE Items.GENRE IN ("a") OR Interactions.EVENT_TYPE IN ("x")',
        "must use the same dataset (Items)",
    ),
    (
        'INCLUDE ItemID WHERE Items.GENRE IN ("a") | INCLUDE UserID WHERE Items.GENRE IN ("a")',
        "must filter the same thing",
    ),
    ('INCLUDE ItemID WHERE Interactions.USER_ID IN ("u")', "drop USER_ID"),
    ("INCLUDE ItemID WHERE Items.GENRE IN Items.GENRE", "only as CurrentItem.FIELD"),
]


@pytest.mark.parametrize(("text", "fragment"), INVALID)
def test_static_validation(text: str, fragment: str) -> None:
    with pytest.raises(InvalidInputException) as info:
        validate(parse(text), SCHEMAS)
    assert fragment in info.value.message
    assert info.value.message.startswith("Could not create filter.")


def test_validation_returns_the_fields_used() -> None:
    tree = parse(
        "EXCLUDE ItemID WHERE Items.genre IN ($G) AND Items.PRICE < CurrentItem.PRICE | "
        "EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN (*)"
    )
    assert validate(tree, SCHEMAS) == (
        ("ITEMS", "GENRE"), ("ITEMS", "PRICE"), ("INTERACTIONS", "EVENT_TYPE"),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "values"),
    [
        ('"comedy"', ("comedy",)),
        ('"comedy","drama", "horror"', ("comedy", "drama", "horror")),
        ('"a, b"', ("a, b",)),
        ('"say \\"hi\\""', ('say "hi"',)),
        ("10", ("10",)),
        ('"10"', ("10",)),
    ],
)
def test_filter_values_decode(raw: str, values: tuple[str, ...]) -> None:
    assert decode("P", raw) == values


@pytest.mark.parametrize("raw", ["", '"a",', '"a" "b"', "a,b", '"a'])
def test_malformed_filter_values(raw: str) -> None:
    with pytest.raises(InvalidInputException) as info:
        decode("P", raw)
    assert 'filterValues["P"]' in info.value.message

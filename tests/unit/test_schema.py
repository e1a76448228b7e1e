"""Avro schema parsing and the per-dataset-type rules (spec §4.2, §7.2-7.5)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pertinent.data.schema import (
    DatasetSchema,
    Field,
    SchemaError,
    canonical_dataset_type,
    check_schema_for_dataset,
    parse_schema,
)


def avro(fields: list[dict[str, Any]], name: str = "Interactions", **extra: Any) -> str:
    doc = {"type": "record", "name": name, "namespace": "com.amazonaws.personalize.schema"}
    return json.dumps({**doc, "fields": fields, "version": "1.0", **extra})


def f(name: str, type_: Any = "string", **attrs: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **attrs}


INTERACTIONS = [f("USER_ID"), f("ITEM_ID"), f("TIMESTAMP", "long")]


# --- dataset types ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Interactions", "INTERACTIONS"),
        ("interactions", "INTERACTIONS"),
        ("ITEMS", "ITEMS"),
        ("Users", "USERS"),
        ("Actions", "ACTIONS"),
        ("Action_Interactions", "ACTION_INTERACTIONS"),
        ("action_interactions", "ACTION_INTERACTIONS"),
    ],
)
def test_canonical_dataset_type(value: str, expected: str) -> None:
    assert canonical_dataset_type(value) == expected


@pytest.mark.parametrize("value", ["", "Interaction", "ActionInteractions", "EVENTS", "items "])
def test_canonical_dataset_type_rejects(value: str) -> None:
    with pytest.raises(ValueError) as err:
        canonical_dataset_type(value)
    assert str(err.value) == (
        f"Invalid dataset type {value!r}. Valid dataset types: "
        "Interactions, Items, Users, Actions, Action_Interactions."
    )


# --- parsing ----------------------------------------------------------------------------


def test_parse_keeps_fields_in_order_with_attributes() -> None:
    text = avro(
        [
            f("USER_ID"),
            f("ITEM_ID"),
            f("EVENT_VALUE", ["float", "null"]),
            f("DEVICE", ["null", "string"], categorical=True),
            f("TIMESTAMP", "long"),
            f("AGE", ["int"]),
        ]
    )
    schema = parse_schema(text)
    assert schema == DatasetSchema(
        fields=(
            Field("USER_ID", "string", nullable=False),
            Field("ITEM_ID", "string", nullable=False),
            Field("EVENT_VALUE", "float", nullable=True),
            Field("DEVICE", "string", nullable=True, categorical=True),
            Field("TIMESTAMP", "long", nullable=False),
            Field("AGE", "int", nullable=False),
        ),
        record_name="Interactions",
        text=text,
    )
    assert schema.names == ("USER_ID", "ITEM_ID", "EVENT_VALUE", "DEVICE", "TIMESTAMP", "AGE")


def test_parse_item_attributes() -> None:
    schema = parse_schema(
        avro(
            [
                f("ITEM_ID"),
                f("TITLE", itemName=True),
                f("DESCRIPTION", ["null", "string"], textual=True),
                f("PRICE", "double"),
                f("ADULT", "boolean"),
            ],
            name="Items",
        )
    )
    assert schema.field("TITLE") == Field("TITLE", "string", nullable=False, item_name=True)
    assert schema.field("description") == Field(
        "DESCRIPTION", "string", nullable=True, textual=True
    )
    assert schema.field("PRICE") == Field("PRICE", "double", nullable=False)


@pytest.mark.parametrize("name", ["USER_ID", "user_id", "UserId", "USERID", "_user_id_"])
def test_field_lookup_ignores_case_and_underscores(name: str) -> None:
    schema = parse_schema(avro(INTERACTIONS))
    assert schema.field(name) == Field("USER_ID", "string", nullable=False)


def test_field_lookup_missing() -> None:
    assert parse_schema(avro(INTERACTIONS)).field("EVENT_TYPE") is None


UNSUPPORTED = (
    ". Use one of string, int, long, float, double, boolean, or a union of one of them with "
    '"null" such as ["null", "string"]; arrays, maps, enums and nested records are not supported.'
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "{not json",
            "Schema is not valid JSON: Expecting property name enclosed in double "
            "quotes at line 1.",
        ),
        ("[]", 'Schema must be an Avro record: a JSON object with "type": "record".'),
        (
            json.dumps({"type": "enum", "name": "X", "symbols": ["a"]}),
            'Schema must be an Avro record: a JSON object with "type": "record".',
        ),
        (
            json.dumps({"type": "record", "fields": INTERACTIONS}),
            'Schema record must have a "name", e.g. "Interactions".',
        ),
        (
            json.dumps({"type": "record", "name": "Interactions"}),
            'Schema record must have a non-empty "fields" list.',
        ),
        (avro([]), 'Schema record must have a non-empty "fields" list.'),
        (avro(["USER_ID"]), "Field 1 must be a JSON object with a name and a type."),
        (
            avro([f("USER_ID"), {"type": "string"}]),
            "Field 2 has an invalid name None: use letters, digits and underscores, "
            "starting with a letter or underscore.",
        ),
        (
            avro([f("USER-ID")]),
            "Field 1 has an invalid name 'USER-ID': use letters, digits and underscores, "
            "starting with a letter or underscore.",
        ),
        (avro([{"name": "USER_ID"}]), 'Field "USER_ID" has no "type".'),
        (
            avro([f("TAGS", {"type": "array", "items": "string"})]),
            'Field "TAGS" has unsupported type {"type": "array", "items": "string"}' + UNSUPPORTED,
        ),
        (avro([f("X", "bytes")]), 'Field "X" has unsupported type "bytes"' + UNSUPPORTED),
        (avro([f("X", "null")]), 'Field "X" has unsupported type "null"' + UNSUPPORTED),
        (
            avro([f("X", ["null", "string", "int"])]),
            'Field "X" has unsupported type ["null", "string", "int"]' + UNSUPPORTED,
        ),
        (
            avro([f("X", ["null", "null"])]),
            'Field "X" has unsupported type ["null", "null"]' + UNSUPPORTED,
        ),
        (avro([f("X", [])]), 'Field "X" has unsupported type []' + UNSUPPORTED),
        (avro([f("X", "String")]), 'Field "X" has unsupported type "String"' + UNSUPPORTED),
        (
            avro([f("GENRES_1"), f("GENRES1")]),
            'Field names "GENRES_1" and "GENRES1" collide: names are compared ignoring case and '
            "underscores.",
        ),
        (
            avro([f("Genre"), f("GENRE")]),
            'Field names "Genre" and "GENRE" collide: names are compared ignoring case and '
            "underscores.",
        ),
        (
            avro([f("PRICE", "float", categorical=True)]),
            'Field "PRICE" is categorical but of type float; '
            "only string fields can be categorical.",
        ),
        (
            avro([f("N", "int", textual=True)]),
            'Field "N" is textual but of type int; only string fields can be textual.',
        ),
        (
            avro([f("N", "long", itemName=True)]),
            'Field "N" is itemName but of type long; only string fields can be itemName.',
        ),
        (avro([f("G", categorical="yes")]), 'Field "G": "categorical" must be true or false.'),
        (
            avro([f("G", categorical=True, textual=True)]),
            'Field "G" cannot be both categorical and textual.',
        ),
        ("{" + " " * 20_000 + "}", "Schema is 20002 characters long; the maximum is 20000."),
    ],
)
def test_parse_rejects(text: str, message: str) -> None:
    with pytest.raises(SchemaError) as err:
        parse_schema(text)
    assert str(err.value) == message


def test_schema_error_is_value_error() -> None:
    assert issubclass(SchemaError, ValueError)


# --- per dataset type -------------------------------------------------------------------

VALID: list[tuple[str, list[dict[str, Any]], str, str | None]] = [
    ("Interactions", INTERACTIONS, "INTERACTIONS", None),
    (
        "Interactions",
        [
            f("USER_ID"),
            f("ITEM_ID"),
            f("EVENT_TYPE"),
            f("EVENT_VALUE", ["float", "null"]),
            f("LOCATION", categorical=True),
            f("DEVICE", ["string", "null"], categorical=True),
            f("TIMESTAMP", "long"),
            f("IMPRESSION"),
            f("RECOMMENDATION_ID", ["null", "string"]),
            f("EVENT_ATTRIBUTION_SOURCE", ["null", "string"]),
        ],
        "Interactions",
        None,
    ),
    # 5 metadata fields is the maximum; reserved fields do not count.
    (
        "Interactions",
        INTERACTIONS + [f(f"M{i}", "int") for i in range(5)] + [f("EVENT_TYPE")],
        "INTERACTIONS",
        None,
    ),
    ("Users", [f("USER_ID"), f("AGE", "int"), f("GENDER", categorical=True)], "USERS", None),
    ("Users", [f("USER_ID")] + [f(f"M{i}", "int") for i in range(25)], "USERS", None),
    (
        "Items",
        [
            f("ITEM_ID"),
            f("GENRES", ["null", "string"], categorical=True),
            f("CREATION_TIMESTAMP", "long"),
        ],
        "ITEMS",
        None,
    ),
    (
        "Items",
        [f("ITEM_ID"), f("TITLE", itemName=True), f("DESC", ["null", "string"], textual=True)],
        "Items",
        None,
    ),
    ("Items", [f("ITEM_ID")] + [f(f"M{i}", "float") for i in range(100)], "ITEMS", None),
    (
        "Actions",
        [f("ACTION_ID"), f("VALUE", ["null", "long"]), f("CREATION_TIMESTAMP", "long")],
        "ACTIONS",
        None,
    ),
    ("Actions", [f("ACTION_ID"), f("CATEGORY", categorical=True)], "Actions", None),
    (
        "ActionInteractions",
        [
            f("USER_ID"),
            f("ACTION_ID"),
            f("EVENT_TYPE"),
            f("TIMESTAMP", "long"),
            f("IMPRESSION", ["null", "string"]),
        ],
        "Action_Interactions",
        None,
    ),
    (
        "Action_Interactions",
        [f("USER_ID"), f("ACTION_ID"), f("EVENT_TYPE"), f("TIMESTAMP", "long")],
        "ACTION_INTERACTIONS",
        None,
    ),
    (
        "Interactions",
        [f("USER_ID"), f("ITEM_ID"), f("EVENT_TYPE"), f("TIMESTAMP", "long")],
        "INTERACTIONS",
        "ECOMMERCE",
    ),
    (
        "Items",
        [f("ITEM_ID"), f("PRICE", "float"), f("CATEGORY_L1", ["string"], categorical=True)],
        "ITEMS",
        "ECOMMERCE",
    ),
    (
        "Items",
        [
            f("ITEM_ID"),
            f("PRICE", "float"),
            f("CATEGORY_L1", categorical=True),
            f("CATEGORY_L2", categorical=True),
            f("PRODUCT_DESCRIPTION", textual=True),
            f("CREATION_TIMESTAMP", "long"),
            f("BRAND", categorical=True),
        ],
        "ITEMS",
        "ECOMMERCE",
    ),
    ("Users", [f("USER_ID"), f("AGE", "int")], "USERS", "ECOMMERCE"),
    (
        "Items",
        [f("ITEM_ID"), f("GENRES", categorical=True), f("CREATION_TIMESTAMP", "long")],
        "ITEMS",
        "VIDEO_ON_DEMAND",
    ),
    # The guide's own default VIDEO_ON_DEMAND Items schema spells it GENRES_L1.
    (
        "Items",
        [
            f("ITEM_ID"),
            f("GENRES_L1", ["string"], categorical=True),
            f("CREATION_TIMESTAMP", "long"),
        ],
        "ITEMS",
        "VIDEO_ON_DEMAND",
    ),
    (
        "Users",
        [f("USER_ID"), f("SUBSCRIPTION_MODEL", categorical=True)],
        "USERS",
        "VIDEO_ON_DEMAND",
    ),
]


@pytest.mark.parametrize(("record", "fields", "dataset_type", "domain"), VALID)
def test_valid_for_dataset(
    record: str, fields: list[dict[str, Any]], dataset_type: str, domain: str | None
) -> None:
    check_schema_for_dataset(parse_schema(avro(fields, name=record)), dataset_type, domain)


INVALID: list[tuple[str, list[dict[str, Any]], str, str | None, str]] = [
    (
        "Interactions",
        [f("USER_ID"), f("ITEM_ID")],
        "INTERACTIONS",
        None,
        'Schema for dataset type INTERACTIONS is missing the required field "TIMESTAMP" (long).',
    ),
    (
        "Interactions",
        [f("USER_ID"), f("ITEM_ID"), f("TIMESTAMP")],
        "INTERACTIONS",
        None,
        'Field "TIMESTAMP" must be of type long, got string.',
    ),
    (
        "Interactions",
        [f("USER_ID", "int"), f("ITEM_ID"), f("TIMESTAMP", "long")],
        "INTERACTIONS",
        None,
        'Field "USER_ID" must be of type string, got int.',
    ),
    (
        "Interactions",
        [f("USER_ID", ["null", "string"]), f("ITEM_ID"), f("TIMESTAMP", "long")],
        "INTERACTIONS",
        None,
        'Field "USER_ID" is required and must not be nullable: use "string", not '
        '["null", "string"].',
    ),
    (
        "Interactions",
        [*INTERACTIONS, f("EVENT_TYPE", categorical=True)],
        "INTERACTIONS",
        None,
        'Field "EVENT_TYPE" is a reserved field and must not be categorical.',
    ),
    (
        "Interactions",
        [f("USER_ID", categorical=True), f("ITEM_ID"), f("TIMESTAMP", "long")],
        "INTERACTIONS",
        None,
        'Field "USER_ID" is a reserved field and must not be categorical.',
    ),
    (
        "Interactions",
        [*INTERACTIONS, f("EVENT_VALUE", "double")],
        "INTERACTIONS",
        None,
        'Field "EVENT_VALUE" must be of type float, got double.',
    ),
    (
        "Interactions",
        [*INTERACTIONS, f("EVENT_TYPE", "int")],
        "INTERACTIONS",
        None,
        'Field "EVENT_TYPE" must be of type string, got int.',
    ),
    (
        "Interactions",
        INTERACTIONS + [f(f"M{i}", "int") for i in range(6)],
        "INTERACTIONS",
        None,
        "Schema for dataset type INTERACTIONS has 6 metadata fields (M0, M1, M2, M3, M4, M5); the "
        "maximum is 5, not counting reserved fields.",
    ),
    (
        "Interactions",
        [*INTERACTIONS, f("NOTE", textual=True)],
        "INTERACTIONS",
        None,
        'Field "NOTE" is textual; textual fields are allowed only in Items datasets.',
    ),
    (
        "Interactions",
        [*INTERACTIONS, f("TITLE", itemName=True)],
        "INTERACTIONS",
        None,
        'Field "TITLE" has itemName; it is allowed only in Items datasets.',
    ),
    (
        "Items",
        INTERACTIONS,
        "INTERACTIONS",
        None,
        'Schema record name "Items" does not match the dataset type INTERACTIONS: name the '
        'record "Interactions".',
    ),
    (
        "Users",
        [f("USER_ID")],
        "USERS",
        None,
        "Schema for dataset type USERS needs USER_ID and at least 1 metadata field.",
    ),
    (
        "Users",
        [f("USER_ID")] + [f(f"M{i}", "int") for i in range(26)],
        "USERS",
        None,
        "Schema for dataset type USERS has 26 metadata fields ("
        + ", ".join(f"M{i}" for i in range(26))
        + "); the maximum is 25, not counting reserved fields.",
    ),
    (
        "Users",
        [f("USER_ID"), f("BIO", textual=True)],
        "USERS",
        None,
        'Field "BIO" is textual; textual fields are allowed only in Items datasets.',
    ),
    (
        "Items",
        [f("ITEM_ID"), f("CREATION_TIMESTAMP", "long")],
        "ITEMS",
        None,
        "Schema for dataset type ITEMS needs ITEM_ID and at least 1 metadata field.",
    ),
    (
        "Items",
        [f("ITEM_ID"), f("CREATION_TIMESTAMP", "int"), f("G", categorical=True)],
        "ITEMS",
        None,
        'Field "CREATION_TIMESTAMP" must be of type long, got int.',
    ),
    (
        "Items",
        [f("ITEM_ID"), f("A", textual=True), f("B", textual=True)],
        "ITEMS",
        None,
        "Schema has 2 textual fields (A, B); an Items dataset allows at most 1.",
    ),
    (
        "Items",
        [f("ITEM_ID"), f("A", itemName=True), f("B", itemName=True)],
        "ITEMS",
        None,
        "Schema has 2 itemName fields; at most 1 is allowed.",
    ),
    (
        "Items",
        [f("ITEM_ID")] + [f(f"M{i}", "int") for i in range(101)],
        "ITEMS",
        None,
        "Schema for dataset type ITEMS has 101 metadata fields ("
        + ", ".join(f"M{i}" for i in range(101))
        + "); the maximum is 100, not counting reserved fields.",
    ),
    (
        "Actions",
        [f("ACTION_ID")],
        "ACTIONS",
        None,
        "Schema for dataset type ACTIONS needs ACTION_ID and at least 1 metadata field.",
    ),
    (
        "Actions",
        [f("ACTION_ID"), f("VALUE", "float")],
        "ACTIONS",
        None,
        'Field "VALUE" must be of type long, got float.',
    ),
    (
        "Action_Interactions",
        [f("USER_ID"), f("ACTION_ID"), f("TIMESTAMP", "long")],
        "ACTION_INTERACTIONS",
        None,
        'Schema for dataset type ACTION_INTERACTIONS is missing the required field "EVENT_TYPE" '
        "(string).",
    ),
    (
        "Interactions",
        INTERACTIONS,
        "INTERACTIONS",
        "ECOMMERCE",
        "Schema for dataset type INTERACTIONS in the ECOMMERCE domain is missing the required "
        'field "EVENT_TYPE" (string).',
    ),
    (
        "Items",
        [f("ITEM_ID"), f("CATEGORY_L1", categorical=True)],
        "ITEMS",
        "ECOMMERCE",
        "Schema for dataset type ITEMS in the ECOMMERCE domain is missing the required field "
        '"PRICE" (float).',
    ),
    (
        "Items",
        [f("ITEM_ID"), f("PRICE", "float"), f("CATEGORY_L1")],
        "ITEMS",
        "ECOMMERCE",
        'Field "CATEGORY_L1" must be a categorical string ("categorical": true).',
    ),
    (
        "Items",
        [
            f("ITEM_ID"),
            f("PRICE", "float"),
            f("CATEGORY_L1", categorical=True),
            f("PRODUCT_DESCRIPTION"),
        ],
        "ITEMS",
        "ECOMMERCE",
        'Field "PRODUCT_DESCRIPTION" must be textual ("textual": true).',
    ),
    (
        "Items",
        [f("ITEM_ID"), f("GENRES", categorical=True)],
        "ITEMS",
        "VIDEO_ON_DEMAND",
        "Schema for dataset type ITEMS in the VIDEO_ON_DEMAND domain is missing the required field "
        '"CREATION_TIMESTAMP" (long).',
    ),
    (
        "Items",
        [f("ITEM_ID"), f("CREATION_TIMESTAMP", "long")],
        "ITEMS",
        "VIDEO_ON_DEMAND",
        "Schema for dataset type ITEMS in the VIDEO_ON_DEMAND domain is missing the required "
        'field "GENRES" (string categorical).',
    ),
    (
        "Items",
        [
            f("ITEM_ID"),
            f("GENRES", categorical=True),
            f("CREATION_TIMESTAMP", "long"),
            f("PRICE", "int"),
        ],
        "ITEMS",
        "VIDEO_ON_DEMAND",
        'Field "PRICE" must be of type float, got int.',
    ),
    (
        "Actions",
        [f("ACTION_ID"), f("X", "int")],
        "ACTIONS",
        "ECOMMERCE",
        "The ECOMMERCE domain has no ACTIONS dataset; a domain dataset group takes Interactions, "
        "Items and Users datasets.",
    ),
    (
        "Interactions",
        INTERACTIONS,
        "INTERACTIONS",
        "RETAIL",
        "Invalid domain 'RETAIL'. Valid domains: ECOMMERCE, VIDEO_ON_DEMAND.",
    ),
]


@pytest.mark.parametrize(("record", "fields", "dataset_type", "domain", "message"), INVALID)
def test_invalid_for_dataset(
    record: str,
    fields: list[dict[str, Any]],
    dataset_type: str,
    domain: str | None,
    message: str,
) -> None:
    schema = parse_schema(avro(fields, name=record))
    with pytest.raises(SchemaError) as err:
        check_schema_for_dataset(schema, dataset_type, domain)
    assert str(err.value) == message


def test_unknown_dataset_type() -> None:
    with pytest.raises(ValueError, match="Invalid dataset type 'Events'"):
        check_schema_for_dataset(parse_schema(avro(INTERACTIONS)), "Events")

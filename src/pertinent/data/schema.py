"""Dataset schemas: Avro record JSON as Personalize defines it (spec §4.2, §7.2-7.5).

``parse_schema`` checks what any schema must satisfy (a flat Avro record of primitive
fields with unique names); ``check_schema_for_dataset`` checks what one dataset type,
optionally in a domain dataset group, asks of it. The per-type rules live in tables
below so that a rule the docs change is a one-line edit.

Field names are compared the way Personalize compares them: case- and
underscore-insensitively (``GENRES_1`` and ``GENRES1`` are the same name).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

DATASET_TYPES = ("INTERACTIONS", "ITEMS", "USERS", "ACTIONS", "ACTION_INTERACTIONS")
DOMAINS = ("ECOMMERCE", "VIDEO_ON_DEMAND")

FieldType = Literal["string", "int", "long", "float", "double", "boolean"]
FIELD_TYPES: tuple[FieldType, ...] = ("string", "int", "long", "float", "double", "boolean")

# CreateSchema's `schema` member is at most 20,000 characters (spec §4.2).
MAX_SCHEMA_CHARS = 20_000

_AVRO_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SchemaError(ValueError):
    """A schema Personalize would reject; the message says what to change."""


def canonical_dataset_type(value: str) -> str:
    """``"Interactions"`` -> ``"INTERACTIONS"``; ValueError for anything not a dataset type."""
    upper = value.upper() if isinstance(value, str) else ""
    if upper in DATASET_TYPES:
        return upper
    allowed = "Interactions, Items, Users, Actions, Action_Interactions"
    raise ValueError(f"Invalid dataset type {value!r}. Valid dataset types: {allowed}.")


def normalize_name(name: str) -> str:
    """The key Personalize compares field names by: upper case, underscores dropped."""
    return name.upper().replace("_", "")


@dataclass(frozen=True)
class Field:
    name: str
    type: FieldType
    nullable: bool
    categorical: bool = False
    textual: bool = False
    item_name: bool = False


@dataclass(frozen=True)
class DatasetSchema:
    fields: tuple[Field, ...]
    record_name: str
    text: str

    def field(self, name: str) -> Field | None:
        """The field called ``name``, compared case- and underscore-insensitively."""
        key = normalize_name(name)
        for f in self.fields:
            if normalize_name(f.name) == key:
                return f
        return None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


def parse_schema(text: str) -> DatasetSchema:
    """Parse and check an Avro schema string; SchemaError says what is wrong."""
    if len(text) > MAX_SCHEMA_CHARS:
        raise SchemaError(
            f"Schema is {len(text)} characters long; the maximum is {MAX_SCHEMA_CHARS}."
        )
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"Schema is not valid JSON: {exc.msg} at line {exc.lineno}.") from None
    if not isinstance(doc, dict) or doc.get("type") != "record":
        raise SchemaError('Schema must be an Avro record: a JSON object with "type": "record".')
    record_name = doc.get("name")
    if not isinstance(record_name, str) or not _AVRO_NAME.match(record_name):
        raise SchemaError('Schema record must have a "name", e.g. "Interactions".')
    raw_fields = doc.get("fields")
    if not isinstance(raw_fields, list) or not raw_fields:
        raise SchemaError('Schema record must have a non-empty "fields" list.')

    fields: list[Field] = []
    seen: dict[str, str] = {}
    for position, raw in enumerate(raw_fields, start=1):
        field = _parse_field(raw, position)
        key = normalize_name(field.name)
        if key in seen:
            raise SchemaError(
                f'Field names "{seen[key]}" and "{field.name}" collide: names are compared '
                "ignoring case and underscores."
            )
        seen[key] = field.name
        fields.append(field)
    return DatasetSchema(fields=tuple(fields), record_name=record_name, text=text)


def _parse_field(raw: Any, position: int) -> Field:
    if not isinstance(raw, dict):
        raise SchemaError(f"Field {position} must be a JSON object with a name and a type.")
    name = raw.get("name")
    if not isinstance(name, str) or not _AVRO_NAME.match(name):
        raise SchemaError(
            f"Field {position} has an invalid name {name!r}: use letters, digits and "
            "underscores, starting with a letter or underscore."
        )
    if "type" not in raw:
        raise SchemaError(f'Field "{name}" has no "type".')
    base, nullable = _parse_type(name, raw["type"])
    flags: dict[str, bool] = {}
    for attr in ("categorical", "textual", "itemName"):
        value = raw.get(attr, False)
        if not isinstance(value, bool):
            raise SchemaError(f'Field "{name}": "{attr}" must be true or false.')
        if value and base != "string":
            raise SchemaError(
                f'Field "{name}" is {attr} but of type {base}; only string fields can be {attr}.'
            )
        flags[attr] = value
    if flags["categorical"] and flags["textual"]:
        raise SchemaError(f'Field "{name}" cannot be both categorical and textual.')
    return Field(
        name=name,
        type=base,
        nullable=nullable,
        categorical=flags["categorical"],
        textual=flags["textual"],
        item_name=flags["itemName"],
    )


def _parse_type(name: str, raw: Any) -> tuple[FieldType, bool]:
    """A primitive type, or a union of one primitive with "null" (either order)."""
    members = raw if isinstance(raw, list) else [raw]
    if all(isinstance(m, str) for m in members):
        non_null = [m for m in members if m != "null"]
        nulls = len(members) - len(non_null)
        if len(non_null) == 1 and nulls <= 1 and non_null[0] in FIELD_TYPES:
            return cast(FieldType, non_null[0]), nulls == 1
    allowed = ", ".join(FIELD_TYPES)
    raise SchemaError(
        f'Field "{name}" has unsupported type {json.dumps(raw)}. Use one of {allowed}, '
        'or a union of one of them with "null" such as ["null", "string"]; '
        "arrays, maps, enums and nested records are not supported."
    )


# --- per dataset type rules (spec §7.3, §7.5) -------------------------------------------


@dataclass(frozen=True)
class FieldRule:
    """A required or reserved field: its name, allowed types and attributes.

    ``categorical`` / ``textual``: True means must be, False must not be, None either.
    """

    name: str
    types: tuple[FieldType, ...]
    required: bool = False
    nullable_ok: bool = True
    categorical: bool | None = False
    textual: bool | None = False
    aliases: tuple[str, ...] = ()

    def matches(self, field_name: str) -> bool:
        key = normalize_name(field_name)
        return any(normalize_name(n) == key for n in (self.name, *self.aliases))


@dataclass(frozen=True)
class DatasetRules:
    fields: tuple[FieldRule, ...]
    min_metadata: int
    max_metadata: int
    max_textual: int = 0
    # Actions count their reserved fields towards "ACTION_ID + at least one field".
    reserved_count_as_metadata: bool = False


def _id(name: str) -> FieldRule:
    return FieldRule(name, ("string",), required=True, nullable_ok=False)


def _ts(name: str, *, required: bool = False) -> FieldRule:
    return FieldRule(name, ("long",), required=required, nullable_ok=not required)


def _str(name: str, *, required: bool = False) -> FieldRule:
    return FieldRule(name, ("string",), required=required, nullable_ok=not required)


def _cat(name: str, *, required: bool = False, aliases: tuple[str, ...] = ()) -> FieldRule:
    return FieldRule(name, ("string",), required=required, categorical=True, aliases=aliases)


def _num(name: str, *, required: bool = False) -> FieldRule:
    return FieldRule(name, ("float",), required=required)


_INTERACTIONS_RESERVED = (
    _str("EVENT_TYPE"),
    _num("EVENT_VALUE"),
    _str("IMPRESSION"),
    _str("RECOMMENDATION_ID"),
    _str("EVENT_ATTRIBUTION_SOURCE"),
)

CUSTOM_RULES: Mapping[str, DatasetRules] = {
    "INTERACTIONS": DatasetRules(
        fields=(_id("USER_ID"), _id("ITEM_ID"), _ts("TIMESTAMP", required=True))
        + _INTERACTIONS_RESERVED,
        min_metadata=0,
        max_metadata=5,
    ),
    "USERS": DatasetRules(fields=(_id("USER_ID"),), min_metadata=1, max_metadata=25),
    "ITEMS": DatasetRules(
        fields=(_id("ITEM_ID"), _ts("CREATION_TIMESTAMP")),
        min_metadata=1,
        max_metadata=100,
        max_textual=1,
    ),
    "ACTIONS": DatasetRules(
        fields=(
            _id("ACTION_ID"),
            _ts("CREATION_TIMESTAMP"),
            FieldRule("VALUE", ("long",)),
            _str("TYPE"),
            # The current guide names this field both ways (spec §16.10).
            _ts("EXPIRATION_TIMESTAMP"),
            _ts("ACTION_EXPIRATION_TIMESTAMP"),
            FieldRule("REPEAT_FREQUENCY", ("long",)),
        ),
        min_metadata=1,
        max_metadata=10,
        reserved_count_as_metadata=True,
    ),
    "ACTION_INTERACTIONS": DatasetRules(
        fields=(
            _id("USER_ID"),
            _id("ACTION_ID"),
            _str("EVENT_TYPE", required=True),
            _ts("TIMESTAMP", required=True),
            _str("IMPRESSION"),
            _str("RECOMMENDATION_ID"),
        ),
        min_metadata=0,
        max_metadata=5,
    ),
}

_DOMAIN_INTERACTIONS = DatasetRules(
    fields=(
        _id("USER_ID"),
        _id("ITEM_ID"),
        _ts("TIMESTAMP", required=True),
        _str("EVENT_TYPE", required=True),
        *_INTERACTIONS_RESERVED[1:],
    ),
    min_metadata=0,
    max_metadata=5,
)

DOMAIN_RULES: Mapping[tuple[str, str], DatasetRules] = {
    ("ECOMMERCE", "INTERACTIONS"): _DOMAIN_INTERACTIONS,
    ("ECOMMERCE", "ITEMS"): DatasetRules(
        fields=(
            _id("ITEM_ID"),
            _num("PRICE", required=True),
            _cat("CATEGORY_L1", required=True),
            _cat("CATEGORY_L2"),
            _cat("CATEGORY_L3"),
            FieldRule("PRODUCT_DESCRIPTION", ("string",), textual=True),
            _ts("CREATION_TIMESTAMP"),
            _cat("AGE_GROUP"),
            _cat("ADULT"),
            _cat("GENDER"),
        ),
        min_metadata=0,
        max_metadata=100,
        max_textual=1,
    ),
    ("ECOMMERCE", "USERS"): CUSTOM_RULES["USERS"],
    ("VIDEO_ON_DEMAND", "INTERACTIONS"): _DOMAIN_INTERACTIONS,
    ("VIDEO_ON_DEMAND", "ITEMS"): DatasetRules(
        fields=(
            _id("ITEM_ID"),
            # The guide's own default schema spells it GENRES_L1.
            _cat("GENRES", required=True, aliases=("GENRES_L1",)),
            _ts("CREATION_TIMESTAMP", required=True),
            _num("PRICE"),
            _num("DURATION"),
            _num("AVERAGE_RATING"),
            _cat("GENRE_L2"),
            _cat("GENRE_L3"),
            _cat("CONTENT_OWNER"),
            _cat("CONTENT_CLASSIFICATION"),
            FieldRule("PRODUCT_DESCRIPTION", ("string",), textual=True),
        ),
        min_metadata=0,
        max_metadata=100,
        max_textual=1,
    ),
    ("VIDEO_ON_DEMAND", "USERS"): DatasetRules(
        fields=(_id("USER_ID"), _cat("SUBSCRIPTION_MODEL")),
        min_metadata=1,
        max_metadata=25,
        reserved_count_as_metadata=True,
    ),
}

RECORD_NAMES: Mapping[str, str] = {
    "INTERACTIONS": "Interactions",
    "ITEMS": "Items",
    "USERS": "Users",
    "ACTIONS": "Actions",
    "ACTION_INTERACTIONS": "ActionInteractions",
}


def rules_for(dataset_type: str, domain: str | None = None) -> DatasetRules:
    dataset_type = canonical_dataset_type(dataset_type)
    if domain is None:
        return CUSTOM_RULES[dataset_type]
    if domain not in DOMAINS:
        raise SchemaError(f"Invalid domain {domain!r}. Valid domains: {', '.join(DOMAINS)}.")
    rules = DOMAIN_RULES.get((domain, dataset_type))
    if rules is None:
        raise SchemaError(
            f"The {domain} domain has no {dataset_type} dataset; a domain dataset group "
            "takes Interactions, Items and Users datasets."
        )
    return rules


def check_schema_for_dataset(
    schema: DatasetSchema, dataset_type: str, domain: str | None = None
) -> None:
    """Raise SchemaError when ``schema`` cannot back a dataset of ``dataset_type``."""
    dataset_type = canonical_dataset_type(dataset_type)
    rules = rules_for(dataset_type, domain)
    label = f"dataset type {dataset_type}"
    if domain is not None:
        label += f" in the {domain} domain"

    if normalize_name(schema.record_name) != normalize_name(dataset_type):
        raise SchemaError(
            f'Schema record name "{schema.record_name}" does not match the dataset type '
            f'{dataset_type}: name the record "{RECORD_NAMES[dataset_type]}".'
        )

    metadata: list[Field] = []
    reserved_present: list[Field] = []
    for field in schema.fields:
        rule = next((r for r in rules.fields if r.matches(field.name)), None)
        if rule is None:
            metadata.append(field)
            continue
        _check_field(field, rule)
        if not rule.required:
            reserved_present.append(field)

    for rule in rules.fields:
        if rule.required and not any(rule.matches(f.name) for f in schema.fields):
            kind = " categorical" if rule.categorical else ""
            raise SchemaError(
                f'Schema for {label} is missing the required field "{rule.name}" '
                f"({'/'.join(rule.types)}{kind})."
            )

    counted = metadata + (reserved_present if rules.reserved_count_as_metadata else [])
    if len(counted) < rules.min_metadata:
        id_field = rules.fields[0].name
        raise SchemaError(
            f"Schema for {label} needs {id_field} and at least {rules.min_metadata} metadata field."
        )
    if len(metadata) > rules.max_metadata:
        names = ", ".join(f.name for f in metadata)
        raise SchemaError(
            f"Schema for {label} has {len(metadata)} metadata fields ({names}); "
            f"the maximum is {rules.max_metadata}, not counting reserved fields."
        )

    textual = [f.name for f in schema.fields if f.textual]
    if textual and rules.max_textual == 0:
        raise SchemaError(
            f'Field "{textual[0]}" is textual; textual fields are allowed only in Items datasets.'
        )
    if len(textual) > rules.max_textual:
        raise SchemaError(
            f"Schema has {len(textual)} textual fields ({', '.join(textual)}); "
            f"an Items dataset allows at most {rules.max_textual}."
        )
    item_names = [f.name for f in schema.fields if f.item_name]
    if item_names and dataset_type != "ITEMS":
        raise SchemaError(
            f'Field "{item_names[0]}" has itemName; it is allowed only in Items datasets.'
        )
    if len(item_names) > 1:
        raise SchemaError(f"Schema has {len(item_names)} itemName fields; at most 1 is allowed.")


def _check_field(field: Field, rule: FieldRule) -> None:
    if field.type not in rule.types:
        raise SchemaError(
            f'Field "{field.name}" must be of type {" or ".join(rule.types)}, got {field.type}.'
        )
    if field.nullable and not rule.nullable_ok:
        raise SchemaError(
            f'Field "{field.name}" is required and must not be nullable: '
            f'use "{field.type}", not ["null", "{field.type}"].'
        )
    if rule.categorical is False and field.categorical:
        raise SchemaError(f'Field "{field.name}" is a reserved field and must not be categorical.')
    if rule.categorical is True and not field.categorical:
        raise SchemaError(
            f'Field "{field.name}" must be a categorical string ("categorical": true).'
        )
    if rule.textual is False and field.textual:
        raise SchemaError(f'Field "{field.name}" is a reserved field and must not be textual.')
    if rule.textual is True and not field.textual:
        raise SchemaError(f'Field "{field.name}" must be textual ("textual": true).')


def id_field_names(dataset_type: str) -> tuple[str, ...]:
    """The id fields of a dataset type (never empty, at most 256 characters)."""
    rules = CUSTOM_RULES[canonical_dataset_type(dataset_type)]
    return tuple(r.name for r in rules.fields if r.name.endswith("_ID") and r.required)

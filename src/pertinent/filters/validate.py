"""Static checks of a parsed filter against the dataset group's schemas (spec §10.2).

Everything that can be known without a request is checked at CreateFilter, so a
filter that was accepted fails at request time only for a missing or malformed value.
Each failure is an InvalidInputException whose message names the condition.
"""

from __future__ import annotations

from collections.abc import Mapping

from pertinent.data.schema import DatasetSchema, Field
from pertinent.errors import InvalidInputException
from pertinent.filters.grammar import (
    RANGE_OPERATORS,
    SET_OPERATORS,
    Condition,
    Expression,
    FieldRef,
    FilterExpression,
    Param,
    Values,
)

MAX_FIELDS_PER_FILTER = 10
MAX_FIELDS_PER_GROUP = 20

# The datasets a ``WHERE`` may name, for each target.
_DATASETS = {
    "ItemID": ("Items", "Interactions"),
    "UserID": ("Users", "Interactions", "Items"),
    "ActionID": ("Actions", "Action_Interactions"),
}
# The schema behind each name a filter can use.
_SCHEMA_OF = {
    "Items": "ITEMS",
    "Users": "USERS",
    "Interactions": "INTERACTIONS",
    "Actions": "ACTIONS",
    "Action_Interactions": "ACTION_INTERACTIONS",
    "CurrentUser": "USERS",
    "CurrentItem": "ITEMS",
}
_CANONICAL = {name.upper(): name for name in _SCHEMA_OF} | {"ACTION": "Actions"}
_NUMERIC = ("int", "long", "float", "double")


def _invalid(condition: Condition | None, message: str) -> InvalidInputException:
    where = "" if condition is None else f" In {_text(condition)}:"
    return InvalidInputException(f"Could not create filter. Invalid Expression.{where} {message}")


def _text(c: Condition) -> str:
    return f"{c.left.dataset}.{c.left.field} {c.op} ..."


def dataset_name(ref: FieldRef) -> str:
    """The canonical spelling of a reference's dataset (``items`` -> ``Items``)."""
    return _CANONICAL.get(ref.dataset.upper(), ref.dataset)


def validate(
    tree: FilterExpression, schemas: Mapping[str, DatasetSchema]
) -> tuple[tuple[str, str], ...]:
    """Check ``tree``; return the distinct (dataset type, field) pairs it reads.

    ``schemas`` maps a dataset type (ITEMS, USERS, INTERACTIONS, ...) to its schema; a
    dataset the group lacks is absent.
    """
    targets = {e.target for e in tree.expressions}
    if len(targets) > 1:
        raise _invalid(
            None,
            f"All expressions joined with | must filter the same thing; got {sorted(targets)}.",
        )
    used: dict[tuple[str, str], None] = {}
    for expression in tree.expressions:
        _expression(expression, schemas, used)
    if len(used) > MAX_FIELDS_PER_FILTER:
        raise InvalidInputException(
            f"Could not create filter. It uses {len(used)} distinct dataset fields; a filter "
            f"can use at most {MAX_FIELDS_PER_FILTER}."
        )
    return tuple(used)


def _expression(
    e: Expression, schemas: Mapping[str, DatasetSchema], used: dict[tuple[str, str], None]
) -> None:
    allowed = _DATASETS[e.target]
    first = dataset_name(e.where[0][0].left)
    for group in e.where:
        for c in group:
            name = dataset_name(c.left)
            if name not in allowed:
                raise _invalid(
                    c,
                    f"A {e.target} filter can use {' or '.join(allowed)} in WHERE, not "
                    f"{c.left.dataset}." + (" Use it after IF." if name == "CurrentUser" else ""),
                )
            if name != first:
                raise _invalid(
                    c,
                    f"All conditions of one expression must use the same dataset ({first}); "
                    f"combine conditions on {name} with | as a separate expression.",
                )
            _condition(c, name, schemas, used)
    for c in e.when:
        if dataset_name(c.left) != "CurrentUser":
            raise _invalid(c, "IF conditions can only test CurrentUser fields.")
        _condition(c, "CurrentUser", schemas, used)


def _field(ref: FieldRef, name: str, schemas: Mapping[str, DatasetSchema], c: Condition) -> Field:
    dataset_type = _SCHEMA_OF[name]
    schema = schemas.get(dataset_type)
    if schema is None:
        raise _invalid(
            c, f"The dataset group has no {dataset_type.title().replace('_', '')} dataset."
        )
    found = schema.field(ref.field)
    if found is None:
        raise _invalid(
            c,
            f"{name}.{ref.field} is not a field of the {dataset_type} schema "
            f"(fields: {', '.join(schema.names)}).",
        )
    if found.textual:
        raise _invalid(c, f"{name}.{found.name} is a textual field; filters cannot use it.")
    if found.type == "boolean":
        raise _invalid(
            c,
            f"{name}.{found.name} is boolean; filters cannot use boolean fields "
            '(store "True"/"False" strings or 0/1 instead).',
        )
    if dataset_type == "INTERACTIONS" and found.name.upper() == "USER_ID":
        raise _invalid(c, "Interactions filters apply to the requesting user; drop USER_ID.")
    return found


def _condition(
    c: Condition,
    name: str,
    schemas: Mapping[str, DatasetSchema],
    used: dict[tuple[str, str], None],
) -> None:
    left = _field(c.left, name, schemas, c)
    used[(_SCHEMA_OF[name], left.name)] = None
    right = c.right
    if isinstance(right, FieldRef):
        right_name = dataset_name(right)
        if right_name != "CurrentItem" or name != "Items":
            raise _invalid(
                c,
                "The right side of a condition can name a field only as CurrentItem.FIELD, "
                "and only in Items conditions.",
            )
        other = _field(right, right_name, schemas, c)
        used[("ITEMS", other.name)] = None
        if (left.type in _NUMERIC) != (other.type in _NUMERIC):
            raise _invalid(c, f"{left.name} and CurrentItem.{other.name} have different types.")
    if isinstance(right, Values) and "*" in right.items:
        if not (name in ("Interactions", "Action_Interactions") and _is_event_type(left)):
            raise _invalid(c, '"*" can only be used with Interactions.EVENT_TYPE.')
    if c.op in RANGE_OPERATORS:
        if left.type not in _NUMERIC:
            raise _invalid(c, f"{left.name} is a {left.type} field; {c.op} needs a numeric field.")
        if isinstance(right, Values) and not all(isinstance(v, float) for v in right.items):
            raise _invalid(c, f"{c.op} needs a number on its right side.")
    elif c.op in SET_OPERATORS:
        if left.type in ("float", "double"):
            raise _invalid(
                c, f"{left.name} is a {left.type} field; compare it with <, <=, >, >= or =."
            )
    if isinstance(right, Values) and c.op not in SET_OPERATORS and len(right.items) != 1:
        raise _invalid(c, f"{c.op} takes one value.")
    if isinstance(right, Values) and left.type in _NUMERIC and c.op not in SET_OPERATORS:
        if not isinstance(right.items[0], float):
            raise _invalid(c, f"{left.name} is numeric; compare it with a number.")
    if isinstance(right, Param) and len(right.name) > 50:
        raise _invalid(c, f"Placeholder ${right.name} is longer than 50 characters.")


def _is_event_type(f: Field) -> bool:
    return f.name.upper().replace("_", "") == "EVENTTYPE"

"""A parsed filter applied to a catalogue: one boolean mask of the items a request may get.

Item conditions compile to masks over the catalogue. Those with literal values are
computed once per catalogue and cached; those with placeholders cost a union of
precomputed posting lists (categorical fields) or one vectorised comparison (numeric
fields). Interactions conditions are evaluated on the requesting user's own recent
interactions (a few hundred rows at most), ``IF CurrentUser`` conditions on the user's
attributes. Semantics are spec §10.3: INCLUDE expressions are united, EXCLUDE expressions
are united and removed, an ``IF`` that does not hold leaves its expression out, and an
EXCLUDE placeholder without a value drops the condition that uses it.
"""

from __future__ import annotations

import operator
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from pertinent.data.schema import normalize_name
from pertinent.errors import InvalidInputException
from pertinent.filters.grammar import (
    SET_OPERATORS,
    Condition,
    Expression,
    FieldRef,
    FilterExpression,
    Param,
    Values,
)
from pertinent.filters.validate import dataset_name
from pertinent.filters.values import number

Mask = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_EVENT_TYPE = "EVENTTYPE"
RECENT_MASKS = 128  # placeholder masks kept per catalogue (100k items: 100 KB each)


def _text(value: str | float) -> str:
    """A literal as the string it must equal: ``3.0`` written in a filter matches ``"3"``."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return value if isinstance(value, str) else str(value)  # an int from event properties


def tokens_of(raw: str) -> list[str]:
    """The values of a possibly multi-valued (``a|b|c``) categorical string."""
    return raw.split("|")


class ItemTable:
    """The Items metadata of a catalogue, by model index, indexed for filtering.

    ``frame`` row ``i`` describes item ``i``; items past its end (or a frame of None)
    have no metadata: they match no condition on Items, so ``NOT IN`` keeps them.
    """

    def __init__(self, frame: pl.DataFrame | None, n_items: int) -> None:
        self.n_items = n_items
        self._frame = frame if frame is not None else pl.DataFrame()
        self._names = {normalize_name(c): c for c in self._frame.columns}
        self._tokens: dict[str, dict[str, IntArray]] = {}
        self._numbers: dict[str, npt.NDArray[np.float64]] = {}
        self.lock = threading.Lock()
        # Masks of conditions whose values are literals: fixed for this catalogue.
        self.static: dict[Condition, Mask] = {}
        # Masks of placeholder conditions by their values: shops send few distinct ones.
        self.recent: OrderedDict[tuple[Condition, tuple[str, ...]], Mask] = OrderedDict()
        # Whole filters that read only Items, by their placeholder values: the answer a
        # request gets is then one dictionary lookup (read-only masks, shared).
        self.whole: OrderedDict[tuple[FilterExpression, tuple[Any, ...]], tuple[Mask | None]] = (
            OrderedDict()
        )

    def column(self, name: str) -> str | None:
        return self._names.get(normalize_name(name))

    def is_numeric(self, name: str) -> bool:
        column = self.column(name)
        return column is not None and self._frame.schema[column].is_numeric()

    def tokens(self, name: str) -> dict[str, IntArray]:
        """Value -> the items holding it (each ``|``-separated value of a field counts)."""
        column = self.column(name)
        if column is None:
            return {}
        found = self._tokens.get(column)
        if found is None:
            with self.lock:
                frame = (
                    pl.DataFrame(
                        {
                            "i": np.arange(self._frame.height),
                            "v": self._frame[column].cast(pl.String),
                        }
                    )
                    .drop_nulls()
                    .with_columns(pl.col("v").str.split("|"))
                    .explode("v")
                    .group_by("v")
                    .agg(pl.col("i"))
                )
                found = {
                    v: np.asarray(i, dtype=np.int64)
                    for v, i in zip(frame["v"].to_list(), frame["i"].to_list(), strict=True)
                }
                self._tokens[column] = found
        return found

    def numbers(self, name: str) -> npt.NDArray[np.float64]:
        """The field as numbers over the whole catalogue, NaN where missing."""
        column = self.column(name)
        found = self._numbers.get(column or "")
        if found is None:
            found = np.full(self.n_items, np.nan)
            if column is not None:
                values = self._frame[column].cast(pl.Float64, strict=False)
                found[: self._frame.height] = values.fill_null(np.nan).to_numpy()
                self._numbers[column] = found
        return found

    def value(self, name: str, item: int) -> str | None:
        column = self.column(name)
        if column is None or not 0 <= item < self._frame.height:
            return None
        raw = self._frame[column][item]
        return None if raw is None else _text(raw) if isinstance(raw, float) else str(raw)


@dataclass(frozen=True)
class Rows:
    """The requesting user's recent interactions: model item index (-1: not in the
    catalogue) and each field by normalised name (strings, numbers or None)."""

    items: npt.NDArray[np.int64]
    columns: Mapping[str, Sequence[Any] | npt.NDArray[Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.items.shape[0])


@dataclass(frozen=True)
class Request:
    """What a filter needs from one request besides the catalogue."""

    values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    rows: Rows | None = None
    user: Mapping[str, str] = field(default_factory=dict)  # normalised name -> value
    current_item: int | None = None


@dataclass(frozen=True)
class Shape:
    """What a filter's tree says about every request it will serve, worked out once."""

    reads: frozenset[str]  # the datasets its conditions' left sides name
    params: tuple[str, ...]
    per_request: bool  # reads the user's interactions or attributes, or the current item
    uses_current_item: bool
    includes: bool

    @property
    def needs_user(self) -> bool:
        """Whether the filter reads the requesting user (Interactions or CurrentUser)."""
        return bool(self.reads & {"Interactions", "CurrentUser"})


@lru_cache(maxsize=1024)
def shape(tree: FilterExpression) -> Shape:
    conditions = tree.conditions()
    right = {dataset_name(c.right) for c in conditions if isinstance(c.right, FieldRef)}
    reads = frozenset(dataset_name(c.left) for c in conditions)
    return Shape(
        reads=reads,
        params=tree.params(),
        per_request=bool((reads | right) - {"Items"}),
        uses_current_item="CurrentItem" in right,
        includes=any(e.action == "INCLUDE" for e in tree.expressions),
    )


def allowed_items(tree: FilterExpression, table: ItemTable, request: Request) -> Mask | None:
    """The items the filter lets through (read-only), or None when it lets everything
    through."""
    facts = shape(tree)
    if facts.per_request:
        return _allowed(tree, table, request)
    key = (tree, tuple(request.values.get(p) for p in facts.params))
    hit = table.whole.get(key)
    if hit is not None:
        return hit[0]
    found = _allowed(tree, table, request)
    if found is not None:
        found.setflags(write=False)
    with table.lock:
        table.whole[key] = (found,)
        while len(table.whole) > RECENT_MASKS:
            table.whole.popitem(last=False)
    return found


def _allowed(tree: FilterExpression, table: ItemTable, request: Request) -> Mask | None:
    include: Mask | None = None
    exclude: Mask | None = None
    for expression in tree.expressions:
        bound = _bind(expression, request.values)
        if bound is None or not _user_holds(bound.when, request):
            continue
        matched = _matches(bound, table, request)
        if bound.action == "INCLUDE":
            include = matched if include is None else include | matched
        else:
            exclude = matched if exclude is None else exclude | matched
    if include is None:
        return None if exclude is None else np.logical_not(exclude)
    if exclude is None:
        return include.copy()
    return include & ~exclude


def _bind(e: Expression, values: Mapping[str, tuple[str, ...]]) -> Expression | None:
    """``e`` without the conditions whose placeholder has no value (EXCLUDE only); None
    when nothing of it is left."""
    missing = [
        c.right.name
        for c in e.conditions()
        if isinstance(c.right, Param) and c.right.name not in values
    ]
    if not missing:
        return e
    if e.action == "INCLUDE":
        raise InvalidInputException(
            f"filterValues has no value for ${missing[0]}, which the filter's INCLUDE "
            f'expression needs; send it as filterValues={{"{missing[0]}": "\\"value\\""}}.'
        )

    def kept(cs: tuple[Condition, ...]) -> tuple[Condition, ...]:
        return tuple(c for c in cs if not (isinstance(c.right, Param) and c.right.name in missing))

    where = tuple(g for g in (kept(group) for group in e.where) if g)
    if not where:
        return None
    return Expression(e.action, e.target, where, kept(e.when))


def _right_values(c: Condition, request: Request) -> tuple[str | float, ...]:
    right = c.right
    if isinstance(right, Values):
        return right.items
    if isinstance(right, Param):
        return request.values[right.name]
    return ()  # CurrentItem: handled by the caller


def _matches(e: Expression, table: ItemTable, request: Request) -> Mask:
    if dataset_name(e.where[0][0].left) == "Interactions":
        return _interaction_items(e, table, request)
    out: Mask | None = None
    for group in e.where:
        mask: Mask | None = None
        for c in group:
            m = _item_condition(c, table, request)
            mask = m if mask is None else mask & m
        assert mask is not None
        out = mask if out is None else out | mask
    assert out is not None
    return out


def _item_condition(c: Condition, table: ItemTable, request: Request) -> Mask:
    if isinstance(c.right, Values):
        cached = table.static.get(c)
        if cached is None:
            cached = table.static[c] = _item_mask(c, table, request)
        return cached
    if isinstance(c.right, Param):
        key = (c, request.values[c.right.name])
        found = table.recent.get(key)
        if found is None:
            found = _item_mask(c, table, request)
            with table.lock:
                table.recent[key] = found
                while len(table.recent) > RECENT_MASKS:
                    table.recent.popitem(last=False)
        return found
    return _item_mask(c, table, request)


def _item_mask(c: Condition, table: ItemTable, request: Request) -> Mask:
    name = c.left.field
    where = f"{c.left.dataset}.{name} {c.op}"
    if isinstance(c.right, FieldRef):
        item = request.current_item
        value = None if item is None else table.value(c.right.field, item)
        if value is None:
            # No current item, or it has no such value: nothing can be compared with it.
            return np.zeros(table.n_items, dtype=np.bool_)
        values: tuple[str | float, ...] = (
            tuple(tokens_of(value)) if c.op in SET_OPERATORS else (value,)
        )
    else:
        values = _right_values(c, request)
    if c.op in SET_OPERATORS or (c.op in ("=", "!=") and not table.is_numeric(name)):
        postings = table.tokens(name)
        mask = np.zeros(table.n_items, dtype=np.bool_)
        for v in values:
            found = postings.get(_text(v))
            if found is not None:
                mask[found] = True
        if c.op in ("NOT IN", "!="):
            mask = ~mask
        return mask
    target = (
        float(values[0])
        if isinstance(c.right, FieldRef | Values)
        else number(c.right.name, tuple(str(v) for v in values), where)
    )
    numbers = table.numbers(name)
    with np.errstate(invalid="ignore"):
        result = np.asarray(_COMPARE[c.op](numbers, target), dtype=np.bool_)
    return result  # a missing value (NaN) satisfies only !=, as NOT IN keeps it


def _interaction_items(e: Expression, table: ItemTable, request: Request) -> Mask:
    rows = request.rows
    mask = np.zeros(table.n_items, dtype=np.bool_)
    if rows is None or not len(rows):
        return mask
    hit = np.zeros(len(rows), dtype=np.bool_)
    for group in e.where:
        g = np.ones(len(rows), dtype=np.bool_)
        for c in group:
            g &= _row_condition(c, rows, request)
        hit |= g
    items = rows.items[hit]
    items = items[(items >= 0) & (items < table.n_items)]
    mask[items] = True
    return mask


def _row_condition(c: Condition, rows: Rows, request: Request) -> Mask:
    key = normalize_name(c.left.field)
    column = rows.columns.get(key)
    if column is None:
        return np.zeros(len(rows), dtype=np.bool_)
    holds = _predicate(c, key, _right_values(c, request))
    if isinstance(column, np.ndarray) and column.dtype != object:
        column = column.tolist()  # Python values hash and compare faster than numpy's
    # A user's rows repeat a handful of values (event types above all), so each distinct
    # value is judged once.
    try:
        answers = {v: holds(v) for v in set(column)}
    except TypeError:  # an unhashable value (a list in an event's properties)
        return np.fromiter((holds(v) for v in column), dtype=np.bool_, count=len(rows))
    return np.fromiter((answers[v] for v in column), dtype=np.bool_, count=len(rows))


def _user_holds(conditions: tuple[Condition, ...], request: Request) -> bool:
    for c in conditions:
        key = normalize_name(c.left.field)
        if not _predicate(c, key, _right_values(c, request))(request.user.get(key)):
            return False
    return True


def _predicate(
    c: Condition, key: str, values: tuple[str | float, ...]
) -> Callable[[str | float | None], bool]:
    """Whether one value (an interaction's field, the user's attribute) meets ``c``:
    built once per condition, then applied to each of a user's rows."""
    negated = c.op in ("NOT IN", "!=")
    missing = negated and not isinstance(c.right, FieldRef)
    as_set = c.op in SET_OPERATORS
    compare = _COMPARE.get(c.op)
    event_type = key == _EVENT_TYPE
    wanted = {_text(v).lower() if event_type else _text(v) for v in values}

    def holds(value: str | float | None) -> bool:
        if value is None or value != value:  # None or NaN: the field is missing
            return missing
        if as_set or (c.op in ("=", "!=") and not _is_number(value, values)):
            if event_type:
                found = "*" in wanted or str(value).lower() in wanted
            else:
                found = any(t in wanted for t in tokens_of(_text(value)))
            return found != negated
        if compare is None or not values:
            return False
        try:
            left, right = float(value), float(values[0])
        except ValueError:
            return False
        return bool(compare(left, right))

    return holds


def _is_number(value: str | float, values: tuple[str | float, ...]) -> bool:
    """Whether both sides of an = / != read as numbers (then 3 equals "3.0")."""
    try:
        float(value)
        if values:
            float(values[0])
    except ValueError:
        return False
    return True

"""Metadata as recipe features: Items / Users columns, interaction context, impressions.

The schema decides what a column is (spec §7.2): a ``categorical`` string becomes a
``CategoricalFeature`` (``a|b|c`` is three values), a ``textual`` string becomes a
``CategoricalFeature`` of its word tokens, an int / long / float / double / boolean column
becomes a ``NumericFeature`` of raw float32 values (NaN where missing, booleans 0 / 1),
and a plain string that is neither categorical nor textual is not trained on, as in
Personalize. Ids, CREATION_TIMESTAMP (it sets item age, ``item_creation_time``) and the
reserved Interactions fields are never features.

Encodings are deterministic: vocabularies are sorted, and a row's codes are sorted and
distinct (a value listed twice in one cell counts once). Everything is vectorised;
the only per-value Python is over vocabularies and the (few) schema fields.

Interaction rows are reordered after they are read (grouped by user, by time). Rather
than move strings around, the encoders take that reordering (``order``: output row
``r`` is input row ``order[r]``) and apply it to the integer codes they produce.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from pertinent.data.schema import DatasetSchema, Field, canonical_dataset_type, normalize_name
from pertinent.recipes.base import CategoricalFeature, FeatureTable, IntArray, NumericFeature

Order = npt.NDArray[np.int64] | npt.NDArray[np.int32]
FeatureKind = Literal["categorical", "textual", "numeric"]

# Textual fields: the vocabulary keeps the most frequent tokens, counted in how many rows
# (items) they occur. A token of one item only cannot relate two items, so it is dropped.
MAX_TEXT_VOCABULARY = 20_000
MIN_TEXT_ROWS = 2
# A tag or an entity (``<p class="x">``, ``&amp;``, ``&#39;``) separates words (spec §7.2).
_MARKUP = r"<[^>]*>|&#?[A-Za-z0-9]+;"
_WORD = r"\w+"

NUMERIC_TYPES = frozenset({"int", "long", "float", "double", "boolean"})

# Never features, per dataset type, as normalize_name keys.
NOT_FEATURES: Mapping[str, frozenset[str]] = {
    "ITEMS": frozenset({"ITEMID", "CREATIONTIMESTAMP"}),
    "USERS": frozenset({"USERID"}),
    "INTERACTIONS": frozenset(
        normalize_name(n)
        for n in (
            "USER_ID",
            "ITEM_ID",
            "TIMESTAMP",
            "EVENT_TYPE",
            "EVENT_VALUE",
            "IMPRESSION",
            "RECOMMENDATION_ID",
            "EVENT_ATTRIBUTION_SOURCE",
        )
    ),
}


class TrainingConfigError(ValueError):
    """A solution configuration training cannot follow; the message says what to fix."""


# --- which columns train (solutionConfig.trainingDataConfig, spec §4.8) -----------------


@dataclass(frozen=True)
class ColumnSelection:
    """``includedDatasetColumns`` / ``excludedDatasetColumns`` by canonical dataset type.

    Names are kept as ``normalize_name`` keys: columns are compared the way schemas
    compare them, ignoring case and underscores. They apply to the columns that can be
    trained on (metadata, and IMPRESSION); the ids, TIMESTAMP, EVENT_TYPE and EVENT_VALUE
    define the interactions themselves and are always used.
    """

    included: Mapping[str, frozenset[str]]
    excluded: Mapping[str, frozenset[str]]

    @classmethod
    def parse(cls, config: Mapping[str, object] | None) -> ColumnSelection:
        config = config or {}
        return cls(
            included=_columns_by_type(config, "includedDatasetColumns"),
            excluded=_columns_by_type(config, "excludedDatasetColumns"),
        )

    def allows(self, dataset_type: str, column: str) -> bool:
        key = normalize_name(column)
        included = self.included.get(dataset_type)
        if included is not None and key not in included:
            return False
        return key not in self.excluded.get(dataset_type, frozenset())


def _columns_by_type(config: Mapping[str, object], member: str) -> dict[str, frozenset[str]]:
    raw = config.get(member)
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise TrainingConfigError(
            f"trainingDataConfig.{member} must map dataset types to lists of column names."
        )
    out: dict[str, frozenset[str]] = {}
    for dataset_type, columns in raw.items():
        try:
            key = canonical_dataset_type(str(dataset_type))
        except ValueError as exc:
            raise TrainingConfigError(f"trainingDataConfig.{member}: {exc}") from None
        if not isinstance(columns, list | tuple) or not all(isinstance(c, str) for c in columns):
            raise TrainingConfigError(
                f"trainingDataConfig.{member}[{dataset_type!r}] must be a list of column names."
            )
        out[key] = out.get(key, frozenset()) | frozenset(normalize_name(c) for c in columns)
    return out


# --- feature tables ---------------------------------------------------------------------


def feature_table(
    frame: pl.DataFrame | None,
    schema: DatasetSchema | None,
    dataset_type: str,
    selection: ColumnSelection,
    order: Order | None = None,
) -> FeatureTable | None:
    """The trainable metadata of ``frame``, or None if it has none.

    Row ``r`` of the table describes row ``order[r]`` of ``frame`` (row ``r`` without
    ``order``).

    Fields come in schema order. A schema field with no column in the data (added by
    UpdateDataset, not imported yet) is skipped, as is a data column the schema does not
    name (left by an older schema): the current schema is the truth about types.
    """
    if frame is None or schema is None:
        return None
    columns = {normalize_name(c): c for c in frame.columns}
    reserved = NOT_FEATURES.get(dataset_type, frozenset())
    categorical: list[CategoricalFeature] = []
    numeric: list[NumericFeature] = []
    for f in schema.fields:
        key = normalize_name(f.name)
        if key in reserved or key not in columns or not selection.allows(dataset_type, f.name):
            continue
        kind = feature_kind(f)
        column = frame[columns[key]]
        if kind == "categorical":
            categorical.append(categorical_feature(f.name, column, order))
        elif kind == "textual":
            categorical.append(text_feature(f.name, column, order))
        elif kind == "numeric":
            numeric.append(numeric_feature(f.name, column, order))
    if not categorical and not numeric:
        return None
    n_rows = frame.height if order is None else len(order)
    return FeatureTable(n_rows=n_rows, categorical=tuple(categorical), numeric=tuple(numeric))


def feature_kind(f: Field) -> FeatureKind | None:
    """``categorical``, ``textual``, ``numeric``, or None for a plain string (not trained on)."""
    if f.categorical:
        return "categorical"
    if f.textual:
        return "textual"
    if f.type in NUMERIC_TYPES:
        return "numeric"
    return None


def numeric_feature(name: str, column: pl.Series, order: Order | None = None) -> NumericFeature:
    # strict=False: a part written under an older schema may hold strings; they count as
    # missing rather than failing the whole training.
    values = column.cast(pl.Float32, strict=False).fill_null(float("nan")).to_numpy()
    if order is not None:
        values = values[order]
    return NumericFeature(name=name, values=np.ascontiguousarray(values, dtype=np.float32))


def categorical_feature(
    name: str, column: pl.Series, order: Order | None = None
) -> CategoricalFeature:
    """A categorical column: ``|``-separated values, vocabulary sorted, empty = missing."""
    values = column.cast(pl.String)
    distinct = values.drop_nulls().unique()
    if distinct.str.contains("|", literal=True).any():
        rows, tokens = _explode(values.str.split("|"))
        return _csr(name, _n_rows(values, order), _reorder(rows, order), tokens, None)
    # One value per row (the usual case, and the one that must be fast on interaction
    # context): the column's codes directly, no exploding. The check above looked at the
    # distinct values only, which is much cheaper than scanning every row.
    vocabulary = distinct.filter(distinct != "").sort()
    physical = values.cast(pl.Enum(vocabulary), strict=False).to_physical()
    if order is not None:
        physical = physical.gather(order)
    present = physical.is_not_null().to_numpy()
    offsets = np.zeros(len(physical) + 1, dtype=np.int64)
    np.cumsum(present, out=offsets[1:])
    codes = physical.drop_nulls().to_numpy().astype(np.int32)
    return CategoricalFeature(name, offsets, codes, tuple(vocabulary.to_list()))


def text_feature(
    name: str,
    column: pl.Series,
    order: Order | None = None,
    *,
    max_vocabulary: int = MAX_TEXT_VOCABULARY,
    min_rows: int = MIN_TEXT_ROWS,
) -> CategoricalFeature:
    """A textual column as lower-cased word tokens, markup stripped.

    The vocabulary is the ``max_vocabulary`` tokens found in the most rows (ties by
    token), among those found in at least ``min_rows`` rows; it is then sorted.
    """
    rows, tokens = _explode(tokenize(column))
    pairs = pl.DataFrame({"row": rows, "token": tokens}).unique()
    counts = (
        pairs.group_by("token")
        .len()
        .filter(pl.col("len") >= min_rows)
        .sort(["len", "token"], descending=[True, False])
        .head(max_vocabulary)
    )
    vocabulary = counts["token"].sort()
    return _csr(name, _n_rows(column, order), _reorder(rows, order), tokens, vocabulary)


def tokenize(column: pl.Series) -> pl.Series:
    """Each text as its list of lower-cased word tokens, markup stripped (null stays null).

    Public so that whatever encodes raw text later (new items at serving time) splits it
    exactly as training did.
    """
    return (
        column.cast(pl.String)
        .str.replace_all(_MARKUP, " ")
        .str.to_lowercase()
        .str.extract_all(_WORD)
    )


def _n_rows(column: pl.Series, order: Order | None) -> int:
    return len(column) if order is None else len(order)


def _reorder(rows: npt.NDArray[np.int64], order: Order | None) -> npt.NDArray[np.int64]:
    """Input row numbers as output row numbers (``_csr`` sorts by row afterwards)."""
    if order is None:
        return rows
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order), dtype=np.int64)
    return position[rows]


def _explode(lists: pl.Series) -> tuple[npt.NDArray[np.int64], pl.Series]:
    """(row of each element, the elements) of a list column, nulls and "" left out."""
    lengths = lists.list.len().fill_null(0).to_numpy()
    rows = np.repeat(np.arange(len(lists), dtype=np.int64), lengths)
    flat = lists.explode(empty_as_null=False, keep_nulls=False)
    keep = (flat.is_not_null() & (flat != "")).to_numpy()
    return rows[keep], flat.filter(pl.Series(keep))


def _csr(
    name: str,
    n_rows: int,
    rows: npt.NDArray[np.int64],
    tokens: pl.Series,
    vocabulary: pl.Series | None,
) -> CategoricalFeature:
    """CSR of (row, token) pairs; tokens outside ``vocabulary`` (default: all) are dropped."""
    if vocabulary is None:
        vocabulary = tokens.unique().sort()
    physical = tokens.cast(pl.Enum(vocabulary), strict=False).to_physical()
    known = physical.is_not_null().to_numpy()
    codes = physical.drop_nulls().to_numpy().astype(np.int64)
    size = max(len(vocabulary), 1)
    # One sort of row * size + code orders each row's codes and finds repeats in a row.
    keys = np.unique(rows[known] * size + codes)
    offsets = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys // size, minlength=n_rows), out=offsets[1:])
    return CategoricalFeature(
        name, offsets, (keys % size).astype(np.int32), tuple(vocabulary.to_list())
    )


# --- impressions (spec §7.7) ------------------------------------------------------------


def impression_lists(
    column: pl.Series, item_ids: pl.Series, item: IntArray, order: Order | None = None
) -> tuple[npt.NDArray[np.int64], IntArray]:
    """The IMPRESSION cells as CSR of item indices; ``item`` is each input row's item.

    Ids not in the catalogue are dropped, and so is the row's own item: an impression
    means "shown and not chosen" (spec §7.4). The rest keep the order they were shown in.
    Row ``r`` of the result is input row ``order[r]``.
    """
    lists = column.cast(pl.String).str.split("|")
    lengths = lists.list.len().fill_null(0).to_numpy()
    rows = np.repeat(np.arange(len(lists), dtype=np.int32), lengths)
    flat = lists.explode(empty_as_null=False, keep_nulls=False)
    # item_ids are distinct and sorted, so an Enum of them maps an id to its index; ids
    # outside it become null.
    codes = (
        flat.cast(pl.Enum(item_ids), strict=False)
        .to_physical()
        .cast(pl.Int64)
        .fill_null(-1)
        .to_numpy()
    )
    keep = (codes >= 0) & (codes != item[rows])
    offsets = np.zeros(len(lists) + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows[keep], minlength=len(lists)), out=offsets[1:])
    shown = codes[keep].astype(np.int32)
    if order is None:
        return offsets, shown
    return permute_csr(offsets, shown, order)


def permute_csr(
    offsets: npt.NDArray[np.int64], values: IntArray, order: Order
) -> tuple[npt.NDArray[np.int64], IntArray]:
    """CSR rows ``order[0], order[1], ...`` of (offsets, values), each row's values in order."""
    lengths = np.diff(offsets)[order]
    out = np.zeros(len(order) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    # Value j of output row r sits at offsets[order[r]] + (j - out[r]) in the input.
    source = np.repeat(offsets[:-1][order] - out[:-1], lengths) + np.arange(out[-1])
    return out, values[source]

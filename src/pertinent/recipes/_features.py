"""Metadata → model inputs: one bag of codes per row plus a small dense numeric block.

A ``FeatureTable`` (items, users or interaction context) is encoded once at fit time by
a ``FeatureEncoder`` that remembers everything needed to encode a *raw* row later the
same way: a request's ``context`` (``{"DEVICE": "mobile"}``) or an unknown user's
``user_attributes`` arrive as strings and go through the training vocabulary; values
the training data never had are ignored, as are unknown field names.

The encoding, chosen so one ``EmbeddingBag`` (or one numpy gather) embeds a row:

* every categorical feature owns a block of the shared code space (its vocabulary); a
  row's codes in that feature weigh ``1 / count`` each, so a multi-valued field
  (``Comedy|Drama``) contributes the *mean* of its values and a row sums its features;
* every numeric feature gives one dense column — the value (``log1p``-compressed when the
  column is non-negative and heavy-tailed, like prices), standardised, 0 where missing —
  *and* a quantile-bin code in its own block of the code space, so the model can learn
  a non-linear effect (release year, price band) without a hand-made transform.

Encoders serialise to JSON (vocabularies, statistics, bin edges) and encoded rows to
plain arrays: no pickle anywhere.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from pertinent.recipes._scoring import csr_positions
from pertinent.recipes.base import FeatureTable

__all__ = ["EncodedRows", "FeatureEncoder", "normalize_name"]

# Quantile bins per numeric feature (fewer when the column has fewer distinct values).
_NUMERIC_BINS = 16
# A non-negative column whose 99th percentile is this many times its median gets log1p.
_HEAVY_TAIL_RATIO = 20.0
_WORD = re.compile(r"\w+")

Int64Array = npt.NDArray[np.int64]
Float32Array = npt.NDArray[np.float32]


def normalize_name(name: str) -> str:
    """Field names compare as Personalize compares them: upper case, underscores dropped."""
    return name.upper().replace("_", "")


@dataclass(frozen=True)
class EncodedRows:
    """Rows as CSR bags (``codes[offsets[r]:offsets[r+1]]`` with ``weights``) + numerics."""

    offsets: Int64Array
    codes: Int64Array
    weights: Float32Array
    numeric: Float32Array  # (n_rows, n_numeric)

    @property
    def n_rows(self) -> int:
        return int(self.offsets.shape[0] - 1)

    def take(self, rows: Int64Array) -> EncodedRows:
        """The given rows, in that order (vectorised CSR gather)."""
        idx, lengths = csr_positions(self.offsets, rows)
        offsets = np.zeros(rows.shape[0] + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return EncodedRows(offsets, self.codes[idx], self.weights[idx], self.numeric[rows])

    def arrays(self, prefix: str) -> dict[str, npt.NDArray[Any]]:
        return {
            f"{prefix}_offsets": self.offsets,
            f"{prefix}_codes": self.codes,
            f"{prefix}_weights": self.weights,
            f"{prefix}_numeric": self.numeric,
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, npt.NDArray[Any]], prefix: str) -> EncodedRows:
        return cls(
            offsets=np.asarray(arrays[f"{prefix}_offsets"], dtype=np.int64),
            codes=np.asarray(arrays[f"{prefix}_codes"], dtype=np.int64),
            weights=np.asarray(arrays[f"{prefix}_weights"], dtype=np.float32),
            numeric=np.asarray(arrays[f"{prefix}_numeric"], dtype=np.float32),
        )


@dataclass(frozen=True)
class _Categorical:
    name: str
    vocabulary: tuple[str, ...]
    base: int  # first code of this feature's block


@dataclass(frozen=True)
class _Numeric:
    name: str
    log: bool
    mean: float
    std: float
    edges: tuple[float, ...]  # bin edges of the transformed value
    base: int

    def transform(self, values: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float64]:
        out = values.astype(np.float64)
        if self.log:
            out = np.sign(out) * np.log1p(np.abs(out))
        return out


class FeatureEncoder:
    """Encodes one kind of metadata rows (items, users or context) the same way forever."""

    def __init__(self, categorical: list[_Categorical], numeric: list[_Numeric]) -> None:
        self.categorical = categorical
        self.numeric = numeric
        self.n_codes = sum(len(c.vocabulary) for c in categorical) + sum(
            len(n.edges) + 1 for n in numeric
        )
        self.n_numeric = len(numeric)
        # Raw lookups (requests): by normalised field name, then value → code.
        fields: list[_Categorical | _Numeric] = [*categorical, *numeric]
        self._by_name = {normalize_name(f.name): f for f in fields}
        self._index: dict[str, dict[str, int]] = {
            c.name: {v: i for i, v in enumerate(c.vocabulary)} for c in categorical
        }

    @property
    def n_categorical_codes(self) -> int:
        """Codes below this are categorical values; numeric bins follow them."""
        return sum(len(c.vocabulary) for c in self.categorical)

    @property
    def empty(self) -> bool:
        return self.n_codes == 0 and self.n_numeric == 0

    @classmethod
    def fit(cls, table: FeatureTable | None) -> FeatureEncoder:
        """Vocabularies, statistics and bin edges of ``table`` (None: an empty encoder)."""
        if table is None:
            return cls([], [])
        base = 0
        categorical: list[_Categorical] = []
        for cat in table.categorical:
            categorical.append(_Categorical(cat.name, tuple(cat.vocabulary), base))
            base += len(cat.vocabulary)
        numeric: list[_Numeric] = []
        for f in table.numeric:
            values = f.values[np.isfinite(f.values)].astype(np.float64)
            log = False
            if values.shape[0] and values.min() >= 0:
                median = float(np.median(values))
                log = float(np.quantile(values, 0.99)) > _HEAVY_TAIL_RATIO * max(median, 1e-9)
            if log:
                values = np.log1p(values)
            mean = float(values.mean()) if values.shape[0] else 0.0
            std = float(values.std()) if values.shape[0] else 1.0
            quantiles = np.linspace(0.0, 1.0, _NUMERIC_BINS + 1)[1:-1]
            edges: list[float] = []
            if values.shape[0]:
                edges = np.unique(np.quantile(values, quantiles)).tolist()
            spec = _Numeric(
                f.name, log, mean, std if std > 1e-12 else 1.0, tuple(map(float, edges)), base
            )
            numeric.append(spec)
            base += len(spec.edges) + 1
        return cls(categorical, numeric)

    def encode(self, table: FeatureTable | None, n_rows: int) -> EncodedRows:
        """Encode the rows of ``table`` (the one fitted, or one with the same fields)."""
        if table is None or self.empty:
            return _empty_rows(n_rows, self.n_numeric)
        rows_parts: list[Int64Array] = []
        codes_parts: list[Int64Array] = []
        weight_parts: list[Float32Array] = []
        by_name_cat = {f.name: f for f in table.categorical}
        for spec in self.categorical:
            f = by_name_cat[spec.name]
            counts = np.diff(f.offsets).astype(np.int64)
            rows = np.repeat(np.arange(n_rows, dtype=np.int64), counts)
            rows_parts.append(rows)
            codes_parts.append(f.codes.astype(np.int64) + spec.base)
            weight_parts.append((1.0 / np.maximum(counts, 1)).astype(np.float32)[rows])
        numeric = np.zeros((n_rows, self.n_numeric), dtype=np.float32)
        by_name_num = {f.name: f for f in table.numeric}
        for j, nspec in enumerate(self.numeric):
            value = nspec.transform(by_name_num[nspec.name].values)
            present = np.isfinite(value)
            numeric[present, j] = ((value[present] - nspec.mean) / nspec.std).astype(np.float32)
            rows = np.flatnonzero(present).astype(np.int64)
            bins = np.searchsorted(np.asarray(nspec.edges), value[present], side="right")
            rows_parts.append(rows)
            codes_parts.append(bins.astype(np.int64) + nspec.base)
            weight_parts.append(np.ones(rows.shape[0], dtype=np.float32))
        rows = np.concatenate(rows_parts) if rows_parts else np.empty(0, dtype=np.int64)
        codes = np.concatenate(codes_parts) if codes_parts else np.empty(0, dtype=np.int64)
        weights = np.concatenate(weight_parts) if weight_parts else np.empty(0, dtype=np.float32)
        order = np.lexsort((codes, rows))  # CSR: grouped by row, codes sorted inside
        offsets = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n_rows), out=offsets[1:])
        return EncodedRows(offsets, codes[order], weights[order], numeric)

    def encode_raw(self, values: Mapping[str, str]) -> EncodedRows:
        """One row from raw request strings; unknown fields and values are ignored."""
        codes: list[int] = []
        weights: list[float] = []
        numeric = np.zeros((1, self.n_numeric), dtype=np.float32)
        for key, raw in values.items():
            spec = self._by_name.get(normalize_name(key))
            if isinstance(spec, _Categorical):
                found = self._lookup(spec, str(raw))
                codes += found
                weights += [1.0 / max(len(found), 1)] * len(found)
            elif isinstance(spec, _Numeric):
                try:
                    number = float(raw)
                except (TypeError, ValueError):
                    continue
                if not math.isfinite(number):
                    continue
                value = float(spec.transform(np.asarray([number]))[0])
                numeric[0, self.numeric.index(spec)] = (value - spec.mean) / spec.std
                codes.append(spec.base + int(np.searchsorted(spec.edges, value, side="right")))
                weights.append(1.0)
        return EncodedRows(
            offsets=np.asarray([0, len(codes)], dtype=np.int64),
            codes=np.asarray(codes, dtype=np.int64),
            weights=np.asarray(weights, dtype=np.float32),
            numeric=numeric,
        )

    def _lookup(self, spec: _Categorical, raw: str) -> list[int]:
        """Codes of a raw cell: ``a|b`` values as stored, else lower-case word tokens."""
        index = self._index[spec.name]
        found = {index[v] for v in raw.split("|") if v in index}
        if not found:  # textual fields are stored as lower-cased word tokens
            found = {index[w] for w in _WORD.findall(raw.lower()) if w in index}
        return sorted(spec.base + c for c in found)

    def to_json(self) -> dict[str, Any]:
        return {
            "categorical": [
                {"name": c.name, "vocabulary": list(c.vocabulary), "base": c.base}
                for c in self.categorical
            ],
            "numeric": [
                {
                    "name": n.name,
                    "log": n.log,
                    "mean": n.mean,
                    "std": n.std,
                    "edges": list(n.edges),
                    "base": n.base,
                }
                for n in self.numeric
            ],
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> FeatureEncoder:
        return cls(
            [
                _Categorical(c["name"], tuple(c["vocabulary"]), int(c["base"]))
                for c in doc["categorical"]
            ],
            [
                _Numeric(
                    n["name"],
                    bool(n["log"]),
                    float(n["mean"]),
                    float(n["std"]),
                    tuple(float(e) for e in n["edges"]),
                    int(n["base"]),
                )
                for n in doc["numeric"]
            ],
        )


def _empty_rows(n_rows: int, n_numeric: int) -> EncodedRows:
    return EncodedRows(
        offsets=np.zeros(n_rows + 1, dtype=np.int64),
        codes=np.empty(0, dtype=np.int64),
        weights=np.empty(0, dtype=np.float32),
        numeric=np.zeros((n_rows, n_numeric), dtype=np.float32),
    )

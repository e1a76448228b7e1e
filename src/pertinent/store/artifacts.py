"""Where trained models and dataset parts live on disk, and how a model directory is laid out.

A solution version directory holds::

    meta.json       recipe, recipe type, catalogue sizes, training time
    model/          whatever the recipe's Model.save wrote
    item_ids.parquet  item index -> ITEM_ID
    user_ids.parquet  user index -> USER_ID
    history.npz     per-user item history (CSR: offsets, items, times), oldest first
    items.parquet   the Items dataset as trained, row i = item i (metadata columns)

so the runtime can answer from a user's trained history without touching the dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from pertinent.config import Settings


def _slug(arn: str) -> str:
    return hashlib.sha1(arn.encode("utf-8")).hexdigest()[:20]


def dataset_dir(settings: Settings, dataset_arn: str) -> Path:
    return settings.data_dir / _slug(dataset_arn)


def version_dir(settings: Settings, version_arn: str) -> Path:
    return settings.model_dir / _slug(version_arn)


def remove_path(path: str | Path) -> None:
    """Delete a file or a directory tree; already gone is fine."""
    p = Path(path)
    if p.is_dir():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def write_ids(path: Path, ids: list[str] | pl.Series | npt.NDArray[Any]) -> None:
    # Parquet, not a fixed-width numpy string array: one long id would widen every row.
    pl.DataFrame({"id": pl.Series(ids, dtype=pl.String)}).write_parquet(path)


def read_ids(path: Path) -> list[str]:
    ids: list[str] = pl.read_parquet(path)["id"].to_list()
    return ids


def write_history(
    path: Path,
    offsets: npt.NDArray[np.int64],
    items: npt.NDArray[np.int32],
    times: npt.NDArray[np.int64],
) -> None:
    np.savez(path, offsets=offsets, items=items, times=times)


def read_history(
    path: Path,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.int64]]:
    with np.load(path, allow_pickle=False) as data:
        return data["offsets"], data["items"], data["times"]


def write_meta(directory: Path, meta: dict[str, Any]) -> None:
    tmp = directory / "meta.json.tmp"
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True))
    os.replace(tmp, directory / "meta.json")


def read_meta(directory: Path) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((directory / "meta.json").read_text())
    return meta

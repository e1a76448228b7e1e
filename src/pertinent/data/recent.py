"""The interactions filters read: each user's newest interactions of each event type.

Personalize's interaction filters look at the 100 most recent interactions per user per
event type (spec §10.3), over everything imported or streamed, whatever the solution
trained on. Training stores that slice beside the model; serving adds later events.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

PER_EVENT_TYPE = 100
# Columns no filter can use (spec §10.2): the list of items shown, and the user itself
# (the slice is already per user).
_SKIP = ("IMPRESSION",)


def recent_interactions(parts: Sequence[Path], limit: int = PER_EVENT_TYPE) -> pl.DataFrame:
    """The newest ``limit`` rows per (user, event type, compared without case), grouped
    by user, oldest first; an empty frame without parts."""
    if not parts:
        return pl.DataFrame(schema={"USER_ID": pl.String, "ITEM_ID": pl.String})
    scans = [pl.scan_parquet(p) for p in parts]
    lazy = scans[0] if len(scans) == 1 else pl.concat(scans, how="diagonal_relaxed")
    names = lazy.collect_schema().names()
    lazy = lazy.select([c for c in names if c.upper() not in _SKIP]).unique(maintain_order=True)
    kind = pl.col("EVENT_TYPE").str.to_lowercase() if "EVENT_TYPE" in names else pl.lit("")
    order = pl.int_range(pl.len()).reverse().over(["USER_ID", kind], order_by="TIMESTAMP")
    return (
        lazy.with_row_index("_row")
        .filter(order < limit)
        .sort(["USER_ID", "TIMESTAMP", "_row"])
        .drop("_row")
        .collect()
    )

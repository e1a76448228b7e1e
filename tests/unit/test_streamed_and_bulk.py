"""Streamed events that a bulk import also brought count once in training."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pertinent.jobs.training import _not_imported


def test_events_also_imported_in_bulk_count_once(tmp_path: Path) -> None:
    bulk = pl.DataFrame(
        {
            "USER_ID": ["u1", "u1", "u2"],
            "ITEM_ID": ["a", "b", "a"],
            "TIMESTAMP": [100, 200, 100],
            "EVENT_TYPE": ["click", "click", "buy"],
        },
        schema_overrides={"TIMESTAMP": pl.Int64},
    )
    part = tmp_path / "part-0.parquet"
    bulk.write_parquet(part)
    streamed = pl.DataFrame(
        {
            "USER_ID": ["u1", "u1", "u2", "u3"],
            "ITEM_ID": ["b", "b", "a", "a"],
            "TIMESTAMP": [200, 201, 100, 100],
            "EVENT_TYPE": ["click", "click", "click", "buy"],
        },
        schema_overrides={"TIMESTAMP": pl.Int64},
    )
    kept = _not_imported(streamed, [part]).sort("USER_ID", "TIMESTAMP")
    # (u1, b, 200, click) came in bulk too; the others differ in time, type or user.
    assert kept.rows() == [
        ("u1", "b", 201, "click"),
        ("u2", "a", 100, "click"),
        ("u3", "a", 100, "buy"),
    ]
    assert _not_imported(streamed, []).height == 4

"""Bulk import benchmark: a bare ``polars.read_csv`` against Pertinent's validated import.

    .venv/bin/python bench/import.py              # 20M rows (the issue's target)
    .venv/bin/python bench/import.py --rows 1000000 --repeat 1

Generates (seeded, reused when present) ``bench/.work/interactions-<rows>.csv`` with
``USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE`` rows: 1M users and 100k items (scaled down for
small runs) drawn with Zipf-like popularity, a year of timestamps and four event types.
Then times, each in a fresh child process that also reports its peak RSS:

* ``bare``     ``polars.read_csv(path)``, the yardstick;
* ``import``   ``read_location`` + ``write_part`` (read, validate, write Parquet);
* ``snapshot`` ``build_snapshot`` over the written part ("ready to train").

Prints a table and writes ``bench/results/import.json``. Targets: import <= 2x bare and
<= 30 s; import peak RSS <= 3x the CSV size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pertinent.data.csv_import import PARQUET_COMPRESSION

ROOT = Path(__file__).resolve().parent
WORK = ROOT / ".work"
RESULTS = ROOT / "results" / "import.json"
SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Interactions",
        "namespace": "com.amazonaws.personalize.schema",
        "fields": [
            {"name": "USER_ID", "type": "string"},
            {"name": "ITEM_ID", "type": "string"},
            {"name": "TIMESTAMP", "type": "long"},
            {"name": "EVENT_TYPE", "type": "string"},
        ],
        "version": "1.0",
    }
)
EVENT_TYPES = ["click", "view", "add_to_cart", "purchase"]


def _skewed(rng: np.random.Generator, n: int, size: int, exponent: float) -> np.ndarray:
    """``size`` draws from ``n`` ids with weight 1/(rank+10)^exponent, ranks shuffled."""
    weights = 1.0 / np.power(np.arange(1, n + 1) + 10.0, exponent)
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    rank = np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), n - 1)
    return rng.permutation(n)[rank]


def generate(path: Path, rows: int, seed: int = 0) -> None:
    n_users = max(1000, min(1_000_000, rows // 20))
    n_items = max(100, min(100_000, rows // 200))
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as fh:
        fh.write(b"USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\n")
        for start in range(0, rows, 5_000_000):
            m = min(5_000_000, rows - start)
            frame = pl.DataFrame(
                {
                    "u": _skewed(rng, n_users, m, 0.6),
                    "i": _skewed(rng, n_items, m, 1.0),
                    "t": rng.integers(1_672_531_200, 1_704_067_200, m),
                    "e": rng.choice(len(EVENT_TYPES), m, p=[0.7, 0.2, 0.07, 0.03]),
                }
            ).select(
                USER_ID=pl.format("user_{}", pl.col("u").cast(pl.String).str.zfill(7)),
                ITEM_ID=pl.format("item_{}", pl.col("i").cast(pl.String).str.zfill(6)),
                TIMESTAMP=pl.col("t"),
                EVENT_TYPE=pl.col("e").replace_strict(
                    list(range(len(EVENT_TYPES))), EVENT_TYPES, return_dtype=pl.String
                ),
            )
            frame.write_csv(fh, include_header=False)
    tmp.replace(path)


# --- child processes: one measured operation each ---------------------------------------


def _child(mode: str, csv_path: Path, part: Path, rows: int) -> dict[str, Any]:
    if mode == "baseline":
        import pertinent.data.csv_import
        import pertinent.data.snapshot  # noqa: F401

        start = time.perf_counter()
        rows = 0
    elif mode == "generate":
        start = time.perf_counter()
        generate(csv_path, rows)
    elif mode == "bare":
        start = time.perf_counter()
        df = pl.read_csv(csv_path)
        rows = df.height
    elif mode == "import":
        from pertinent.data.csv_import import read_location, write_part
        from pertinent.data.schema import parse_schema

        schema = parse_schema(SCHEMA)
        start = time.perf_counter()
        df = read_location(str(csv_path), schema, "INTERACTIONS", min_rows=1000)
        rows = write_part(df, part)
    elif mode == "snapshot":
        from pertinent.data.snapshot import build_snapshot

        start = time.perf_counter()
        snap = build_snapshot([part])
        rows = len(snap.data.interactions)
    else:
        raise SystemExit(f"unknown mode {mode}")
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_rss_bytes": _peak_rss(), "rows": rows}


def _peak_rss() -> int:
    """This process's peak RSS. VmHWM, unlike ru_maxrss, does not carry over the parent's
    peak through fork + exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _run_child(mode: str, csv_path: Path, part: Path, rows: int = 0) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--csv", str(csv_path), "--part", str(part)]
        + ["--rows", str(rows)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _baseline_rss() -> int:
    """Peak RSS of a child that only imports Polars and Pertinent (the floor of each run)."""
    return int(_run_child("baseline", Path(), Path())["peak_rss_bytes"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-snapshot", action="store_true", help="skip build_snapshot")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--part", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(_child(args.child, args.csv, args.part, args.rows)))
        return

    WORK.mkdir(parents=True, exist_ok=True)
    csv_path = WORK / f"interactions-{args.rows}.csv"
    if not csv_path.exists():
        print(f"generating {csv_path} ...", flush=True)
        # In a child, so that this process stays small while it measures the others.
        took = _run_child("generate", csv_path, Path(), args.rows)["seconds"]
        print(f"  done in {took:.1f} s", flush=True)
    part = WORK / f"interactions-{args.rows}.parquet"
    file_bytes = csv_path.stat().st_size

    modes = ["bare", "import"] + ([] if args.no_snapshot else ["snapshot"])
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    # Warm the page cache so that no run pays for the first read from disk.
    _run_child("bare", csv_path, part)
    for _ in range(args.repeat):
        for mode in modes:
            runs[mode].append(_run_child(mode, csv_path, part))
            print(f"  {mode:<9} {runs[mode][-1]['seconds']:7.2f} s", flush=True)

    summary = {
        m: {
            "seconds_median": statistics.median(r["seconds"] for r in rs),
            "seconds_all": [round(r["seconds"], 3) for r in rs],
            "peak_rss_bytes": max(r["peak_rss_bytes"] for r in rs),
        }
        for m, rs in runs.items()
    }
    bare = summary["bare"]["seconds_median"]
    imp = summary["import"]["seconds_median"]
    result = {
        "rows": args.rows,
        "csv_bytes": file_bytes,
        "parquet_bytes": part.stat().st_size,
        "repeat": args.repeat,
        "parquet_compression": PARQUET_COMPRESSION,
        "baseline_rss_bytes": _baseline_rss(),
        "import_over_bare": imp / bare,
        "import_rss_over_csv": summary["import"]["peak_rss_bytes"] / file_bytes,
        "modes": summary,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "polars": pl.__version__,
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")

    mib = 1 << 20
    print(
        f"\n{args.rows:,} rows, CSV {file_bytes / mib:,.0f} MiB, Parquet part "
        f"{result['parquet_bytes'] / mib:,.0f} MiB, {os.cpu_count()} CPUs"
    )
    print(f"{'step':<10}{'median s':>10}{'x bare':>9}{'peak RSS MiB':>14}{'x CSV':>8}")
    for mode, s in summary.items():
        print(
            f"{mode:<10}{s['seconds_median']:>10.2f}{s['seconds_median'] / bare:>9.2f}"
            f"{s['peak_rss_bytes'] / mib:>14,.0f}{s['peak_rss_bytes'] / file_bytes:>8.2f}"
        )
    print(f"(a bare child process peaks at {result['baseline_rss_bytes'] / mib:,.0f} MiB)")
    print(f"wrote {RESULTS.relative_to(ROOT.parent)}")


if __name__ == "__main__":
    main()

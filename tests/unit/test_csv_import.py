"""Bulk CSV import: locations, typing, every kind of bad row, atomic parts, S3."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from pertinent.data.csv_import import (
    ImportFailed,
    list_location,
    read_location,
    write_part,
)
from pertinent.data.schema import DatasetSchema, parse_schema
from pertinent.data.snapshot import build_snapshot


def schema_of(name: str, fields: list[dict[str, Any]]) -> DatasetSchema:
    return parse_schema(json.dumps({"type": "record", "name": name, "fields": fields}))


INTERACTIONS = schema_of(
    "Interactions",
    [
        {"name": "USER_ID", "type": "string"},
        {"name": "ITEM_ID", "type": "string"},
        {"name": "TIMESTAMP", "type": "long"},
        {"name": "EVENT_TYPE", "type": ["null", "string"]},
        {"name": "EVENT_VALUE", "type": ["float", "null"]},
        {"name": "DEVICE", "type": ["null", "string"], "categorical": True},
        {"name": "IMPRESSION", "type": ["null", "string"]},
        {"name": "RATING", "type": ["null", "int"]},
        {"name": "SCORE", "type": ["null", "double"]},
        {"name": "PREMIUM", "type": ["null", "boolean"]},
    ],
)
ITEMS = schema_of(
    "Items",
    [
        {"name": "ITEM_ID", "type": "string"},
        {"name": "GENRES", "type": ["null", "string"], "categorical": True},
        {"name": "DESCRIPTION", "type": ["null", "string"], "textual": True},
        {"name": "CREATION_TIMESTAMP", "type": ["null", "long"]},
    ],
)
USERS = schema_of(
    "Users",
    [{"name": "USER_ID", "type": "string"}, {"name": "AGE", "type": "int"}],
)


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def import_text(
    tmp_path: Path, text: str | bytes, schema: DatasetSchema = INTERACTIONS, name: str = "d.csv"
) -> pl.DataFrame:
    dataset_type = schema.record_name.upper()
    return read_location(str(write(tmp_path / name, text)), schema, dataset_type)


# --- typing and column matching ---------------------------------------------------------


def test_typed_frame_in_schema_order(tmp_path: Path) -> None:
    df = import_text(
        tmp_path,
        "user_id,Item_Id,timestamp,EVENTTYPE,EVENT_VALUE,DEVICE,RATING,SCORE,PREMIUM\n"
        "u1,i1,1700000000,click,0.5,phone|tablet,4,1.25,true\n"
        "u2,i2,1700000001,,,,,,false\n",
    )
    assert df.schema == pl.Schema(
        {
            "USER_ID": pl.String,
            "ITEM_ID": pl.String,
            "TIMESTAMP": pl.Int64,
            "EVENT_TYPE": pl.String,
            "EVENT_VALUE": pl.Float32,
            "DEVICE": pl.String,
            "IMPRESSION": pl.String,
            "RATING": pl.Int32,
            "SCORE": pl.Float64,
            "PREMIUM": pl.Boolean,
        }
    )
    assert df.rows() == [
        ("u1", "i1", 1700000000, "click", 0.5, "phone|tablet", None, 4, 1.25, True),
        ("u2", "i2", 1700000001, None, None, None, None, None, None, False),
    ]


def test_columns_may_come_in_any_order(tmp_path: Path) -> None:
    df = import_text(tmp_path, "TIMESTAMP,ITEM_ID,USER_ID\n5,i,u\n")
    assert df.select("USER_ID", "ITEM_ID", "TIMESTAMP").rows() == [("u", "i", 5)]


def test_quoted_values_crlf_bom_and_blank_lines(tmp_path: Path) -> None:
    text = '\ufeffUSER_ID,ITEM_ID,TIMESTAMP,DEVICE\r\n"u,1",i1,1,"a\r\nb"\r\n\r\nu2,i2,2,\r\n\r\n'
    df = import_text(tmp_path, text)
    assert df.select("USER_ID", "ITEM_ID", "TIMESTAMP", "DEVICE").rows() == [
        ("u,1", "i1", 1, "a\r\nb"),
        ("u2", "i2", 2, None),
    ]


def test_header_only_file_has_no_rows(tmp_path: Path) -> None:
    df = import_text(tmp_path, "USER_ID,ITEM_ID,TIMESTAMP\n")
    assert df.height == 0
    assert df.columns == list(INTERACTIONS.names)


def test_booleans_ignore_case(tmp_path: Path) -> None:
    df = import_text(tmp_path, "USER_ID,ITEM_ID,TIMESTAMP,PREMIUM\nu,i,1,TRUE\nu,i,2,False\n")
    assert df["PREMIUM"].to_list() == [True, False]


def test_textual_values_are_truncated_and_unescaped(tmp_path: Path) -> None:
    long_text = "x" * 25_000
    text = (
        "ITEM_ID,DESCRIPTION,GENRES\n"
        f'i1,"{long_text}",Drama\n'
        'i2,"Say \\"hi\\" to C:\\\\ now",Comedy|Drama\n'
        'i3,"multi\nline",\n'
    )
    df = import_text(tmp_path, text, ITEMS)
    assert df["DESCRIPTION"].to_list() == ["x" * 20_000, 'Say "hi" to C:\\ now', "multi\nline"]
    assert df["GENRES"].to_list() == ["Drama", "Comedy|Drama", None]


def test_textual_without_backslashes_takes_the_fast_path(tmp_path: Path) -> None:
    df = import_text(tmp_path, 'ITEM_ID,DESCRIPTION\ni1,"plain, ""quoted"" text"\n', ITEMS)
    assert df["DESCRIPTION"].to_list() == ['plain, "quoted" text']


# --- bad input: every message names file, line, column and reason -----------------------

BAD_INTERACTIONS: list[tuple[str, str, str]] = [
    (
        "bad long",
        "USER_ID,ITEM_ID,TIMESTAMP\nu1,i1,100\nu1,i1,17x\n",
        'd.csv line 3, column TIMESTAMP: "17x" is not a long.',
    ),
    (
        "long written as a float",
        "USER_ID,ITEM_ID,TIMESTAMP\nu1,i1,1.5\n",
        'd.csv line 2, column TIMESTAMP: "1.5" is not a long.',
    ),
    (
        "int out of range",
        "USER_ID,ITEM_ID,TIMESTAMP,RATING\nu1,i1,1,3000000000\n",
        'd.csv line 2, column RATING: "3000000000" is not an int.',
    ),
    (
        "bad float",
        "USER_ID,ITEM_ID,TIMESTAMP,EVENT_VALUE\nu1,i1,1,0.5\nu1,i1,1,high\n",
        'd.csv line 3, column EVENT_VALUE: "high" is not a float.',
    ),
    (
        "bad double",
        "USER_ID,ITEM_ID,TIMESTAMP,SCORE\nu1,i1,1,1e400x\n",
        'd.csv line 2, column SCORE: "1e400x" is not a double.',
    ),
    (
        "bad boolean",
        "USER_ID,ITEM_ID,TIMESTAMP,PREMIUM\nu1,i1,1,true\nu1,i1,1,yes\n",
        'd.csv line 3, column PREMIUM: "yes" is not a boolean (true or false).',
    ),
    (
        "line numbers count lines inside quoted values",
        'USER_ID,ITEM_ID,TIMESTAMP,DEVICE\nu1,i1,1,"a\nb\nc"\n\nu1,i1,x,d\n',
        'd.csv line 6, column TIMESTAMP: "x" is not a long.',
    ),
    (
        "first bad value wins across columns",
        "USER_ID,ITEM_ID,TIMESTAMP,RATING\nu1,i1,1,2\nu1,i1,1,two\nu1,i1,one,2\n",
        'd.csv line 3, column RATING: "two" is not an int.',
    ),
    (
        "empty required id",
        "USER_ID,ITEM_ID,TIMESTAMP\nu1,i1,1\n,i1,1\n",
        "d.csv line 3, column USER_ID: the value is empty, but USER_ID is required.",
    ),
    (
        "quoted empty id",
        'USER_ID,ITEM_ID,TIMESTAMP\nu1,"",1\n',
        "d.csv line 2, column ITEM_ID: the value is empty, but ITEM_ID is required.",
    ),
    (
        "empty timestamp",
        "USER_ID,ITEM_ID,TIMESTAMP\nu1,i1,\n",
        "d.csv line 2, column TIMESTAMP: the value is empty, but TIMESTAMP is required.",
    ),
    (
        "too few columns",
        "USER_ID,ITEM_ID,TIMESTAMP\nu1,i1,1\nu2,i2\n",
        "d.csv line 3: found 2 columns, expected 3 (as many as the header has).",
    ),
    (
        "too many columns",
        "USER_ID,ITEM_ID,TIMESTAMP\nu1,i1,1\nu1,i1,1,extra\n",
        "d.csv line 3: found 4 columns, expected 3 (as many as the header has).",
    ),
    (
        "too many columns after a multi-line value",
        'USER_ID,ITEM_ID,TIMESTAMP,DEVICE\nu1,i1,1,"x\ny"\nu1,i1,1,d,extra\n',
        "d.csv line 4: found 5 columns, expected 4 (as many as the header has).",
    ),
    (
        "id too long",
        "USER_ID,ITEM_ID,TIMESTAMP\nu1,i1,1\n" + "u" * 257 + ",i1,1\n",
        "d.csv line 3, column USER_ID: Length cannot be more than 256 characters for USER_ID.",
    ),
    (
        "categorical value too long",
        "USER_ID,ITEM_ID,TIMESTAMP,DEVICE\nu1,i1,1,a|" + "b" * 1001 + "\n",
        "d.csv line 2, column DEVICE: Length cannot be more than 1000 characters for each "
        "|-separated value of DEVICE.",
    ),
    (
        "impression value too long",
        "USER_ID,ITEM_ID,TIMESTAMP,IMPRESSION\nu1,i1,1,i1|" + "i" * 1001 + "\n",
        "d.csv line 2, column IMPRESSION: Length cannot be more than 1000 characters for each "
        "|-separated value of IMPRESSION.",
    ),
    (
        "plain string too long",
        "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\nu1,i1,1," + "e" * 1001 + "\n",
        "d.csv line 2, column EVENT_TYPE: Length cannot be more than 1000 characters for "
        "EVENT_TYPE.",
    ),
    (
        "timestamp in milliseconds",
        "USER_ID,ITEM_ID,TIMESTAMP\nu1,i1,1700000000\nu1,i1,1700000000000\n",
        'd.csv line 3, column TIMESTAMP: "1700000000000" is too large for Unix epoch seconds '
        "(is it in milliseconds?). TIMESTAMP must be in seconds.",
    ),
    (
        "missing required columns",
        "USER_ID,EVENT_TYPE\nu1,click\n",
        "Input CSV is missing the following columns: [ITEM_ID, TIMESTAMP] (d.csv).",
    ),
    (
        "column not in schema",
        "USER_ID,ITEM_ID,TIMESTAMP,COLOR\nu1,i1,1,red\n",
        'd.csv: column "COLOR" is not a field of the schema. The schema\'s fields are '
        "[USER_ID, ITEM_ID, TIMESTAMP, EVENT_TYPE, EVENT_VALUE, DEVICE, IMPRESSION, RATING, "
        "SCORE, PREMIUM].",
    ),
    (
        "two columns for one field",
        "USER_ID,ITEM_ID,TIMESTAMP,UserId\nu1,i1,1,u1\n",
        'd.csv: columns "USER_ID" and "UserId" both name the field "USER_ID".',
    ),
    (
        "empty file",
        "",
        "d.csv has no header row: the first line must name the columns, e.g. USER_ID,ITEM_ID,"
        "TIMESTAMP,EVENT_TYPE,EVENT_VALUE,DEVICE,IMPRESSION,RATING,SCORE,PREMIUM.",
    ),
]


@pytest.mark.parametrize(
    ("text", "message"), [c[1:] for c in BAD_INTERACTIONS], ids=[c[0] for c in BAD_INTERACTIONS]
)
def test_bad_rows_fail_with_file_line_column(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ImportFailed) as err:
        import_text(tmp_path, text)
    assert err.value.message == message
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b"USER_ID,ITEM_ID,TIMESTAMP\nu1,i1,1\nu2,i\xff2,2\n",
            "d.csv line 3, column ITEM_ID: the value is not valid UTF-8 text.",
        ),
        (
            b"USER_ID,ITEM_ID,TIMESTAMP\nu1,i1,x\nu2,i\xff2,2\n",
            'd.csv line 2, column TIMESTAMP: "x" is not a long.',
        ),
        (b"USER_ID,IT\xffEM_ID\n", "d.csv line 1: the header is not valid UTF-8 text."),
    ],
)
def test_invalid_utf8(tmp_path: Path, data: bytes, message: str) -> None:
    with pytest.raises(ImportFailed) as err:
        import_text(tmp_path, data)
    assert err.value.message == message


BAD_OTHERS: list[tuple[DatasetSchema, str, str]] = [
    (
        USERS,
        "USER_ID,AGE\nu1,30\nu2,\n",
        "d.csv line 3, column AGE: the value is empty, but AGE is required.",
    ),
    (USERS, "USER_ID,AGE\nu1,thirty\n", 'd.csv line 2, column AGE: "thirty" is not an int.'),
    (
        ITEMS,
        'ITEM_ID,DESCRIPTION,CREATION_TIMESTAMP\ni1,"a \\"b\\"",1\ni2,"c",soon\n',
        'd.csv line 3, column CREATION_TIMESTAMP: "soon" is not a long.',
    ),
    (
        ITEMS,
        'ITEM_ID,DESCRIPTION\ni1,"a \\"b\\""\ni2,"c",extra\n',
        "d.csv line 3: found 3 columns, expected 2 (as many as the header has).",
    ),
    (
        ITEMS,
        "ITEM_ID,CREATION_TIMESTAMP\ni1,1700000000123\n",
        'd.csv line 2, column CREATION_TIMESTAMP: "1700000000123" is too large for Unix epoch '
        "seconds (is it in milliseconds?). CREATION_TIMESTAMP must be in seconds.",
    ),
    (
        ITEMS,
        "ITEM_ID,GENRES\ni1,Drama\n" + "i" * 300 + ",Comedy\n",
        "d.csv line 3, column ITEM_ID: Length cannot be more than 256 characters for ITEM_ID.",
    ),
]


@pytest.mark.parametrize(("schema", "text", "message"), BAD_OTHERS)
def test_bad_rows_in_other_datasets(
    tmp_path: Path, schema: DatasetSchema, text: str, message: str
) -> None:
    with pytest.raises(ImportFailed) as err:
        import_text(tmp_path, text, schema)
    assert err.value.message == message


def test_bad_row_deep_in_a_large_file(tmp_path: Path) -> None:
    n = 200_000
    frame = pl.DataFrame(
        {
            "USER_ID": [f"u{i % 997}" for i in range(n)],
            "ITEM_ID": [f"i{i % 101}" for i in range(n)],
            "TIMESTAMP": [str(1_600_000_000 + i) for i in range(n)],
        }
    )
    frame[150_001, "TIMESTAMP"] = "12:00"
    frame.write_csv(tmp_path / "big.csv")
    with pytest.raises(ImportFailed) as err:
        read_location(str(tmp_path / "big.csv"), INTERACTIONS, "INTERACTIONS")
    assert err.value.message == 'big.csv line 150003, column TIMESTAMP: "12:00" is not a long.'


def test_min_rows(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "USER_ID,ITEM_ID,TIMESTAMP\n" + "u,i,1\n" * 999)
    with pytest.raises(ImportFailed) as err:
        read_location(str(path), INTERACTIONS, "Interactions", min_rows=1000)
    assert err.value.message == (
        "Input data has 999 interactions records; a dataset import job needs at least 1000."
    )
    write(tmp_path / "d.csv", "USER_ID,ITEM_ID,TIMESTAMP\n" + "u,i,1\n" * 1000)
    assert read_location(str(path), INTERACTIONS, "Interactions", min_rows=1000).height == 1000


# --- locations --------------------------------------------------------------------------


def test_folder_reads_every_csv_in_order(tmp_path: Path) -> None:
    write(tmp_path / "in" / "b.csv", "USER_ID,ITEM_ID,TIMESTAMP\nu2,i2,2\n")
    write(tmp_path / "in" / "a.csv", "TIMESTAMP,USER_ID,ITEM_ID\n1,u1,i1\n")
    write(tmp_path / "in" / "sub" / "c.csv", "USER_ID,ITEM_ID,TIMESTAMP\nu3,i3,3\n")
    write(tmp_path / "in" / "notes.txt", "not data")
    folder = tmp_path / "in"
    expected = [str(folder / "a.csv"), str(folder / "b.csv"), str(folder / "sub" / "c.csv")]
    assert list_location(str(folder), s3_endpoint_url=None) == expected
    assert list_location(f"file://{folder}/", s3_endpoint_url=None) == expected
    df = read_location(f"file://{folder}", INTERACTIONS, "INTERACTIONS")
    assert df["USER_ID"].to_list() == ["u1", "u2", "u3"]


def test_error_in_a_folder_names_the_file(tmp_path: Path) -> None:
    write(tmp_path / "in" / "a.csv", "USER_ID,ITEM_ID,TIMESTAMP\nu1,i1,1\n")
    write(tmp_path / "in" / "sub" / "b.csv", "USER_ID,ITEM_ID,TIMESTAMP\nu1,i1,1\nu2,i2,later\n")
    with pytest.raises(ImportFailed) as err:
        read_location(str(tmp_path / "in"), INTERACTIONS, "INTERACTIONS")
    assert err.value.message == 'sub/b.csv line 3, column TIMESTAMP: "later" is not a long.'


def test_file_uri_with_escapes(tmp_path: Path) -> None:
    path = write(tmp_path / "my data.csv", "USER_ID,ITEM_ID,TIMESTAMP\nu1,i1,1\n")
    assert list_location(f"file://{tmp_path}/my%20data.csv", s3_endpoint_url=None) == [str(path)]
    assert list_location(f"file://localhost{path}", s3_endpoint_url=None) == [str(path)]


@pytest.mark.parametrize(
    ("location", "message"),
    [
        (
            "data/interactions.csv",
            "Invalid Data location. 'data/interactions.csv' is not supported: use "
            "s3://bucket/file.csv, s3://bucket/folder/, file:///absolute/path or an absolute "
            "path.",
        ),
        (
            "https://example.com/x.csv",
            "Invalid Data location. 'https://example.com/x.csv' is not supported: use "
            "s3://bucket/file.csv, s3://bucket/folder/, file:///absolute/path or an absolute "
            "path.",
        ),
        (
            "file://otherhost/data.csv",
            "Invalid Data location. file://otherhost/data.csv names another host; use "
            "file:///absolute/path on this server.",
        ),
        ("/nonexistent/x.csv", "Invalid Data location. /nonexistent/x.csv does not exist."),
        ("s3:///key.csv", "Invalid Data location. s3:///key.csv names no bucket."),
    ],
)
def test_invalid_locations(location: str, message: str) -> None:
    with pytest.raises(ImportFailed) as err:
        list_location(location, s3_endpoint_url=None)
    assert err.value.message == message


def test_folder_without_csv_files(tmp_path: Path) -> None:
    write(tmp_path / "readme.txt", "hello")
    with pytest.raises(ImportFailed) as err:
        read_location(str(tmp_path), INTERACTIONS, "INTERACTIONS")
    assert err.value.message == f"Invalid Data location. The folder {tmp_path} has no CSV files."


# --- parts ------------------------------------------------------------------------------


def test_write_part_round_trip(tmp_path: Path) -> None:
    df = import_text(tmp_path, "USER_ID,ITEM_ID,TIMESTAMP,PREMIUM,RATING\nu1,i1,5,true,3\n")
    part = tmp_path / "parts" / "p1.parquet"
    assert write_part(df, part) == 1
    assert pl.read_parquet(part).equals(df)
    assert sorted(os.listdir(part.parent)) == ["p1.parquet"]


def test_write_part_failure_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    part = tmp_path / "p.parquet"
    old = pl.DataFrame({"a": [1]})
    write_part(old, part)

    def broken(self: pl.DataFrame, file: Any, **kwargs: Any) -> None:
        Path(file).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", broken)
    with pytest.raises(OSError, match="disk full"):
        write_part(pl.DataFrame({"a": [2]}), part)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["p.parquet"]
    assert pl.read_parquet(part).equals(old)


def test_full_round_trip_to_snapshot(tmp_path: Path) -> None:
    """CSV files -> validated frames -> Parquet parts -> training arrays."""
    rng = np.random.default_rng(7)
    n = 5000
    users = rng.integers(0, 60, n)
    items = rng.integers(0, 40, n)
    times = rng.integers(1_600_000_000, 1_600_100_000, n)
    kinds = rng.choice(["click", "Click", "purchase"], n)
    lines = [f"u{u},i{i},{t},{k}" for u, i, t, k in zip(users, items, times, kinds, strict=True)]
    write(tmp_path / "in" / "part-1.csv", "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\n")
    with (tmp_path / "in" / "part-1.csv").open("a") as fh:
        fh.write("\n".join(lines[:3000]) + "\n")
    write(tmp_path / "in" / "part-2.csv", "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\n")
    with (tmp_path / "in" / "part-2.csv").open("a") as fh:
        fh.write("\n".join(lines[3000:]) + "\n")
    write(tmp_path / "items.csv", "ITEM_ID,GENRES,CREATION_TIMESTAMP\ni1,A|B,10\ni999,C,20\n")

    interactions = read_location(str(tmp_path / "in"), INTERACTIONS, "INTERACTIONS", min_rows=1000)
    assert interactions.height == n
    item_rows = read_location(str(tmp_path / "items.csv"), ITEMS, "ITEMS")
    write_part(interactions, tmp_path / "parts" / "interactions-1.parquet")
    write_part(item_rows, tmp_path / "parts" / "items-1.parquet")

    snap = build_snapshot(
        [tmp_path / "parts" / "interactions-1.parquet"],
        [tmp_path / "parts" / "items-1.parquet"],
        event_type="CLICK",
    )
    expected_rows = {
        (f"u{u}", f"i{i}", int(t))
        for u, i, t, k in zip(users, items, times, kinds, strict=True)
        if k.lower() == "click"
    }
    inter = snap.data.interactions
    got = {
        (snap.user_ids[u], snap.item_ids[i], int(t))
        for u, i, t in zip(inter.user, inter.item, inter.timestamp, strict=True)
    }
    assert got == expected_rows
    assert inter.event_types == ("click",)
    assert "i999" in snap.item_index()
    assert snap.data.item_creation_time is not None
    assert snap.data.item_creation_time[snap.item_index()["i1"]] == 10


# --- S3 ---------------------------------------------------------------------------------


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    moto_server = pytest.importorskip("moto.server")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def test_s3_key_and_prefix(s3_endpoint: str) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="data-bucket")
    header = "USER_ID,ITEM_ID,TIMESTAMP\n"
    s3.put_object(Bucket="data-bucket", Key="one.csv", Body=header + "u0,i0,1\n")
    s3.put_object(Bucket="data-bucket", Key="batch/b.csv", Body=header + "u2,i2,3\n")
    s3.put_object(Bucket="data-bucket", Key="batch/a.csv", Body=header + "u1,i1,2\n")
    s3.put_object(Bucket="data-bucket", Key="batch/bad/c.csv", Body=header + "u3,i3,x\n")

    df = read_location(
        "s3://data-bucket/one.csv", INTERACTIONS, "INTERACTIONS", s3_endpoint_url=s3_endpoint
    )
    assert df.select("USER_ID", "ITEM_ID", "TIMESTAMP").rows() == [("u0", "i0", 1)]

    assert list_location("s3://data-bucket/batch/", s3_endpoint_url=s3_endpoint) == [
        "s3://data-bucket/batch/a.csv",
        "s3://data-bucket/batch/b.csv",
        "s3://data-bucket/batch/bad/c.csv",
    ]
    with pytest.raises(ImportFailed) as err:
        read_location(
            "s3://data-bucket/batch/", INTERACTIONS, "INTERACTIONS", s3_endpoint_url=s3_endpoint
        )
    assert err.value.message == 'bad/c.csv line 2, column TIMESTAMP: "x" is not a long.'

    s3.delete_object(Bucket="data-bucket", Key="batch/bad/c.csv")
    df = read_location(
        "s3://data-bucket/batch/", INTERACTIONS, "INTERACTIONS", s3_endpoint_url=s3_endpoint
    )
    assert df["USER_ID"].to_list() == ["u1", "u2"]

    for missing, why in [
        ("s3://data-bucket/nothing.csv", "does not exist"),
        ("s3://data-bucket/empty/", "has no files"),
        ("s3://no-such-bucket/x.csv", "does not exist"),
    ]:
        with pytest.raises(ImportFailed) as err:
            list_location(missing, s3_endpoint_url=s3_endpoint)
        assert err.value.message == f"Invalid Data location. {missing} {why}."

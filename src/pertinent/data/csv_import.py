"""Bulk CSV import: read a data location, check every row against the schema, all or nothing.

The happy path is one typed ``polars.read_csv`` per file plus a handful of vectorised
aggregates (null counts, maximum lengths), so a clean import costs little more than
reading the file. Only when something is wrong does the code spend time finding *where*:
it re-reads the file as strings to name the first bad line and column, because a
person fixing a 20-million-line file needs the line, not "could not parse".

Line numbers are physical lines, 1-based, header = line 1: a record whose quoted text
spans several lines moves every later record down by those lines.

CSV dialect (spec §7.4): comma separated, header row, ``"`` quotes. Textual fields may
escape ``"`` and ``\\`` with a backslash; files of a schema with a textual field that
contain a backslash are read with PyArrow, which understands that escape.
"""

from __future__ import annotations

import csv
import io
import mmap
import os
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final
from urllib.parse import unquote, urlparse

import polars as pl

from pertinent.data.schema import DatasetSchema, Field, canonical_dataset_type, normalize_name

MAX_ID_CHARS = 256
MAX_VALUE_CHARS = 1000
MAX_TEXT_CHARS = 20_000
# Past 1e11 (the year 5138) a "seconds" timestamp is almost surely in milliseconds.
MAX_EPOCH_SECONDS = 100_000_000_000
ID_FIELDS = frozenset({"USERID", "ITEMID", "ACTIONID"})
TIMESTAMP_FIELDS = frozenset({"TIMESTAMP", "CREATIONTIMESTAMP"})
# Reserved non-categorical fields whose cells are still |-separated lists.
LIST_FIELDS = frozenset({"IMPRESSION"})

# Chosen by measurement on the 20M-row benchmark (bench/import.py): lz4 writes nearly as
# fast as no compression and halves the file; zstd is ~30 % smaller again but ~40 % slower.
PARQUET_COMPRESSION: Final = "lz4"

POLARS_TYPES: dict[str, pl.DataType] = {
    "string": pl.String(),
    "int": pl.Int32(),
    "long": pl.Int64(),
    "float": pl.Float32(),
    "double": pl.Float64(),
    "boolean": pl.Boolean(),
}
_TYPE_NAMES = {"int": "an int", "boolean": "a boolean (true or false)"}


class ImportFailed(Exception):
    """An import that must leave the dataset unchanged; ``message`` is the failureReason."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- locations --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    uri: str  # absolute local path or s3://bucket/key
    display: str  # what error messages call the file


def list_location(location: str, *, s3_endpoint_url: str | None) -> list[str]:
    """Every file a data location names, sorted: local paths or ``s3://`` URIs."""
    return [s.uri for s in _sources(location, s3_endpoint_url)]


def _sources(location: str, s3_endpoint_url: str | None) -> list[_Source]:
    if location.startswith("s3://"):
        return _s3_sources(location, s3_endpoint_url)
    return _local_sources(location, _local_path(location))


def _local_path(location: str) -> Path:
    if location.startswith("file://"):
        parsed = urlparse(location)
        if parsed.netloc not in ("", "localhost"):
            raise ImportFailed(
                f"Invalid Data location. {location} names another host; "
                "use file:///absolute/path on this server."
            )
        path = unquote(parsed.path)
    elif location.startswith("/"):
        path = location
    else:
        raise ImportFailed(
            f"Invalid Data location. {location!r} is not supported: use s3://bucket/file.csv, "
            "s3://bucket/folder/, file:///absolute/path or an absolute path."
        )
    if not path.startswith("/"):
        raise ImportFailed(f"Invalid Data location. {location} is not an absolute path.")
    return Path(path)


def _local_sources(location: str, path: Path) -> list[_Source]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.csv") if p.is_file())
        if not files:
            raise ImportFailed(f"Invalid Data location. The folder {location} has no CSV files.")
        return [_Source(str(p), str(p.relative_to(path))) for p in files]
    if path.is_file():
        return [_Source(str(path), path.name)]
    raise ImportFailed(f"Invalid Data location. {location} does not exist.")


def _s3fs(endpoint_url: str | None) -> Any:
    import s3fs

    client_kwargs = {"endpoint_url": endpoint_url} if endpoint_url else {}
    # A cached instance would also cache listings: a later import must see new objects.
    return s3fs.S3FileSystem(
        client_kwargs=client_kwargs, skip_instance_cache=True, use_listings_cache=False
    )


def _s3_sources(location: str, endpoint_url: str | None) -> list[_Source]:
    parsed = urlparse(location)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if not bucket:
        raise ImportFailed(f"Invalid Data location. {location} names no bucket.")
    fs = _s3fs(endpoint_url)
    try:
        if key and not key.endswith("/") and fs.isfile(f"{bucket}/{key}"):
            return [_Source(f"s3://{bucket}/{key}", key.rsplit("/", 1)[-1])]
        prefix = key if not key or key.endswith("/") else key + "/"
        found = sorted(p for p in fs.find(f"{bucket}/{prefix}") if not p.endswith("/"))
    except PermissionError:
        raise ImportFailed("Insufficient privileges for accessing data in Amazon S3.") from None
    except FileNotFoundError:
        raise ImportFailed(f"Invalid Data location. {location} does not exist.") from None
    except OSError as exc:
        raise ImportFailed(f"Could not read {location}: {exc}") from None
    if not found:
        what = "has no files" if prefix == key else "does not exist"
        raise ImportFailed(f"Invalid Data location. {location} {what}.")
    start = len(bucket) + 1 + len(prefix)
    return [_Source(f"s3://{p}", p[start:]) for p in found]


# --- the import plan: what each schema field needs --------------------------------------


@dataclass(frozen=True)
class _Plan:
    schema: DatasetSchema
    dataset_type: str
    required: frozenset[str]  # schema names that may not be empty

    @classmethod
    def build(cls, schema: DatasetSchema, dataset_type: str) -> _Plan:
        required = frozenset(
            f.name for f in schema.fields if not f.nullable or normalize_name(f.name) in ID_FIELDS
        )
        return cls(schema, canonical_dataset_type(dataset_type), required)


def read_location(
    location: str,
    schema: DatasetSchema,
    dataset_type: str,
    *,
    s3_endpoint_url: str | None = None,
    min_rows: int = 0,
) -> pl.DataFrame:
    """Read and check every file of ``location``; one typed column per schema field.

    Raises ImportFailed naming the file, line, column and reason of the first bad value.
    """
    plan = _Plan.build(schema, dataset_type)
    sources = _sources(location, s3_endpoint_url)
    frames: list[pl.DataFrame] = []
    if location.startswith("s3://"):
        fs = _s3fs(s3_endpoint_url)
        with tempfile.TemporaryDirectory(prefix="pertinent-import-") as tmp:
            for src in sources:
                local = Path(tmp) / "object.csv"
                try:
                    fs.get_file(src.uri, str(local))
                except PermissionError:
                    raise ImportFailed(
                        "Insufficient privileges for accessing data in Amazon S3."
                    ) from None
                except OSError as exc:
                    raise ImportFailed(f"Could not read {src.uri}: {exc}") from None
                frames.append(_read_file(local, src.display, plan))
                local.unlink()
    else:
        frames = [_read_file(Path(src.uri), src.display, plan) for src in sources]
    df = frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical", rechunk=False)
    if df.height < min_rows:
        kind = plan.dataset_type.lower().replace("_", " ")
        raise ImportFailed(
            f"Input data has {df.height} {kind} records; a dataset import job needs at least "
            f"{min_rows}."
        )
    return df


def write_part(df: pl.DataFrame, path: Path) -> int:
    """Write ``df`` as the Parquet file ``path``, atomically and durably; returns its rows.

    A reader sees either no file or the whole file: the data goes to a temporary name in
    the same directory, is fsynced, then renamed over ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with _WriteBehind(tmp):
            df.write_parquet(tmp, compression=PARQUET_COMPRESSION, statistics=False)
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync(path.parent)
    return df.height


class _WriteBehind:
    """Flushes ``path`` to disk every so often while another thread writes it.

    Polars encodes on every core while the disk sits idle; flushing as it goes overlaps
    the two, so the fsync that makes the part durable finds little left to write
    (measured: about 10 % off write + fsync for a 300 MB part).
    """

    def __init__(self, path: Path, interval: float = 0.2) -> None:
        self._path = path
        self._interval = interval
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="write-behind", daemon=True)

    def __enter__(self) -> None:
        self._thread.start()

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        fd: int | None = None
        try:
            while not self._done.wait(self._interval):
                if fd is None:
                    try:
                        fd = os.open(self._path, os.O_RDONLY)
                    except FileNotFoundError:
                        continue
                os.fdatasync(fd)
        except OSError:
            pass  # the final fsync reports any real problem
        finally:
            if fd is not None:
                os.close(fd)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- one file ---------------------------------------------------------------------------


def _read_file(path: Path, display: str, plan: _Plan) -> pl.DataFrame:
    """Read one local CSV file into the schema's typed columns (see ``read_location``)."""
    fields = _map_header(_read_header(path, display, plan.schema), display, plan)
    dtypes = [POLARS_TYPES[f.type] for f in fields]
    names = [f.name for f in fields]
    escape = any(f.textual for f in fields) and _contains(path, b"\\")
    if escape:
        strings = _read_escaped(path, display, names)
        df = _cast_strings(strings, fields, display)
    else:
        try:
            df = pl.read_csv(
                path,
                has_header=True,
                infer_schema=False,
                schema_overrides=dtypes,
                quote_char='"',
                raise_if_empty=False,
            )
        except pl.exceptions.PolarsError as exc:
            raise _diagnose(path, display, fields, exc) from None
        df.columns = names
    df = _check_values(df, path, display, fields, plan, escape=escape)

    present = {f.name for f in fields}
    return df.select(
        pl.col(f.name) if f.name in present else pl.lit(None, POLARS_TYPES[f.type]).alias(f.name)
        for f in plan.schema.fields
    )


def _read_header(path: Path, display: str, schema: DatasetSchema) -> list[str]:
    with path.open("rb") as fh:
        head = fh.read(1 << 16)
        while b"\n" not in head:
            more = fh.read(1 << 16)
            if not more:
                break
            head += more
    line = head.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportFailed(f"{display} line 1: the header is not valid UTF-8 text.") from None
    if not text.strip():
        raise ImportFailed(
            f"{display} has no header row: the first line must name the columns, "
            f"e.g. {','.join(schema.names)}."
        )
    return next(csv.reader([text]))


def _map_header(header: list[str], display: str, plan: _Plan) -> list[Field]:
    """The schema field of each CSV column, matched ignoring case and underscores."""
    schema = plan.schema
    fields: list[Field] = []
    by_field: dict[str, str] = {}
    for column in header:
        field = schema.field(column.strip())
        if field is None:
            known = ", ".join(schema.names)
            raise ImportFailed(
                f'{display}: column "{column}" is not a field of the schema. '
                f"The schema's fields are [{known}]."
            )
        if field.name in by_field:
            raise ImportFailed(
                f'{display}: columns "{by_field[field.name]}" and "{column}" both name the '
                f'field "{field.name}".'
            )
        by_field[field.name] = column
        fields.append(field)
    missing = [f.name for f in schema.fields if f.name in plan.required and f.name not in by_field]
    if missing:
        raise ImportFailed(
            f"Input CSV is missing the following columns: [{', '.join(missing)}] ({display})."
        )
    return fields


def _contains(path: Path, needle: bytes) -> bool:
    if path.stat().st_size == 0:
        return False
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        return mm.find(needle) >= 0


def _read_escaped(path: Path, display: str, names: list[str]) -> pl.DataFrame:
    """All columns as strings, with ``\\`` escapes honoured (PyArrow's reader)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1),
            parse_options=pacsv.ParseOptions(
                escape_char="\\", newlines_in_values=True, ignore_empty_lines=False
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        ragged = _first_ragged_record(path, len(names), escape=True)
        if ragged is not None:
            raise _ragged_error(display, *ragged, len(names)) from None
        if "UTF8" in str(exc):
            raise ImportFailed(f"{display}: the file is not valid UTF-8 text.") from None
        raise ImportFailed(f"{display}: could not read the file: {exc}") from None
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


# --- checks -----------------------------------------------------------------------------


def _line_of(df: pl.DataFrame, row: int) -> int:
    """Physical line of data row ``row``: header line + earlier rows + their inner newlines."""
    text = [c for c, t in df.schema.items() if t == pl.String]
    newlines = 0
    if text and row > 0:
        counts = pl.sum_horizontal(
            pl.col(c).str.count_matches("\n", literal=True).fill_null(0) for c in text
        )
        newlines = int(df.head(row).select(counts.sum()).item() or 0)
    return row + 2 + newlines


def _first_row(df: pl.DataFrame, bad: pl.Expr) -> int | None:
    hit = df.select(bad.fill_null(False).arg_true().first()).item()
    return None if hit is None else int(hit)


def _show(value: object) -> str:
    text = str(value)
    return f'"{text[:60]}..."' if len(text) > 60 else f'"{text}"'


def _check_values(
    df: pl.DataFrame,
    path: Path,
    display: str,
    fields: list[Field],
    plan: _Plan,
    *,
    escape: bool,
) -> pl.DataFrame:
    """Nulls, lengths and timestamp units, vectorised; drops blank lines."""
    required = [f.name for f in fields if f.name in plan.required]
    strings = [f for f in fields if f.type == "string"]
    stamps = [f.name for f in fields if normalize_name(f.name) in TIMESTAMP_FIELDS]
    aggs: list[pl.Expr] = [pl.col(c).null_count().alias(f"n:{c}") for c in required]
    aggs += [pl.col(f.name).str.len_bytes().max().alias(f"len:{f.name}") for f in strings]
    aggs += [
        pl.col(f.name).str.len_bytes().min().alias(f"min:{f.name}")
        for f in strings
        if normalize_name(f.name) in ID_FIELDS
    ]
    aggs += [pl.col(c).max().alias(f"max:{c}") for c in stamps]
    # Lazily, so that Polars shares the length computations and runs them in parallel.
    stats = df.lazy().select(aggs).collect().row(0, named=True) if aggs and df.height else {}

    def fail(column: str, bad: pl.Expr, reason: str | None = None) -> None:
        row = _first_row(df, bad)
        if row is None:
            return
        line = _line_of(df, row)
        if reason is None:
            # An empty required cell is often a line with too few columns: say so.
            record = _record_at(path, line, escape=escape)
            if record is not None and len(record) != len(fields):
                raise _ragged_error(display, line, len(record), len(fields))
            reason = f"the value is empty, but {column} is required."
        if "{value}" in reason:
            reason = reason.replace("{value}", _show(df[column][row]))
        raise ImportFailed(f"{display} line {line}, column {column}: {reason}")

    # Blank lines read as all-null rows; they are skipped, but only after every check so
    # that row numbers still match lines.
    blank = pl.all_horizontal(pl.all().is_null())
    has_blank = False
    for c in required:
        if stats.get(f"n:{c}"):
            fail(c, pl.col(c).is_null() & ~blank)
            has_blank = True

    for f in strings:
        key = normalize_name(f.name)
        longest = stats.get(f"len:{f.name}") or 0
        if key in ID_FIELDS:
            if stats.get(f"min:{f.name}") == 0:
                fail(f.name, pl.col(f.name) == "", f"the value is empty, but {f.name} is required.")
            if longest > MAX_ID_CHARS:
                fail(
                    f.name,
                    pl.col(f.name).str.len_chars() > MAX_ID_CHARS,
                    f"Length cannot be more than {MAX_ID_CHARS} characters for {f.name}.",
                )
        elif f.textual:
            if longest > MAX_TEXT_CHARS:
                # Personalize truncates long text rather than rejecting it (spec §7.2).
                df = df.with_columns(pl.col(f.name).str.slice(0, MAX_TEXT_CHARS))
        elif longest > MAX_VALUE_CHARS:
            if f.categorical or key in LIST_FIELDS:
                too_long = (
                    pl.col(f.name).str.split("|").list.eval(pl.element().str.len_chars()).list.max()
                    > MAX_VALUE_CHARS
                )
                what = f"each |-separated value of {f.name}"
            else:
                too_long = pl.col(f.name).str.len_chars() > MAX_VALUE_CHARS
                what = f.name
            fail(
                f.name,
                too_long,
                f"Length cannot be more than {MAX_VALUE_CHARS} characters for {what}.",
            )

    for c in stamps:
        if (stats.get(f"max:{c}") or 0) > MAX_EPOCH_SECONDS:
            fail(
                c,
                pl.col(c) > MAX_EPOCH_SECONDS,
                "{value} is too large for Unix epoch seconds (is it in milliseconds?). "
                f"{c} must be in seconds.",
            )
    return df.filter(~blank) if has_blank else df


def _cast_strings(strings: pl.DataFrame, fields: list[Field], display: str) -> pl.DataFrame:
    """Type a frame of string columns, or raise naming the first value that is no number."""
    typed: list[pl.Expr] = []
    for f in fields:
        col = pl.col(f.name)
        if f.type == "string":
            typed.append(col)
        elif f.type == "boolean":
            word = col.str.strip_chars().str.to_lowercase()
            typed.append(
                pl.when(word == "true").then(True).when(word == "false").then(False).alias(f.name)
            )
        else:
            typed.append(col.str.strip_chars().cast(POLARS_TYPES[f.type], strict=False))
    df = strings.select(typed)
    checked = [f for f in fields if f.type != "string"]
    if not checked:
        return df
    masks = pl.DataFrame(
        {f.name: strings[f.name].is_not_null() & df[f.name].is_null() for f in checked}
    )
    hit = masks.select(pl.any_horizontal(pl.all()).arg_true().first()).item()
    if hit is not None:
        row = int(hit)
        column = next(f for f in checked if masks[f.name][row])
        raise ImportFailed(
            f"{display} line {_line_of(strings, row)}, column {column.name}: "
            f"{_show(strings[column.name][row])} is not "
            f"{_TYPE_NAMES.get(column.type, 'a ' + column.type)}."
        )
    return df


def _diagnose(path: Path, display: str, fields: list[Field], exc: Exception) -> ImportFailed:
    """Find the first line that made the typed read fail; always returns an error."""
    names = [f.name for f in fields]
    text = str(exc)
    if "more fields" in text or "ragged" in text:
        ragged = _first_ragged_record(path, len(fields), escape=False)
        if ragged is not None:
            return _ragged_error(display, *ragged, len(fields))
    try:
        strings = pl.read_csv(
            path,
            has_header=True,
            infer_schema=False,
            encoding="utf8-lossy",
            truncate_ragged_lines=True,
            quote_char='"',
        )
    except pl.exceptions.PolarsError:
        strings = None
    if strings is not None and strings.width == len(names):
        strings.columns = names
        # utf8-lossy turns undecodable bytes into U+FFFD, so that is where they were.
        broken = pl.any_horizontal(pl.col(pl.String).str.contains("\ufffd", literal=True))
        row = _first_row(strings, broken)
        try:
            _cast_strings(strings if row is None else strings.head(row), fields, display)
        except ImportFailed as typed_error:
            return typed_error
        if row is not None:
            column = next(c for c in names if "\ufffd" in (strings[c][row] or ""))
            return ImportFailed(
                f"{display} line {_line_of(strings, row)}, column {column}: "
                "the value is not valid UTF-8 text."
            )
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return ImportFailed(f"{display}: could not read the file: {first}")


def _ragged_error(display: str, line: int, found: int, expected: int) -> ImportFailed:
    return ImportFailed(
        f"{display} line {line}: found {found} columns, expected {expected} "
        "(as many as the header has)."
    )


def _records(path: Path, *, escape: bool, start_line: int = 1) -> Iterator[tuple[int, list[str]]]:
    """(first physical line, fields) of each record from ``start_line`` on; error path only."""
    with path.open("rb") as raw:
        raw.seek(_offset_of_line(raw, start_line))
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
        reader = csv.reader(
            text, escapechar="\\" if escape else None, doublequote=True, strict=False
        )
        line = start_line
        for record in reader:
            yield line, record
            line = start_line + reader.line_num


def _offset_of_line(raw: BinaryIO, line: int) -> int:
    """Byte offset where physical line ``line`` (1-based) starts; newlines counted in C."""
    offset, skip = 0, line - 1
    while skip > 0:
        chunk = raw.read(1 << 24)
        if not chunk:
            break
        found = chunk.count(b"\n")
        if found < skip:
            offset, skip = offset + len(chunk), skip - found
            continue
        position = -1
        for _ in range(skip):
            position = chunk.index(b"\n", position + 1)
        return offset + position + 1
    return offset


def _record_at(path: Path, line: int, *, escape: bool) -> list[str] | None:
    return next((record for _, record in _records(path, escape=escape, start_line=line)), None)


def _first_ragged_record(path: Path, expected: int, *, escape: bool) -> tuple[int, int] | None:
    """(line, field count) of the first record whose field count differs from the header's.

    A per-record Python scan: it runs only after a read failed, to point at the line.
    """
    records = _records(path, escape=escape)
    next(records, None)  # the header
    for line, record in records:
        if record and len(record) != expected:
            return line, len(record)
    return None

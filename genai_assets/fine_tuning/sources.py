"""Reading training data files, locally or from S3, into numbered source lines (no dagster).

Every record of a ``.jsonl``, ``.json``, ``.csv`` or ``.parquet`` file becomes a
:class:`SourceLine` with its source and line number; bytes that cannot be read
become a line with an ``error``, which validation quarantines with that reason.
"""

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The training data formats the reader reads; the training-data sensor watches exactly these.
SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


@dataclass(frozen=True)
class SourceLine:
    """One raw line of a JSONL source."""

    source: str
    line: int
    text: str
    error: str | None = None  # why the bytes could not be read as a record (then quarantined)


def _records_of(source: str, data: bytes) -> Iterator[SourceLine]:
    """The records of one file, by its extension; what cannot be read becomes an error line.

    JSONL is read line by line, so one undecodable line quarantines only itself.
    A ``.json`` file holds an array of records, a ``.csv`` file one record per row
    (a header names the fields: ``instruction``, ``input``, ``response``, or a
    ``messages`` column holding the JSON list), a ``.parquet`` file one record
    per row; their ``line`` is the record's position (a CSV's: its line).
    """
    suffix = Path(source).suffix.lower()
    if suffix == ".jsonl":
        for number, raw in enumerate(data.splitlines(keepends=True), start=1):
            try:
                yield SourceLine(source, number, raw.decode("utf-8"))
            except UnicodeDecodeError as error:
                text = raw.decode("utf-8", errors="backslashreplace")
                yield SourceLine(source, number, text, error=_undecodable(error))
        return
    if suffix == ".parquet":
        yield from _parquet_records(source, data)
        return
    try:
        text = data.decode("utf-8-sig")  # a BOM is common in spreadsheet exports
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        yield SourceLine(source, line, "", error=_undecodable(error, whole_file=True))
        return
    if suffix == ".json":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as error:
            yield SourceLine(source, error.lineno, text[:200], error=f"malformed JSON: {error.msg}")
            return
        if not isinstance(rows, list):
            yield SourceLine(
                source,
                1,
                text[:200],
                error=f"bad file: a .json file must hold an array of records, got "
                f"{type(rows).__name__}",
            )
            return
        for number, row in enumerate(rows, start=1):
            yield SourceLine(source, number, json.dumps(row, ensure_ascii=False))
        return
    reader = csv.DictReader(io.StringIO(text, newline=""))
    reader.fieldnames  # noqa: B018 - reads the header, so line_num counts from it
    line = reader.line_num
    for row in reader:
        start, line = line + 1, reader.line_num
        if None in row:  # more cells than header columns
            yield SourceLine(
                source,
                start,
                json.dumps(row, ensure_ascii=False, default=str),
                error=f"bad row: {len(row[None])} cells more than the header has",
            )
            continue
        values: dict[str, object] = {k: v for k, v in row.items() if v is not None}
        if "messages" in values:
            try:
                values["messages"] = json.loads(str(values["messages"]))
            except json.JSONDecodeError as error:
                yield SourceLine(
                    source,
                    start,
                    json.dumps(row, ensure_ascii=False),
                    error=f"malformed JSON: the messages cell: {error.msg}",
                )
                continue
        yield SourceLine(source, start, json.dumps(values, ensure_ascii=False))


def _parquet_records(source: str, data: bytes) -> Iterator[SourceLine]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(pa.BufferReader(data)).to_pylist()
    except (pa.ArrowException, OSError) as error:
        yield SourceLine(source, 1, "", error=f"unreadable parquet file: {error}")
        return
    for number, row in enumerate(rows, start=1):
        yield SourceLine(source, number, json.dumps(row, ensure_ascii=False, default=str))


def _undecodable(error: UnicodeDecodeError, whole_file: bool = False) -> str:
    where = "in the file" if whole_file else "in the line"
    return (
        f"undecodable bytes: not UTF-8 at byte {error.start} {where} "
        f"({error.object[error.start : error.start + 4]!r})"
    )


def iter_local_lines(folder: Path) -> Iterator[SourceLine]:
    """Records of every training data file under ``folder`` (sorted, recursive).

    Reads the extensions in ``SUFFIXES`` (the ones the training-data sensor
    watches); other files (a README) are not training data.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"training data folder {folder} does not exist")
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and _is_data(p.name))
    for path in paths:
        yield from _records_of(str(path.relative_to(folder)), path.read_bytes())


def iter_s3_lines(client: Any, bucket: str, prefix: str) -> Iterator[SourceLine]:
    """Records of every training data object under ``s3://bucket/prefix`` (sorted by key).

    Args:
        client: a boto3 S3 client (injected, so tests can point it at a local server).
        bucket: bucket name.
        prefix: key prefix.
    """
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    for key in sorted(k for k in keys if _is_data(k)):
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        yield from _records_of(f"s3://{bucket}/{key}", body)


def _is_data(name: str) -> bool:
    return Path(name).suffix.lower() in SUFFIXES

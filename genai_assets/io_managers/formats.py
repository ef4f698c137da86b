"""How asset values become stored objects, and how a stored object is recognised.

One stored value is one *entry* next to a base key (``<asset path>`` or
``<asset path>/<partition>``); its suffix names the format, so loading needs
no side information:

====================  ==================  =====================================
value                 entry               content
====================  ==================  =====================================
list (table rows)     ``base.jsonl``      one JSON document per line
dict / JSON scalar    ``base.json``       one JSON document
pandas DataFrame      ``base.parquet``    Parquet (pyarrow)
pathlib.Path folder   ``base.folder.json``  manifest; the files are stored under
                                          ``base.folder/<content hash>/``
====================  ==================  =====================================

No dagster import: this module is tested directly.
"""

import hashlib
import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd
import pyarrow as pa

JSONL = "jsonl"
JSON = "json"
PARQUET = "parquet"
FOLDER = "folder"

# Entry suffix per format, in the order load probes them.
ENTRY_SUFFIXES = {
    JSONL: ".jsonl",
    JSON: ".json",
    PARQUET: ".parquet",
    FOLDER: ".folder.json",
}
FOLDER_FILES_SUFFIX = ".folder/"

JSON_SCALARS = (str, int, float, bool, type(None))


def format_for(value: Any) -> str:
    """The storage format for ``value``; TypeError naming the type when it has none."""
    if isinstance(value, Path):
        return FOLDER
    if isinstance(value, pd.DataFrame):
        return PARQUET
    if isinstance(value, list | tuple):
        return JSONL
    if isinstance(value, (dict, *JSON_SCALARS)):
        return JSON
    raise TypeError(
        f"cannot store a {type(value).__module__}.{type(value).__qualname__}: asset values"
        " must be a list of JSON-compatible rows, a JSON-compatible dict, a pandas DataFrame"
        " or a pathlib.Path to a folder"
    )


def _json_default(value: Any) -> Any:
    # numpy numbers and arrays (embeddings, scores) are stored as plain JSON numbers/lists.
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__module__}.{type(value).__qualname__} is not JSON-compatible")


def encode_json(value: Any) -> bytes:
    """One JSON document, UTF-8."""
    return json.dumps(value, ensure_ascii=False, default=_json_default).encode("utf-8")


def decode_json(data: bytes) -> Any:
    """The value of one JSON document."""
    return json.loads(data.decode("utf-8"))


def encode_jsonl(rows: list | tuple) -> bytes:
    """One JSON document per row, newline-terminated (an empty table is an empty file)."""
    lines = []
    for index, row in enumerate(rows):
        try:
            lines.append(json.dumps(row, ensure_ascii=False, default=_json_default))
        except (TypeError, ValueError) as error:
            raise TypeError(f"row {index} of the table is not JSON-compatible: {error}") from error
    return "".join(line + "\n" for line in lines).encode("utf-8")


def decode_jsonl(data: bytes) -> list:
    """The rows of a JSONL document (blank lines are ignored)."""
    return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]


def encode_parquet(frame: pd.DataFrame) -> bytes:
    """The DataFrame as Parquet bytes (index and dtypes kept through pandas metadata)."""
    buffer = io.BytesIO()
    try:
        frame.to_parquet(buffer, engine="pyarrow")
    except (TypeError, ValueError, pa.ArrowException) as error:
        raise TypeError(f"the DataFrame cannot be written as Parquet: {error}") from error
    return buffer.getvalue()


def decode_parquet(data: bytes) -> pd.DataFrame:
    """The DataFrame stored as Parquet bytes."""
    return pd.read_parquet(io.BytesIO(data), engine="pyarrow")


def _quote_component(text: str) -> str:
    # Keep keys readable but unambiguous: '/' and '.' never come from a name, so
    # a component can't add a level or fake an entry suffix.
    return quote(text, safe="-_=").replace(".", "%2E")


def base_key(path: list[str], partition: str | dict[str, str] | None = None) -> str:
    """The base key for an asset path and optional partition.

    ``partition`` is a partition key, or a ``{dimension: key}`` dict for
    multi-dimensional partitions (stored as ``dimension=key`` levels, sorted).
    """
    if not path:
        raise ValueError("an asset path needs at least one component")
    parts = [_quote_component(part) for part in path]
    if isinstance(partition, dict):
        parts += [
            f"{_quote_component(dim)}={_quote_component(key)}"
            for dim, key in sorted(partition.items())
        ]
    elif partition is not None:
        parts.append(_quote_component(partition))
    return "/".join(parts)


def entry_key(base: str, fmt: str) -> str:
    """The key of the entry that stores ``base`` in format ``fmt``."""
    return base + ENTRY_SUFFIXES[fmt]


def folder_files_prefix(base: str) -> str:
    """The prefix every stored file of a folder value lives under."""
    return base + FOLDER_FILES_SUFFIX


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a folder value: its files (relative path, size, sha256) and a version.

    ``version`` is a hash of the file list, so identical folders share stored
    files and a changed folder never overwrites files a reader may be fetching.
    """
    if not folder.exists():
        raise FileNotFoundError(f"the folder {folder} does not exist")
    if not folder.is_dir():
        raise NotADirectoryError(
            f"{folder} is a file: a pathlib.Path asset value must be a folder (put the file"
            " in a folder and return the folder)"
        )
    files = [
        {
            "path": path.relative_to(folder).as_posix(),
            "bytes": path.stat().st_size,
            "sha256": _sha256_file(path),
        }
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    ]
    version = hashlib.sha256(json.dumps(files, sort_keys=True).encode("utf-8")).hexdigest()[:16]
    return {"format": FOLDER, "version": version, "files": files}


def folder_version_prefix(base: str, manifest: dict[str, Any]) -> str:
    """The prefix of the files of this manifest's version."""
    return f"{folder_files_prefix(base)}{manifest['version']}/"

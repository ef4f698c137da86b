"""Listing the candidate documents of a source: local paths and globs, http(s) URLs, S3 prefixes.

Listing reads nothing: each candidate is a :class:`SourceEntry` whose ``read``
fetches its bytes, or a :class:`SkippedInput` naming the input, the reason and
what it means for the index. A source that does not exist at all raises
:class:`SourceNotFoundError`.

Failures of a source are told apart by what they mean: only a source that says
the document is gone (HTTP 404/410, a vanished S3 key, a file deleted before it
was read) raises :class:`SourceGoneError`. A transient failure (connection error,
timeout, DNS, throttling, 5xx) raises :class:`TransientExternalError`.
"""

import glob
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from genai_assets.automation.retries import (
    PermanentExternalError,
    TransientExternalError,
    error_for_status,
)
from genai_assets.rag.formats import SUPPORTED_SUFFIXES

# HTTP answers that mean the document no longer exists (every other error does not).
GONE_STATUSES = frozenset({404, 410})
S3_GONE_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
S3_THROTTLING_CODES = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError"}
)

# What a skipped input means for the index (SkippedInput.kind).
UNREADABLE = "unreadable"  # read, but no text in it: its points go
GONE = "gone"  # the source says it no longer exists: its points go
NOT_SELECTED = "not_selected"  # listed in a folder but not a document to ingest
UNAVAILABLE = "unavailable"  # could not be read now: its last version is kept


class SourceNotFoundError(ValueError):
    """A configured source (folder, file, glob, bucket prefix) does not exist at all."""


@dataclass(frozen=True)
class SkippedInput:
    """An input that was not loaded, why, and what that means for the index (``kind``)."""

    uri: str
    reason: str
    kind: str = UNREADABLE


class SourceGoneError(Exception):
    """The source answered that the document no longer exists (HTTP 404/410, no S3 key)."""


@dataclass(frozen=True)
class SourceEntry:
    """A candidate document found in a source, not read yet."""

    uri: str
    name: str
    size_bytes: int | None
    modified_at: str | None
    read: Callable[[], bytes] = field(repr=False, compare=False)
    content_type: str | None = None


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat()


def _glob_root(pattern: str) -> str:
    """The longest leading part of a glob pattern without wildcards."""
    parts = []
    for part in pattern.split("/"):
        if glob.has_magic(part):
            break
        parts.append(part)
    return "/".join(parts) or "."


def source_covers(source: str, uri: str) -> bool:
    """Whether ``uri`` is a document that ``source`` (as configured) lists when it is there."""
    root = _glob_root(source) if glob.has_magic(source) else source
    if uri == root:
        return True
    if source.startswith("s3://"):
        return uri.startswith(root)  # an S3 prefix need not end at a "/"
    return uri.startswith(root.rstrip("/") + "/")


def _local_read(path: Path) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            return path.read_bytes()
        except FileNotFoundError as error:
            # Listed a moment ago and gone now: deleted, unless a symlink lost its target.
            if path.is_symlink():
                raise OSError(
                    f"dangling symlink (target {os.readlink(path)} is missing)"
                ) from error
            raise SourceGoneError(f"file deleted before it was read ({error})") from error

    return read


def _dangling(path: Path, uri: str) -> SkippedInput:
    # The target may be on a volume that is not mounted now: keep the last version.
    return SkippedInput(
        uri, f"dangling symlink (target {os.readlink(path)} is missing)", UNAVAILABLE
    )


def _local_entries(source: str, include: list[str]) -> Iterator[SourceEntry | SkippedInput]:
    def uri_of(path: Path, root: Path | None, uri_prefix: str) -> str:
        # URIs of files inside a folder source are relative to the source as
        # configured, so moving a checkout does not change every document id.
        if root is None:
            return source
        return f"{uri_prefix.rstrip('/')}/{path.relative_to(root).as_posix()}"

    def entry(path: Path, uri: str) -> SourceEntry:
        stat = path.stat()
        return SourceEntry(
            uri=uri,
            name=path.name,
            size_bytes=stat.st_size,
            modified_at=_iso(stat.st_mtime),
            read=_local_read(path),
        )

    def not_a_file(path: Path, uri: str) -> SkippedInput:
        if path.is_symlink() and not path.exists():
            return _dangling(path, uri)
        if path.is_dir():
            return SkippedInput(
                uri, "a folder whose name matches the include patterns", NOT_SELECTED
            )
        return SkippedInput(uri, "not a regular file", NOT_SELECTED)

    expanded = os.path.expanduser(source)
    if glob.has_magic(expanded):
        matches = sorted(Path(p) for p in glob.glob(expanded, recursive=True))
        if not matches:
            raise SourceNotFoundError(f"source {source!r}: the pattern matches no file")
        root = Path(_glob_root(expanded))
        for path in matches:
            uri = uri_of(path, root, _glob_root(source))
            yield entry(path, uri) if path.is_file() else not_a_file(path, uri)
        return
    path = Path(expanded)
    if path.is_file():
        yield entry(path, uri_of(path, None, source))
    elif path.is_dir():
        selected = {p for pattern in include for p in path.glob(pattern)}
        for found in sorted(selected | set(_folder_entries(path))):
            uri = uri_of(found, path, source)
            if found not in selected:
                if found.is_symlink() and not found.exists():
                    yield _dangling(found, uri)
                elif not found.is_dir():
                    reason = f"not matched by the include patterns ({', '.join(include)})"
                    yield SkippedInput(uri, reason, NOT_SELECTED)
            elif found.is_file():
                yield entry(found, uri)
            else:
                yield not_a_file(found, uri)
    elif path.is_symlink():
        raise SourceNotFoundError(
            f"source {source!r} is a dangling symlink (target {os.readlink(path)} is missing)"
        )
    else:
        raise SourceNotFoundError(f"source {source!r} does not exist")


def _folder_entries(folder: Path) -> Iterator[Path]:
    """Every entry under ``folder`` that is neither hidden nor inside a hidden folder."""
    for directory, subdirs, files in os.walk(folder):
        subdirs[:] = sorted(name for name in subdirs if not name.startswith("."))
        base = Path(directory)
        for name in [*subdirs, *files]:
            if not name.startswith("."):
                yield base / name


def _http_entry(url: str, timeout_s: float) -> SourceEntry:
    import httpx

    def read() -> bytes:
        try:
            response = httpx.get(url, timeout=timeout_s, follow_redirects=True)
        except httpx.TransportError as error:  # connection refused, DNS, timeouts, resets
            raise TransientExternalError(url, f"{type(error).__name__}: {error}") from error
        if response.status_code in GONE_STATUSES:
            raise SourceGoneError(f"HTTP {response.status_code}")
        # 429/5xx: the server exists but is busy (retried, honouring Retry-After);
        # 401/403 and other 4xx: fail rather than delete what cannot be read.
        error = error_for_status(url, response.status_code, response.headers)
        if error is not None:
            raise error
        return response.content

    return SourceEntry(
        uri=url, name=urlparse(url).path or url, size_bytes=None, modified_at=None, read=read
    )


def s3_error(uri: str, error: Exception) -> Exception:
    """What a botocore exception means: gone, transient, permanent, or itself if unknown."""
    import botocore.exceptions

    if isinstance(error, botocore.exceptions.ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in S3_GONE_CODES:
            return SourceGoneError(f"S3 {code}")
        if code in S3_THROTTLING_CODES:
            return TransientExternalError(uri, f"S3 {code}: {error}", status)
        classified = error_for_status(uri, status or 500, body=f"S3 {code}")
        return classified or TransientExternalError(uri, f"S3 {code}: {error}", status)
    if isinstance(
        error, botocore.exceptions.ConnectionError | botocore.exceptions.HTTPClientError
    ):  # endpoint unreachable, connect/read timeouts, dropped connections
        return TransientExternalError(uri, f"{type(error).__name__}: {error}")
    if isinstance(error, botocore.exceptions.NoCredentialsError):
        return PermanentExternalError(uri, f"{error} (check the AWS credentials)")
    return error


def _s3_entries(
    uri: str, s3_client: Any, include: list[str]
) -> Iterator[SourceEntry | SkippedInput]:
    if s3_client is None:
        raise SourceNotFoundError(f"source {uri!r} is on S3 but no S3 client is configured")
    parsed = urlparse(uri)
    bucket, prefix = parsed.netloc, parsed.path.lstrip("/")
    paginator = s3_client.get_paginator("list_objects_v2")
    found = False
    try:
        pages = list(paginator.paginate(Bucket=bucket, Prefix=prefix))
    except s3_client.exceptions.NoSuchBucket as error:
        raise SourceNotFoundError(f"source {uri!r}: bucket {bucket!r} does not exist") from error
    except Exception as error:
        raise s3_error(uri, error) from error
    suffixes = tuple(pattern.rsplit("*", 1)[-1] for pattern in include)
    for page in pages:
        for obj in page.get("Contents", []):
            key = obj["Key"]
            found = True
            if key.endswith("/"):
                continue  # a folder marker, not an object with content
            object_uri = f"s3://{bucket}/{key}"
            if not key.lower().endswith(suffixes):
                reason = f"not matched by the include patterns ({', '.join(include)})"
                yield SkippedInput(object_uri, reason, NOT_SELECTED)
                continue

            def read(key: str = key, object_uri: str = object_uri) -> bytes:
                try:
                    return s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
                except Exception as error:
                    raise s3_error(object_uri, error) from error

            yield SourceEntry(
                uri=object_uri,
                name=key.rsplit("/", 1)[-1],
                size_bytes=obj.get("Size"),
                modified_at=obj["LastModified"].isoformat() if obj.get("LastModified") else None,
                read=read,
            )
    if not found:
        raise SourceNotFoundError(f"source {uri!r}: no object under that prefix")


DEFAULT_INCLUDE = ["**/*" + suffix for suffix in SUPPORTED_SUFFIXES]


def iter_source_entries(
    source: str,
    include: list[str] | None = None,
    s3_client: Any = None,
    http_timeout_s: float = 30.0,
) -> Iterator[SourceEntry | SkippedInput]:
    """The candidate documents of one source, without reading them.

    ``source`` is a local file, folder or glob pattern, an ``http(s)://`` URL (one
    document) or an ``s3://bucket/prefix``. Folders and prefixes are filtered by
    ``include`` glob patterns (by default every supported suffix, recursively);
    every other entry (a file of another type, a folder named like a document, a
    dangling symlink) is yielded as a :class:`SkippedInput` with its reason.
    """
    include = include or DEFAULT_INCLUDE
    scheme = urlparse(source).scheme
    if scheme in ("http", "https"):
        yield _http_entry(source, http_timeout_s)
    elif scheme == "s3":
        yield from _s3_entries(source, s3_client, include)
    elif scheme in ("", "file"):
        yield from _local_entries(source.removeprefix("file://"), include)
    else:
        raise SourceNotFoundError(f"source {source!r}: unsupported scheme {scheme!r}")

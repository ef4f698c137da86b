"""Reading documents from their sources: local paths and globs, http(s) URLs, S3 prefixes.

Every input either becomes a :class:`Document` (normalised text, a content hash,
a title where one can be found, source metadata), an :class:`UnchangedDocument`
(its raw bytes hash as in the previous run: the earlier extraction is reused) or
a :class:`SkippedInput` naming the input, the reason and what it means for the
index, so one bad file never stops the others. A source that does not exist at
all raises :class:`SourceNotFoundError`.

Failures of a source are told apart by what they mean: only a source that says
the document is gone (HTTP 404/410, a vanished S3 key, a file deleted before it
was read) drops it. A transient failure (connection error, timeout, DNS,
throttling, 5xx) raises :class:`TransientExternalError` so the step retries and
then fails, or, for a source configured as optional, keeps the document's last
version and reports it unavailable.
"""

import glob
import hashlib
import io
import os
import re
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from genai_assets.automation.retries import (
    ExternalCallError,
    PermanentExternalError,
    RetrySettings,
    TransientExternalError,
    error_for_status,
    retry_transient,
)

SUPPORTED_SUFFIXES = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".rst": "rst",
    ".txt": "text",
    ".text": "text",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}
# Debian's python3-doc ships reST sources as "name.rst.txt": treat them as reST.
COMPOUND_SUFFIXES = {".rst.txt": "rst"}
CONTENT_TYPES = {
    "text/markdown": "markdown",
    "text/x-rst": "rst",
    "text/plain": "text",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/pdf": "pdf",
}
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
# Bump when parsing or normalisation changes the text (and so the hash) of a document:
# it also invalidates every reused extraction (2: legacy encodings are decoded; 3: HTML
# keeps only the page's main landmark and drops navigation landmarks).
LOADER_VERSION = 3
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
class Document:
    """One loaded document: normalised text plus what identifies it."""

    doc_id: str
    uri: str
    text: str
    content_hash: str
    title: str | None
    format: str
    size_bytes: int
    modified_at: str | None
    encoding: str | None = None
    raw_hash: str | None = None

    def manifest_row(self) -> dict[str, Any]:
        """The document without its text: what the ``raw_documents`` table stores."""
        return {
            "doc_id": self.doc_id,
            "uri": self.uri,
            "content_hash": self.content_hash,
            "title": self.title,
            "format": self.format,
            "size_bytes": self.size_bytes,
            "modified_at": self.modified_at,
            "n_chars": len(self.text),
            "encoding": self.encoding,
            "raw_hash": self.raw_hash,
            "loader_version": LOADER_VERSION,
        }


@dataclass(frozen=True)
class UnchangedDocument:
    """A document whose raw bytes hash as in ``row`` (a previous manifest row): not parsed."""

    row: dict[str, Any]


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


def document_id(uri: str) -> str:
    """A stable id for a document, derived from its source URI alone."""
    return hashlib.sha256(uri.encode("utf-8")).hexdigest()[:32]


def content_hash(text: str) -> str:
    """The hash of a document's normalised text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def raw_hash(data: bytes) -> str:
    """The hash of an input's bytes as read: equal bytes need no new extraction."""
    return hashlib.sha256(data).hexdigest()


def normalise_text(text: str) -> str:
    """Unicode NFC, Unix line ends, no trailing spaces, at most one blank line in a row."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\x0c", "\n")
    lines = [line.rstrip() for line in text.split("\n")]
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def detect_format(name: str, content_type: str | None = None) -> str | None:
    """The document format from a file name, else from an HTTP content type."""
    lowered = name.lower()
    for suffix, fmt in COMPOUND_SUFFIXES.items():
        if lowered.endswith(suffix):
            return fmt
    fmt = SUPPORTED_SUFFIXES.get(Path(urlparse(lowered).path).suffix)
    if fmt is None and content_type:
        fmt = CONTENT_TYPES.get(content_type.split(";")[0].strip().lower())
    return fmt


class UnreadableDocumentError(ValueError):
    """The bytes of an input cannot be turned into text; the message says why."""


# Bytes 0x80-0x9f that cp1252 maps to printable characters (curly quotes, dashes, the
# euro sign); latin-1 maps them to C1 control codes, which real text never contains.
_CP1252_ONLY = frozenset(range(0x80, 0xA0)) - {0x81, 0x8D, 0x8F, 0x90, 0x9D}


def decode_text(data: bytes) -> tuple[str, str]:
    """The text of a plain-text file and the encoding it was decoded from.

    UTF-8 (with or without a BOM) and UTF-16 with a BOM are exact. Anything else
    that is not UTF-8 is taken as a legacy 8-bit encoding: cp1252 when it uses
    bytes only cp1252 gives characters to, else latin-1 (ISO-8859-1), which
    decodes any byte, so the choice is reported in the metadata.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as error:
            raise UnreadableDocumentError(f"not valid UTF-16 despite its BOM ({error})") from error
    if b"\x00" in data[:8192]:
        raise UnreadableDocumentError("binary content (NUL bytes) in a text file")
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    if _CP1252_ONLY.intersection(data):
        try:
            return data.decode("cp1252"), "cp1252"
        except UnicodeDecodeError:
            pass  # one of the five bytes cp1252 leaves undefined: latin-1 decodes it
    return data.decode("latin-1"), "latin-1"


# ARIA landmarks of page chrome, whatever the tag: Sphinx's related bar and sidebar are
# <div role="navigation">, measured in bench/html_extraction.py.
CHROME_ROLES = ("navigation", "search", "banner", "contentinfo")


def _html_to_text(data: bytes) -> tuple[str, str | None, str | None]:
    from bs4 import BeautifulSoup

    if b"\x00" in data[:8192]:
        raise UnreadableDocumentError("binary content (NUL bytes) in an HTML file")
    soup = BeautifulSoup(data, "lxml")
    title_tag = soup.find("title")
    title = title_tag.get_text(" ", strip=True) if title_tag else None
    for tag in soup(["script", "style", "noscript", "nav", "header", "footer", "template"]):
        tag.decompose()
    for tag in soup.find_all(attrs={"role": CHROME_ROLES}):
        tag.decompose()
    # The main landmark, where a page marks one, holds the content without the
    # sidebar and footer around it (Sphinx: div.body role=main).
    body = soup.find("main") or soup.find(attrs={"role": "main"}) or soup.body or soup
    if not title:
        heading = body.find(["h1", "h2"])
        title = heading.get_text(" ", strip=True) if heading else None
    blocks = []
    for element in body.find_all(
        ["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "td", "th", "dt", "dd", "blockquote"]
    ):
        if element.find_parent(["p", "li", "pre", "td", "th", "dd", "blockquote"]):
            continue  # its text is part of the enclosing block
        text = element.get_text(" " if element.name != "pre" else "", strip=element.name != "pre")
        if not text.strip():
            continue
        if element.name.startswith("h"):
            text = "#" * int(element.name[1]) + " " + text
        elif element.name == "li":
            text = "- " + text
        blocks.append(text)
    if not blocks:  # a page of bare text without block elements
        blocks = [body.get_text("\n", strip=True)]
    # BeautifulSoup decodes by the page's own declaration, else by detection.
    return "\n\n".join(blocks), title or None, soup.original_encoding


def _pdf_to_text(data: bytes) -> tuple[str, str | None]:
    import pypdf
    from pypdf.errors import PdfReadError

    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
        title = reader.metadata.title if reader.metadata else None
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise UnreadableDocumentError(f"not a readable PDF ({error})") from error
    return "\n\n".join(pages), (str(title).strip() or None) if title else None


_MD_HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)
_MD_FRONT_MATTER_TITLE = re.compile(
    r"\A---\n(?:.*\n)*?title:\s*[\"']?(.+?)[\"']?\s*\n(?:.*\n)*?---"
)
_RST_UNDERLINE = re.compile(
    r"^(?P<over>([=\-~^\"'`#*+])\2{2,}\n)?(?P<title>[^\n]+)\n([=\-~^\"'`#*+])\4{2,}$", re.MULTILINE
)


def find_title(text: str, fmt: str) -> str | None:
    """The document's title where its format marks one (heading, underline, first line)."""
    if fmt == "markdown":
        match = _MD_FRONT_MATTER_TITLE.match(text) or _MD_HEADING.search(text)
        return match.group(1).strip() if match else None
    if fmt == "rst":
        match = _RST_UNDERLINE.search(text)
        return match.group("title").strip() if match else None
    first_line = next((line.strip() for line in text.split("\n") if line.strip()), "")
    return first_line if 0 < len(first_line) <= 120 else None


def parse_document(entry: SourceEntry, data: bytes, data_hash: str | None = None) -> Document:
    """Turn one input's bytes into a :class:`Document`; raise UnreadableDocumentError if not."""
    fmt = detect_format(entry.name, entry.content_type)
    if fmt is None:
        raise UnreadableDocumentError(
            f"unsupported format (supported: {', '.join(sorted(set(SUPPORTED_SUFFIXES)))})"
        )
    if not data.strip():
        raise UnreadableDocumentError("empty file")
    title = encoding = None
    if fmt == "html":
        raw_text, title, encoding = _html_to_text(data)
    elif fmt == "pdf":
        if not data.startswith(b"%PDF-"):
            raise UnreadableDocumentError("not a PDF (missing %PDF- header)")
        raw_text, title = _pdf_to_text(data)
    else:
        raw_text, encoding = decode_text(data)
    text = normalise_text(raw_text)
    if not text:
        raise UnreadableDocumentError("no text after extraction")
    return Document(
        doc_id=document_id(entry.uri),
        uri=entry.uri,
        text=text,
        content_hash=content_hash(text),
        title=title or find_title(text, fmt),
        format=fmt,
        size_bytes=entry.size_bytes if entry.size_bytes is not None else len(data),
        modified_at=entry.modified_at,
        encoding=encoding,
        raw_hash=data_hash or raw_hash(data),
    )


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


def load_entry(
    entry: SourceEntry,
    max_bytes: int = DEFAULT_MAX_BYTES,
    previous: dict[str, Any] | None = None,
    optional: bool = False,
    retry: RetrySettings | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Document | UnchangedDocument | SkippedInput:
    """Read and parse one candidate; a problem with the document becomes a SkippedInput.

    ``previous`` is the document's manifest row from the last run: when the raw
    bytes hash the same under the same loader version, that extraction is reused.
    A failure of the source propagates: a transient one (TransientExternalError)
    so the step retries, a permanent one (401/403) so the run fails; what cannot
    be read is never deleted. From an ``optional`` source a transient failure is
    retried here first, and either is then reported UNAVAILABLE (the document
    keeps its last version).
    """
    if entry.size_bytes is not None and entry.size_bytes > max_bytes:
        return SkippedInput(entry.uri, f"too large ({entry.size_bytes} bytes > limit {max_bytes})")
    try:
        if optional:
            data = retry_transient(entry.read, retry or RetrySettings(), sleep)
        else:
            data = entry.read()
    except SourceGoneError as error:
        return SkippedInput(entry.uri, f"gone ({error})", GONE)
    except ExternalCallError as error:
        if not optional:
            raise
        tried = (
            f"after {(retry or RetrySettings()).attempts} attempts "
            if isinstance(error, TransientExternalError)
            else ""
        )
        return SkippedInput(entry.uri, f"source unavailable {tried}({error})", UNAVAILABLE)
    except OSError as error:
        # Permission denied, an I/O error, a lost symlink target: unreadable now, not gone.
        return SkippedInput(entry.uri, f"unreadable now ({error})", UNAVAILABLE)
    if len(data) > max_bytes:
        return SkippedInput(entry.uri, f"too large ({len(data)} bytes > limit {max_bytes})")
    data_hash = raw_hash(data)
    if (
        previous is not None
        and previous.get("raw_hash") == data_hash
        and previous.get("loader_version") == LOADER_VERSION
    ):
        size = entry.size_bytes if entry.size_bytes is not None else len(data)
        return UnchangedDocument({**previous, "size_bytes": size, "modified_at": entry.modified_at})
    try:
        return parse_document(entry, data, data_hash)
    except UnreadableDocumentError as error:
        return SkippedInput(entry.uri, str(error))


def iter_documents(
    sources: list[str],
    include: list[str] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    s3_client: Any = None,
    http_timeout_s: float = 30.0,
    previous: dict[str, dict[str, Any]] | None = None,
    optional_sources: frozenset[str] | set[str] = frozenset(),
    retry: RetrySettings | None = None,
) -> Iterator[Document | UnchangedDocument | SkippedInput]:
    """Every document of every source, one at a time, in a stable order.

    A source that does not exist raises SourceNotFoundError before anything is
    yielded for it; a document that appears in two sources is yielded once.
    ``previous`` maps URIs to last run's manifest rows (see :func:`load_entry`).
    A source in ``optional_sources`` that cannot be listed at all yields one
    UNAVAILABLE SkippedInput under the source itself instead of failing.
    """
    previous = previous or {}
    seen: set[str] = set()
    for source in sources:
        optional = source in optional_sources
        try:
            for entry in iter_source_entries(source, include, s3_client, http_timeout_s):
                if entry.uri in seen:
                    continue
                seen.add(entry.uri)
                if isinstance(entry, SkippedInput):
                    yield entry
                    continue
                yield load_entry(entry, max_bytes, previous.get(entry.uri), optional, retry)
        except ExternalCallError as error:
            if not optional:
                raise
            yield SkippedInput(source, f"source unavailable ({error})", UNAVAILABLE)

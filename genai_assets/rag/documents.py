"""Reading documents from their sources: local paths and globs, http(s) URLs, S3 prefixes.

Every input either becomes a :class:`Document` (normalised text, a content hash,
a title where one can be found, source metadata) or a :class:`SkippedInput`
naming the input and the reason, so one bad file never stops the others. A
source that does not exist at all raises :class:`SourceNotFoundError`.
"""

import glob
import hashlib
import io
import os
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from genai_assets.automation.retries import TransientExternalError, error_for_status

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
# Bump when parsing or normalisation changes the text (and so the hash) of a document.
LOADER_VERSION = 1


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
        }


@dataclass(frozen=True)
class SkippedInput:
    """An input that was not loaded, and why."""

    uri: str
    reason: str


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


def _decode_text(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise UnreadableDocumentError("binary content (NUL bytes) in a text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UnreadableDocumentError(
            f"not valid UTF-8 (byte 0x{data[error.start]:02x} at offset {error.start})"
        ) from error


def _html_to_text(data: bytes) -> tuple[str, str | None]:
    from bs4 import BeautifulSoup

    if b"\x00" in data[:8192]:
        raise UnreadableDocumentError("binary content (NUL bytes) in an HTML file")
    soup = BeautifulSoup(data, "lxml")
    title_tag = soup.find("title")
    title = title_tag.get_text(" ", strip=True) if title_tag else None
    for tag in soup(["script", "style", "noscript", "nav", "header", "footer", "template"]):
        tag.decompose()
    if not title:
        heading = soup.find(["h1", "h2"])
        title = heading.get_text(" ", strip=True) if heading else None
    body = soup.body or soup
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
    return "\n\n".join(blocks), title or None


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


def parse_document(entry: SourceEntry, data: bytes) -> Document:
    """Turn one input's bytes into a :class:`Document`; raise UnreadableDocumentError if not."""
    fmt = detect_format(entry.name, entry.content_type)
    if fmt is None:
        raise UnreadableDocumentError(
            f"unsupported format (supported: {', '.join(sorted(set(SUPPORTED_SUFFIXES)))})"
        )
    if not data.strip():
        raise UnreadableDocumentError("empty file")
    title = None
    if fmt == "html":
        raw_text, title = _html_to_text(data)
    elif fmt == "pdf":
        if not data.startswith(b"%PDF-"):
            raise UnreadableDocumentError("not a PDF (missing %PDF- header)")
        raw_text, title = _pdf_to_text(data)
    else:
        raw_text = _decode_text(data)
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


def _local_entries(source: str, include: list[str]) -> Iterator[SourceEntry]:
    def entry(path: Path, root: Path | None, uri_prefix: str) -> SourceEntry:
        stat = path.stat()
        # URIs of files inside a folder source are relative to the source as
        # configured, so moving a checkout does not change every document id.
        uri = f"{uri_prefix.rstrip('/')}/{path.relative_to(root).as_posix()}" if root else source
        return SourceEntry(
            uri=uri,
            name=path.name,
            size_bytes=stat.st_size,
            modified_at=_iso(stat.st_mtime),
            read=path.read_bytes,
        )

    expanded = os.path.expanduser(source)
    if glob.has_magic(expanded):
        files = sorted(Path(p) for p in glob.glob(expanded, recursive=True) if Path(p).is_file())
        if not files:
            raise SourceNotFoundError(f"source {source!r}: the pattern matches no file")
        root = Path(_glob_root(expanded))
        for path in files:
            yield entry(path, root, _glob_root(source))
        return
    path = Path(expanded)
    if path.is_file():
        yield entry(path, None, source)
    elif path.is_dir():
        files = sorted({p for pattern in include for p in path.glob(pattern) if p.is_file()})
        for file_path in files:
            yield entry(file_path, path, source)
    else:
        raise SourceNotFoundError(f"source {source!r} does not exist")


def _http_entry(url: str, timeout_s: float) -> SourceEntry:
    import httpx

    def read() -> bytes:
        response = httpx.get(url, timeout=timeout_s, follow_redirects=True)
        # A server that answers 429/5xx exists but is busy: raise so the step
        # retries (honouring Retry-After) instead of dropping the document.
        busy = error_for_status(url, response.status_code, response.headers)
        if isinstance(busy, TransientExternalError):
            raise busy
        response.raise_for_status()
        return response.content

    return SourceEntry(
        uri=url, name=urlparse(url).path or url, size_bytes=None, modified_at=None, read=read
    )


def _s3_entries(uri: str, s3_client: Any, include: list[str]) -> Iterator[SourceEntry]:
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
    suffixes = tuple(pattern.rsplit("*", 1)[-1] for pattern in include)
    for page in pages:
        for obj in page.get("Contents", []):
            key = obj["Key"]
            found = True
            if key.endswith("/") or not key.lower().endswith(suffixes):
                continue

            def read(key: str = key) -> bytes:
                return s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()

            yield SourceEntry(
                uri=f"s3://{bucket}/{key}",
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
) -> Iterator[SourceEntry]:
    """The candidate documents of one source, without reading them.

    ``source`` is a local file, folder or glob pattern, an ``http(s)://`` URL (one
    document) or an ``s3://bucket/prefix``. Folders and prefixes are filtered by
    ``include`` glob patterns (by default every supported suffix, recursively).
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


def load_entry(entry: SourceEntry, max_bytes: int = DEFAULT_MAX_BYTES) -> Document | SkippedInput:
    """Read and parse one candidate; any problem becomes a SkippedInput with its reason.

    Except a busy source (TransientExternalError: HTTP 429/5xx): skipping it would
    delete its document from the index, so it propagates and the step retries.
    """
    if entry.size_bytes is not None and entry.size_bytes > max_bytes:
        return SkippedInput(entry.uri, f"too large ({entry.size_bytes} bytes > limit {max_bytes})")
    try:
        data = entry.read()
    except TransientExternalError:
        raise
    except OSError as error:
        return SkippedInput(entry.uri, f"unreadable ({error})")
    except Exception as error:  # noqa: BLE001 - network and S3 clients raise their own types
        return SkippedInput(entry.uri, f"unreachable ({type(error).__name__}: {error})")
    if len(data) > max_bytes:
        return SkippedInput(entry.uri, f"too large ({len(data)} bytes > limit {max_bytes})")
    try:
        return parse_document(entry, data)
    except UnreadableDocumentError as error:
        return SkippedInput(entry.uri, str(error))


def iter_documents(
    sources: list[str],
    include: list[str] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    s3_client: Any = None,
    http_timeout_s: float = 30.0,
) -> Iterator[Document | SkippedInput]:
    """Every document of every source, one at a time, in a stable order.

    A source that does not exist raises SourceNotFoundError before anything is
    yielded for it; a document that appears in two sources is yielded once.
    """
    seen: set[str] = set()
    for source in sources:
        for entry in iter_source_entries(source, include, s3_client, http_timeout_s):
            if entry.uri in seen:
                continue
            seen.add(entry.uri)
            yield load_entry(entry, max_bytes)

"""Loading documents from their sources, one at a time: the Document types and the iteration.

Every input either becomes a :class:`Document` (normalised text, a content hash,
a title where one can be found, source metadata), an :class:`UnchangedDocument`
(its raw bytes hash as in the previous run: the earlier extraction is reused) or
a :class:`~genai_assets.rag.sources.SkippedInput` naming the input, the reason and
what it means for the index, so one bad file never stops the others. Listing the
sources is :mod:`genai_assets.rag.sources`; text extraction by format is
:mod:`genai_assets.rag.formats` and :mod:`genai_assets.rag.html_text`.

Only a source that says the document is gone drops it. A transient failure
raises :class:`TransientExternalError` so the step retries and then fails, or,
for a source configured as optional, keeps the document's last version and
reports it unavailable.
"""

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from genai_assets.automation.retries import (
    ExternalCallError,
    RetrySettings,
    TransientExternalError,
    retry_transient,
)
from genai_assets.rag.formats import (
    SUPPORTED_SUFFIXES,
    UnreadableDocumentError,
    decode_text,
    detect_format,
    find_title,
    normalise_text,
    pdf_to_text,
)
from genai_assets.rag.html_text import html_to_text
from genai_assets.rag.sources import (
    GONE,
    UNAVAILABLE,
    SkippedInput,
    SourceEntry,
    SourceGoneError,
    iter_source_entries,
)

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
# Bump when parsing or normalisation changes the text (and so the hash) of a document:
# it also invalidates every reused extraction (2: legacy encodings are decoded; 3: HTML
# keeps only the page's main landmark and drops navigation landmarks).
LOADER_VERSION = 3


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


def document_id(uri: str) -> str:
    """A stable id for a document, derived from its source URI alone."""
    return hashlib.sha256(uri.encode("utf-8")).hexdigest()[:32]


def content_hash(text: str) -> str:
    """The hash of a document's normalised text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def raw_hash(data: bytes) -> str:
    """The hash of an input's bytes as read: equal bytes need no new extraction."""
    return hashlib.sha256(data).hexdigest()


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
        raw_text, title, encoding = html_to_text(data)
    elif fmt == "pdf":
        if not data.startswith(b"%PDF-"):
            raise UnreadableDocumentError("not a PDF (missing %PDF- header)")
        raw_text, title = pdf_to_text(data)
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

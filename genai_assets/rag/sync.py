"""Incremental sync of documents into the vector index.

Compares the current documents with what the index holds and does only the
difference: unchanged documents are not read, chunked or embedded (and when
nothing changed the model is never loaded); in a changed document only chunk
texts the index does not hold yet are embedded; vanished chunks and documents
are deleted. Work streams through in bounded batches: reading and chunking of
the next batch, embedding, and writes to the index run in three threads.

Writes are ordered so that a run killed at any point leaves the index in a
state the next run repairs exactly: new points are written before the points
they replace are re-labelled or deleted, and a document counts as done only
when all its points carry its current hash (see ``index.DocumentState``).
"""

import hashlib
import json
import logging
import os
import queue
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

from tqdm import tqdm

from genai_assets.preload import Preloadable
from genai_assets.rag.chunking import Chunk, Chunker
from genai_assets.rag.index import DocumentState, QdrantIndex
from genai_assets.rag.vector_store import SPARSE_MODEL

log = logging.getLogger(__name__)

# 2: the last chunk gets at least a quarter of the limit; chunks capped in characters.
CHUNKER_VERSION = 2
POINT_NAMESPACE = uuid.UUID("5b0c3a52-9f1e-4d0e-8a39-2f3c1d7e6b10")


@dataclass(frozen=True)
class IngestSettings:
    """Everything that changes the vectors of a chunk; its fingerprint versions the index.

    The device and dtype are the ones the model really runs at (the per-machine
    decision for ``auto``), and ``model_revision`` identifies the model's files: a
    collection built at bf16 on one machine is never extended at fp32 on another, or
    by a changed checkpoint under the same name.
    """

    model: str
    chunk_tokens: int
    overlap_tokens: int
    model_revision: str = field(kw_only=True)
    device: str = field(kw_only=True)
    dtype: str = field(kw_only=True)
    sparse_model: str | None = field(default=SPARSE_MODEL, kw_only=True)
    # The model (and BM25) read the title and heading path before each chunk's text.
    contextual: bool = field(default=False, kw_only=True)

    def fingerprint(self) -> str:
        """A short hash of the settings (and the chunker's version)."""
        fields: dict[str, Any] = {
            "model": self.model,
            "model_revision": self.model_revision,
            "device": self.device,
            "dtype": self.dtype,
            "chunk_tokens": self.chunk_tokens,
            "overlap_tokens": self.overlap_tokens,
            "chunker": CHUNKER_VERSION,
        }
        # The first sparse model is implied (the BM25 vectors the migration from local
        # mode adds); any other sparse model is named, so a change builds a new collection.
        if self.sparse_model != SPARSE_MODEL:
            fields["sparse"] = self.sparse_model
        if self.contextual:  # named only when on: plain collections keep their names
            fields["contextual"] = True
        blob = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


class PrecisionMismatchError(RuntimeError):
    """The loaded model runs at another device or dtype than the collection was built for."""


def point_id(doc_id: str, settings_fingerprint: str, text: str, occurrence: int) -> str:
    """A point id derived from the document, the settings and the chunk's text.

    ``occurrence`` tells apart identical chunk texts inside one document. A rerun
    or retry derives the same id, so it overwrites instead of duplicating.
    """
    key = f"{doc_id}\x1f{settings_fingerprint}\x1f{occurrence}\x1f{text}"
    return str(uuid.uuid5(POINT_NAMESPACE, key))


def chunk_point_ids(doc_id: str, settings_fingerprint: str, chunks: Sequence[Chunk]) -> list[str]:
    """The point id of every chunk of one document."""
    seen: Counter[str] = Counter()
    ids = []
    for chunk in chunks:
        ids.append(point_id(doc_id, settings_fingerprint, chunk.text, seen[chunk.text]))
        seen[chunk.text] += 1
    return ids


@dataclass
class SyncReport:
    """What a sync did; every count is exact."""

    documents_new: int = 0
    documents_changed: int = 0
    documents_unchanged: int = 0
    documents_deleted: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    chunks_embedded: int = 0
    chunks_reused: int = 0
    chunks_deduplicated: int = 0
    chunks_deleted: int = 0
    tokens_in_chunks: int = 0  # document tokens covered by some chunk
    tokens_in_documents: int = 0
    embed_seconds: float = 0.0
    model_loaded: bool = False
    dtype: str | None = None
    dtype_reason: str | None = None
    device: str | None = None
    # Every document's point ids after the sync, in chunk order (for the next summary).
    document_points: dict[str, list[str]] = field(default_factory=dict)

    @property
    def chunks_per_second(self) -> float:
        """Embedding throughput over the time spent in the model."""
        return self.chunks_embedded / self.embed_seconds if self.embed_seconds else 0.0

    @property
    def token_coverage(self) -> float:
        """Share of the processed documents' tokens inside some chunk (1.0 = all embedded)."""
        if not self.tokens_in_documents:
            return 1.0
        return self.tokens_in_chunks / self.tokens_in_documents


@dataclass(frozen=True)
class SourceDocument:
    """What the sync needs of a document from the ``raw_documents`` manifest."""

    doc_id: str
    uri: str
    content_hash: str
    title: str | None = None


class IndexChangedError(RuntimeError):
    """The index does not hold what its last clean sync's summary says."""

    def __init__(self, collection: str, found: int, expected: int, missing: int = 0):
        detail = f"{missing} of the points it left are missing" if missing else ""
        if found != expected:
            detail = f"holds {found} points where it left {expected}" + (
                f", and {detail}" if detail else ""
            )
        super().__init__(
            f"collection {collection} does not hold what its last clean sync left "
            f"({detail}): it was changed by something else"
        )


@dataclass(frozen=True)
class IndexedState:
    """What a collection holds, per document, as its last clean sync recorded it."""

    states: dict[str, DocumentState]
    points: int


@dataclass
class _DocumentWork:
    doc: SourceDocument
    chunks: list[Chunk]
    ids: list[str]
    existing: DocumentState | None


@dataclass
class _Batch:
    work: list[_DocumentWork]
    to_embed: list[tuple[str, Chunk, dict[str, Any]]]  # (point id, chunk, payload)
    to_relabel: list[tuple[str, dict[str, Any]]]
    to_delete: list[str]
    skipped: int = 0  # documents that could not be read or chunked


class Progress:
    """Periodic 'done/total, rate, ETA' lines for long embedding work, and a terminal bar.

    Progress counts documents, whose number is known before the first one is
    read; chunks embedded and the embedding rate come with each line. Lines go to
    ``report`` (the run's log in Dagster) every ``every_s`` seconds and when all
    documents are done. ``bar`` adds a tqdm progress bar on a stream: ``"auto"``
    draws it only when a person watches a terminal (see :func:`open_terminal`),
    so CI logs, pods and Dagster's captured output get no bar; ``None`` never
    draws one. The log lines are the same either way.
    """

    def __init__(
        self,
        total: int,
        report: Callable[[str], None],
        every_s: float = 10.0,
        bar: TextIO | Literal["auto"] | None = "auto",
    ):
        self.total = total
        self.report = report
        self.every_s = every_s
        self.started = time.perf_counter()
        self.last = self.started
        self.done = 0
        self.chunks = 0
        self._opened = open_terminal() if bar == "auto" else None
        stream = self._opened if bar == "auto" else bar
        self._bar = (
            tqdm(total=total, unit="doc", desc="embedding", file=stream, dynamic_ncols=True)
            if stream is not None
            else None
        )

    def advance(self, documents: int, chunks: int = 0) -> None:
        """Count more documents done and chunks embedded; report when it is time."""
        self.done += documents
        self.chunks += chunks
        if self._bar is not None:
            self._bar.update(documents)
            self._bar.set_postfix(chunks=self.chunks, refresh=False)
        now = time.perf_counter()
        if now - self.last >= self.every_s or self.done >= self.total:
            self.last = now
            elapsed = now - self.started
            rate = self.chunks / elapsed if elapsed > 0 else 0.0
            eta = elapsed / self.done * (self.total - self.done) if self.done else float("inf")
            percent = 100 * self.done / self.total if self.total else 100
            self.report(
                f"processed {self.done}/{self.total} documents ({percent:.0f}%), "
                f"{self.chunks} chunks embedded, {rate:.1f} chunks/s, ETA {eta:.0f}s"
            )

    def close(self) -> None:
        """Finish the terminal bar, if any."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._opened is not None and self._opened is not sys.stderr:
            self._opened.close()
        self._opened = None


def open_terminal() -> TextIO | None:
    """A stream to the terminal a person runs this from, or None when there is none.

    ``sys.stderr`` when it is a terminal (a plain script). Inside a Dagster step
    stderr is a pipe into the run's captured logs, so the process's controlling
    terminal is opened instead (``dagster asset materialize`` or ``dagster dev``
    run from a shell); the bar then stays out of the captured logs. Processes
    without one (CI, Kubernetes pods, daemons) get None.
    """
    if sys.stderr is not None and sys.stderr.isatty():
        return sys.stderr
    try:
        terminal = open("/dev/tty", "w")  # noqa: SIM115 - closed by Progress.close()
    except OSError:  # no controlling terminal: nobody to draw a bar for
        return None
    if not terminal.isatty():
        terminal.close()
        return None
    return terminal


class _Writer(threading.Thread):
    """Applies index writes in submission order, off the embedding thread.

    ``before_first_write`` runs in this thread just before the first write, when the
    first batch has been embedded.
    """

    def __init__(self, before_first_write: Callable[[], None]):
        super().__init__(name="index-writer", daemon=True)
        self.before_first_write: Callable[[], None] | None = before_first_write
        self.tasks: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=4)
        self.error: BaseException | None = None

    def run(self) -> None:
        while (task := self.tasks.get()) is not None:
            if self.error is None:
                try:
                    if self.before_first_write is not None:
                        before, self.before_first_write = self.before_first_write, None
                        before()
                    task()
                except BaseException as error:  # re-raised in the caller by submit()/close()
                    self.error = error

    def submit(self, task: Callable[[], None]) -> None:
        if self.error is not None:
            raise self.error
        self.tasks.put(task)

    def close(self) -> None:
        self.tasks.put(None)
        self.join()
        if self.error is not None:
            raise self.error


class _Prefetch:
    """Runs a batch generator one step ahead in a thread, so chunking overlaps embedding.

    ``close()`` stops the thread and waits for it: after an error in the consumer the
    producer must not stay blocked on a full buffer (holding the chunker and the texts
    it read) or go on reading documents nobody will embed.
    """

    def __init__(self, batches: Iterator[_Batch]):
        self._buffer: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=2)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._produce, args=(batches,), name="chunk-prefetch", daemon=True
        )
        self._thread.start()

    def _put(self, item: tuple[str, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._buffer.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, batches: Iterator[_Batch]) -> None:
        try:
            for batch in batches:
                if not self._put(("batch", batch)):
                    return
            self._put(("done", None))
        except BaseException as error:  # handed to the consumer in __iter__
            self._put(("error", error))

    def __iter__(self) -> Iterator[_Batch]:
        while True:
            kind, item = self._buffer.get()
            if kind == "done":
                return
            if kind == "error":
                raise item
            yield item

    def close(self) -> None:
        """Stop the producer (after the document it is reading) and wait for it."""
        self._stop.set()
        self._thread.join()


class DocumentSync:
    """Brings a collection in line with a set of documents.

    Args:
        index: the collection to write.
        settings: model and chunking settings; their fingerprint goes on every point.
        chunker_factory: builds the chunker (loads the tokenizer) when first needed.
        embedder_factory: loads the embedding model, in a thread that starts as soon
            as a document is known to need embedding. The model must have
            ``encode(texts, token_ids) -> ndarray``, ``dimension``, ``dtype``,
            ``dtype_reason`` and ``device``; device and dtype must be the settings'
            (else :class:`PrecisionMismatchError`, before anything is written).
        read_text: the normalised text of a document, by its manifest row.
        batch_chunks: chunks embedded per batch; bounds memory.
        report: where progress lines go.
    """

    def __init__(
        self,
        index: QdrantIndex,
        settings: IngestSettings,
        chunker_factory: Callable[[], Chunker],
        embedder_factory: Callable[[], Any],
        read_text: Callable[[SourceDocument], str],
        batch_chunks: int = 1024,
        report: Callable[[str], None] = log.info,
    ):
        self.index = index
        self.settings = settings
        self.fingerprint = settings.fingerprint()
        self.chunker_factory = chunker_factory
        self.model = Preloadable(embedder_factory)
        self.read_text = read_text
        self.batch_chunks = batch_chunks
        self.report = report
        self._embedder: Any = None
        self._unchecked: IndexedState | None = None

    def run(
        self,
        documents: Sequence[SourceDocument],
        indexed: IndexedState | None = None,
    ) -> SyncReport:
        """Sync the index to exactly ``documents``; returns what was done.

        ``indexed`` is what the index held after the last clean sync, from its
        summary: then the index's own state is not read, and the index is first used
        when the first batch has been embedded, to check its point count against
        ``indexed`` before writing.

        Raises:
            IndexChangedError: the index does not hold what ``indexed`` says; nothing
                was written. Run again without ``indexed``.
        """
        result = SyncReport()
        current = {doc.doc_id: doc for doc in documents}
        self._unchecked = indexed
        if indexed is not None:
            states = indexed.states
        elif self.index.exists():
            states = self.index.document_states()
        else:
            states = {}
        pending = []
        for doc in documents:
            state = states.get(doc.doc_id)
            if state is not None and state.is_complete(doc.content_hash, self.fingerprint):
                result.documents_unchanged += 1
                result.document_points[doc.doc_id] = state.ordered_ids()
            else:
                pending.append((doc, state))
        gone = [doc_id for doc_id in states if doc_id not in current]
        result.documents_deleted = len(gone)
        if pending:
            self.model.start()  # loads while the first batch is read and chunked
            self._process(pending, result)
        gone_points = [pid for doc_id in gone for pid in states[doc_id].points]
        if gone_points:
            self._check_before_writing()
            self.index.delete(gone_points)
        result.chunks_deleted += len(gone_points)
        return result

    def _check_before_writing(self) -> None:
        """Raise IndexChangedError if the index lacks what the summary says it holds."""
        if self._unchecked is None:
            return
        indexed, self._unchecked = self._unchecked, None
        found = self.index.count() if self.index.exists() else 0
        if found != indexed.points:
            raise IndexChangedError(self.index.collection, found, indexed.points)
        # The same count can hide a lost point and a foreign one: when every recorded
        # point is there as well, the index holds exactly the recorded points.
        recorded = [pid for state in indexed.states.values() for pid in state.points]
        missing = self.index.missing(recorded) if recorded else []
        if missing:
            raise IndexChangedError(self.index.collection, found, indexed.points, len(missing))

    def _embedder_loaded(self, result: SyncReport) -> Any:
        if self._embedder is None:
            embedder = self.model()
            runs_at = (embedder.device, embedder.dtype)
            if runs_at != (self.settings.device, self.settings.dtype):
                # Its vectors would mix with others in one collection: refuse before writing.
                raise PrecisionMismatchError(
                    f"the embedding model runs at {embedder.dtype} on {embedder.device}, but "
                    f"the settings (fingerprint {self.fingerprint}) are for "
                    f"{self.settings.dtype} on {self.settings.device}"
                )
            self._embedder = embedder
        result.model_loaded = True
        result.device = self._embedder.device
        return self._embedder

    def _batches(
        self, pending: list[tuple[SourceDocument, DocumentState | None]], result: SyncReport
    ) -> Iterator[_Batch]:
        """Read, chunk and diff documents against the index, in bounded batches."""
        chunker = self.chunker_factory()
        batch = _Batch([], [], [], [])
        for doc, state in pending:
            self._diff(doc, state, chunker, batch, result)
            # Re-labels and deletions are bounded as well as new points: after a crash
            # repair a whole corpus may need nothing but new labels.
            if (
                len(batch.to_embed) >= self.batch_chunks
                or len(batch.to_relabel) + len(batch.to_delete) >= self.batch_chunks
            ):
                yield batch
                batch = _Batch([], [], [], [])
        if batch.work or batch.skipped:
            yield batch

    def _diff(
        self,
        doc: SourceDocument,
        state: DocumentState | None,
        chunker: Chunker,
        batch: _Batch,
        result: SyncReport,
    ) -> None:
        """Add what one document needs (new points, re-labels, deletions) to the batch."""
        existing = state.points if state else {}
        try:
            text = self.read_text(doc)
        except (FileNotFoundError, ValueError) as error:
            # This version cannot be indexed. Points of an older version would answer with
            # outdated text, so they go; points of this version stay (a rerun, once the
            # text is stored again, adds the rest). Other errors (a store that cannot be
            # reached) do not mean "missing": they fail the run.
            stale = [pid for pid, p in existing.items() if p.get("doc_hash") != doc.content_hash]
            removed = f"; its {len(stale)} outdated points were removed" if stale else ""
            result.skipped.append((doc.uri, f"text unavailable: {error}{removed}"))
            batch.to_delete.extend(stale)
            batch.skipped += 1
            return
        chunked = chunker.chunk_document(text, doc.title)
        chunks = chunked.chunks
        result.tokens_in_documents += chunked.document_tokens
        result.tokens_in_chunks += chunked.covered_tokens
        if not chunks:
            # This version has nothing to embed, so the index must hold none of its points.
            removed = f"; its {len(existing)} earlier points were removed" if existing else ""
            result.skipped.append((doc.uri, f"no tokens to embed{removed}"))
            batch.to_delete.extend(existing)
            batch.skipped += 1
            return
        ids = chunk_point_ids(doc.doc_id, self.fingerprint, chunks)
        payload_common = {
            "doc_id": doc.doc_id,
            "source": doc.uri,
            "title": doc.title,
            "doc_hash": doc.content_hash,
            "chunk_count": len(chunks),
            "settings": self.fingerprint,
            "embedding_model": self.settings.model,
            "embedding_device": self.settings.device,
            "embedding_dtype": self.settings.dtype,
        }
        for chunk, pid in zip(chunks, ids, strict=True):
            state_payload = {**payload_common, "chunk_index": chunk.index}
            if pid in existing:
                if any(
                    existing[pid].get(k) != v
                    for k, v in state_payload.items()
                    if k in ("doc_hash", "chunk_index", "chunk_count")
                ):
                    batch.to_relabel.append((pid, state_payload))
            else:
                batch.to_embed.append(
                    (
                        pid,
                        chunk,
                        {
                            **state_payload,
                            "text": chunk.text,
                            # What the model and BM25 read before the text (contextual chunks).
                            "context": chunk.context,
                            "heading_path": list(chunk.heading_path),
                            "n_tokens": chunk.n_tokens,
                        },
                    )
                )
        new_ids = set(ids)
        batch.to_delete.extend(pid for pid in existing if pid not in new_ids)
        batch.work.append(_DocumentWork(doc, chunks, ids, state))

    def _process(
        self, pending: list[tuple[SourceDocument, DocumentState | None]], result: SyncReport
    ) -> None:
        writer = _Writer(before_first_write=self._check_before_writing)
        writer.start()
        progress = Progress(len(pending), self.report)
        prefetch = _Prefetch(self._batches(pending, result))
        try:
            for batch in prefetch:
                for work in batch.work:
                    if work.existing is None:
                        result.documents_new += 1
                    else:
                        result.documents_changed += 1
                # What the model reads: the contextual prefix, if any, then the chunk text.
                token_ids = {c.embed_text: c.embed_token_ids for _, c, _ in batch.to_embed}
                unique_texts = list(token_ids)
                result.chunks_reused += sum(len(w.ids) for w in batch.work) - len(batch.to_embed)
                result.chunks_deduplicated += len(batch.to_embed) - len(unique_texts)
                if unique_texts:
                    embedder = self._embedder_loaded(result)
                    started = time.perf_counter()
                    vectors = embedder.encode(unique_texts, list(token_ids.values()))
                    result.embed_seconds += time.perf_counter() - started
                    result.dtype, result.dtype_reason = embedder.dtype, embedder.dtype_reason
                    row_of = {text: i for i, text in enumerate(unique_texts)}
                    rows = [row_of[chunk.embed_text] for _, chunk, _ in batch.to_embed]
                    ids = [pid for pid, _, _ in batch.to_embed]
                    payloads = [payload for _, _, payload in batch.to_embed]
                    embedded = vectors[rows]
                    writer.submit(lambda i=ids, v=embedded, p=payloads: self.index.upsert(i, v, p))
                    result.chunks_embedded += len(ids)
                # Re-labels and deletions come after the batch's new points are written.
                relabel, delete = batch.to_relabel, batch.to_delete
                writer.submit(
                    lambda r=relabel, d=delete: (self.index.set_payloads(r), self.index.delete(d))
                )
                result.chunks_deleted += len(delete)
                for work in batch.work:
                    result.document_points[work.doc.doc_id] = work.ids
                progress.advance(len(batch.work) + batch.skipped, len(unique_texts))
        finally:
            prefetch.close()
            progress.close()
            writer.close()


class SyncSummary:
    """What the last clean sync left in a local collection, kept beside its storage.

    Opening embedded Qdrant loads the whole collection into memory, which on a
    large corpus costs more than everything else an unchanged rerun does. After a
    clean sync the summary records every document's hash and point ids, so a rerun
    knows what the index holds without reading it back: an unchanged rerun does not
    open it at all, and a changed one only writes. It is deleted before any write,
    so a run that dies half way leaves none, and the next run reads the index itself.
    """

    FORMAT = 2

    def __init__(self, path: Path):
        self.path = path

    def invalidate(self) -> None:
        """Forget the summary: the index is about to change."""
        self.path.unlink(missing_ok=True)

    def save(
        self,
        fingerprint: str,
        documents: Sequence[SourceDocument],
        document_points: dict[str, list[str]],
    ) -> None:
        """Record a clean sync (atomic write): each document's hash and point ids."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "format": self.FORMAT,
                    "settings": fingerprint,
                    "documents": {
                        doc.doc_id: [doc.content_hash, document_points[doc.doc_id]]
                        for doc in documents
                    },
                }
            )
        )
        os.replace(tmp, self.path)

    def _read(self, fingerprint: str) -> dict[str, Any] | None:
        try:
            summary = json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        if summary.get("format") != self.FORMAT or summary.get("settings") != fingerprint:
            return None
        return summary["documents"]

    def indexed(self, fingerprint: str) -> IndexedState | None:
        """The index's content per document, if a clean sync with these settings recorded it."""
        documents = self._read(fingerprint)
        if documents is None:
            return None
        states = {}
        for doc_id, (doc_hash, ids) in documents.items():
            states[doc_id] = DocumentState(
                {
                    pid: {
                        "doc_hash": doc_hash,
                        "settings": fingerprint,
                        "chunk_index": index,
                        "chunk_count": len(ids),
                    }
                    for index, pid in enumerate(ids)
                }
            )
        return IndexedState(states, sum(len(ids) for _, ids in documents.values()))

    def unchanged_points(self, fingerprint: str, documents: Sequence[SourceDocument]) -> int | None:
        """The point count if the index already holds exactly ``documents``, else None."""
        recorded = self._read(fingerprint)
        if recorded is None or len(recorded) != len(documents):
            return None
        points = 0
        for doc in documents:
            entry = recorded.get(doc.doc_id)
            if entry is None or entry[0] != doc.content_hash:
                return None
            points += len(entry[1])
        return points

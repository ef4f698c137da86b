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

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from genai_assets.preload import Preloadable
from genai_assets.rag.chunking import Chunk, Chunker
from genai_assets.rag.index import DocumentState, QdrantIndex
from genai_assets.rag.progress import Progress
from genai_assets.rag.sync_report import SyncReport
from genai_assets.rag.sync_threads import IndexWriter, Prefetch
from genai_assets.rag.versioning import IngestSettings, chunk_point_ids

log = logging.getLogger(__name__)


class PrecisionMismatchError(RuntimeError):
    """The loaded model runs at another device or dtype than the collection was built for."""


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
    ids: list[str]
    existing: DocumentState | None


@dataclass
class _Batch:
    work: list[_DocumentWork]
    to_embed: list[tuple[str, Chunk, dict[str, Any]]]  # (point id, chunk, payload)
    to_relabel: list[tuple[str, dict[str, Any]]]
    to_delete: list[str]
    skipped: int = 0  # documents that could not be read or chunked


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
        batch.work.append(_DocumentWork(doc, ids, state))

    def _process(
        self, pending: list[tuple[SourceDocument, DocumentState | None]], result: SyncReport
    ) -> None:
        writer = IndexWriter(before_first_write=self._check_before_writing)
        writer.start()
        progress = Progress(len(pending), self.report)
        prefetch = Prefetch(self._batches(pending, result))
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
                progress.advance(
                    len(batch.work) + batch.skipped,
                    result.chunks_embedded,
                    result.chunks_per_second,
                )
        finally:
            prefetch.close()
            progress.close()
            writer.close()

"""The vector index: a collection of chunks, and what it says about each document.

The collection itself is the record of what was ingested: every point carries
its document's id and content hash, its chunk index and the document's chunk
count, and the settings fingerprint. A document is complete in the index when
it has exactly ``chunk_count`` points, all with its current hash and settings,
so a run interrupted half way is recognised and repaired by the next one.
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from genai_assets.rag.vector_store import (
    CollectionSpec,
    DimensionMismatchError,
    IndexPoint,
    SparseVector,
    VectorStore,
    bm25_document,
)

__all__ = ["DimensionMismatchError", "DocumentState", "QdrantIndex"]

STATE_FIELDS = ["doc_id", "doc_hash", "chunk_index", "chunk_count", "settings"]
SCROLL_PAGE = 2048


@dataclass
class DocumentState:
    """The points one document has in the index."""

    points: dict[str, dict[str, Any]] = field(default_factory=dict)

    def is_complete(self, doc_hash: str, settings: str) -> bool:
        """Whether the index holds exactly this version of the document, fully."""
        if not self.points:
            return False
        payloads = list(self.points.values())
        count = payloads[0].get("chunk_count")
        return (
            all(p.get("doc_hash") == doc_hash and p.get("settings") == settings for p in payloads)
            and count == len(payloads)
            and {p.get("chunk_index") for p in payloads} == set(range(len(payloads)))
        )

    def ordered_ids(self) -> list[str]:
        """The point ids in chunk order."""
        return sorted(self.points, key=lambda pid: self.points[pid].get("chunk_index", 0))


def chunk_bm25(payload: dict[str, Any]) -> SparseVector:
    """The BM25 vector of a stored chunk: of what the model read (context, then text)."""
    return bm25_document(str(payload.get("context", "")) + str(payload.get("text", "")))


class QdrantIndex:
    """One collection of document chunks, on either engine (see ``vector_store``).

    Args:
        store: an open store, or a function that returns one (opening it) on first use.
        collection: the physical collection name.
        sparse: store each chunk's BM25 sparse vector beside its embedding.
    """

    def __init__(
        self,
        store: VectorStore | Callable[[], VectorStore],
        collection: str,
        sparse: bool = True,
    ):
        self._store = store
        self.collection = collection
        self.sparse = sparse
        self._ensured = False

    @property
    def store(self) -> VectorStore:
        """The open store."""
        if not isinstance(self._store, VectorStore):
            self._store = self._store()
        return self._store

    def spec(self, dimension: int) -> CollectionSpec:
        """What this index stores for vectors of ``dimension``."""
        return (
            CollectionSpec(dimension)
            if self.sparse
            else CollectionSpec(dimension, sparse_model=None)
        )

    def exists(self) -> bool:
        """Whether the collection exists."""
        return self.store.collection_exists(self.collection)

    def ensure(self, dimension: int) -> bool:
        """Create the collection for ``dimension``-d vectors if missing; True when created.

        Raises:
            DimensionMismatchError: the collection exists with other vector settings.
        """
        if self.exists():
            self.store.check_spec(self.collection, self.spec(dimension))
            return False
        self.store.create_collection(self.collection, self.spec(dimension))
        return True

    def document_states(self, doc_ids: Sequence[str] | None = None) -> dict[str, DocumentState]:
        """Documents' points (ids and state payload), read without vectors.

        Every document's, or only those of ``doc_ids``.
        """
        states: dict[str, DocumentState] = {}
        if doc_ids is not None and not doc_ids:
            return states
        where = ("doc_id", list(doc_ids)) if doc_ids is not None else None
        for record in self.store.scroll(
            self.collection, where=where, fields=STATE_FIELDS, page=SCROLL_PAGE
        ):
            doc_id = record.payload.get("doc_id")
            states.setdefault(doc_id, DocumentState()).points[record.id] = record.payload
        return states

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, payloads: Sequence[dict]) -> None:
        """Write points; ids are derived from content, so a repeat overwrites, never duplicates.

        The first write creates the collection for the vectors' dimension, or checks it.
        The BM25 vector of each point's ``text`` is computed here (microseconds a chunk).
        """
        if not self._ensured:
            self.ensure(vectors.shape[1])
            self._ensured = True
        rows = vectors.tolist()
        self.store.upsert(
            self.collection,
            [
                IndexPoint(
                    pid,
                    row,
                    payload,
                    chunk_bm25(payload) if self.sparse else None,
                )
                for pid, row, payload in zip(ids, rows, payloads, strict=True)
            ],
        )

    def set_payloads(self, updates: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Update the payload of existing points, keeping their vectors."""
        for pid, payload in updates:
            self.store.set_payload(self.collection, [pid], payload)

    def delete(self, ids: Iterable[str]) -> None:
        """Delete points by id."""
        ids = list(ids)
        if ids:
            self.store.delete(self.collection, ids)

    def count(self) -> int:
        """Exact number of points in the collection."""
        return self.store.count(self.collection)

    def missing(self, ids: Sequence[str]) -> list[str]:
        """The ids of ``ids`` that the collection lacks (looked up by id, no payload read)."""
        found = self.store.existing(self.collection, ids)
        return [pid for pid in ids if pid not in found]

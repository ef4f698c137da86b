"""The vector index: a Qdrant collection of chunks, and what it says about each document.

The collection itself is the record of what was ingested: every point carries
its document's id and content hash, its chunk index and the document's chunk
count, and the settings fingerprint. A document is complete in the index when
it has exactly ``chunk_count`` points, all with its current hash and settings,
so a run interrupted half way is recognised and repaired by the next one.
"""

import sqlite3
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

STATE_FIELDS = ["doc_id", "doc_hash", "chunk_index", "chunk_count", "settings"]
SCROLL_PAGE = 2048


class DimensionMismatchError(ValueError):
    """An existing collection has another vector size than the model produces."""


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


class QdrantIndex:
    """One Qdrant collection of document chunks.

    Args:
        client: an open Qdrant client (local path, ``:memory:`` or a server), or a
            function that returns one (waiting for it to open) on first use.
        collection: the physical collection name.
    """

    def __init__(self, client: QdrantClient | Callable[[], QdrantClient], collection: str):
        self._client = client
        self.collection = collection
        self._writes_prepared = False
        self._ensured = False

    @property
    def client(self) -> QdrantClient:
        """The open client."""
        if not isinstance(self._client, QdrantClient):
            self._client = self._client()
        return self._client

    def _prepare_writes(self) -> None:
        """Let embedded Qdrant write without waiting for the disk at every point.

        Embedded Qdrant (path mode) stores each point in its own SQLite transaction,
        and SQLite's default rollback journal syncs to disk at every commit: about
        1 ms per point, a whole CPU-second per thousand points taken from the model
        that shares the machine. In WAL mode with ``synchronous=NORMAL`` a commit
        only appends to the log; the database is synced when the log is
        checkpointed, at the latest when the client closes. A crash can then lose the
        last writes but never corrupts the file, and the sync repairs lost writes on
        its next run (its summary is written only after the client closed).
        Servers and ``:memory:`` have no such file.
        """
        if self._writes_prepared:
            return
        storage = local_storage(self.client, self.collection)
        if storage is not None:
            storage.execute("PRAGMA journal_mode=WAL")
            storage.execute("PRAGMA synchronous=NORMAL")
        self._writes_prepared = True

    def exists(self) -> bool:
        """Whether the collection exists."""
        return self.client.collection_exists(self.collection)

    def ensure(self, dimension: int) -> bool:
        """Create the collection (cosine, ``dimension``) if missing; True when created.

        Raises:
            DimensionMismatchError: the collection exists with another vector size.
        """
        if self.exists():
            params = self.client.get_collection(self.collection).config.params.vectors
            size = params.size if isinstance(params, models.VectorParams) else None
            if size != dimension:
                raise DimensionMismatchError(
                    f"Qdrant collection {self.collection!r} holds {size}-dimensional vectors but "
                    f"the embedding model produces {dimension}; use another collection name or "
                    "delete the collection"
                )
            return False
        self.client.create_collection(
            self.collection,
            vectors_config=models.VectorParams(size=dimension, distance=models.Distance.COSINE),
        )
        with warnings.catch_warnings():
            # Keyword indexes speed up filters on a server; embedded Qdrant warns that
            # it ignores them, which is expected here.
            warnings.filterwarnings("ignore", message="Payload indexes have no effect")
            for key in ("doc_id", "doc_hash"):
                self.client.create_payload_index(
                    self.collection, key, models.PayloadSchemaType.KEYWORD
                )
        return True

    def document_states(self, doc_ids: Sequence[str] | None = None) -> dict[str, DocumentState]:
        """Documents' points (ids and state payload), read without vectors.

        Every document's, or only those of ``doc_ids``.
        """
        states: dict[str, DocumentState] = {}
        if doc_ids is not None and not doc_ids:
            return states
        only = (
            models.Filter(
                must=[models.FieldCondition(key="doc_id", match=models.MatchAny(any=list(doc_ids)))]
            )
            if doc_ids is not None
            else None
        )
        offset = None
        while True:
            points, offset = self.client.scroll(
                self.collection,
                scroll_filter=only,
                limit=SCROLL_PAGE,
                offset=offset,
                with_payload=STATE_FIELDS,
                with_vectors=False,
            )
            for point in points:
                payload = point.payload or {}
                doc_id = payload.get("doc_id")
                states.setdefault(doc_id, DocumentState()).points[str(point.id)] = payload
            if offset is None:
                return states

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, payloads: Sequence[dict]) -> None:
        """Write points; ids are derived from content, so a repeat overwrites, never duplicates.

        The first write creates the collection for the vectors' dimension, or checks it.
        """
        if not self._ensured:
            self.ensure(vectors.shape[1])
            self._ensured = True
        self._prepare_writes()
        self.client.upsert(
            self.collection,
            points=models.Batch(ids=list(ids), vectors=vectors.tolist(), payloads=list(payloads)),
            wait=True,
        )

    def set_payloads(self, updates: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Update the payload of existing points, keeping their vectors."""
        operations = [
            models.SetPayloadOperation(set_payload=models.SetPayload(payload=payload, points=[pid]))
            for pid, payload in updates
        ]
        if operations:
            self._prepare_writes()
            self.client.batch_update_points(self.collection, operations, wait=True)

    def delete(self, ids: Iterable[str]) -> None:
        """Delete points by id."""
        ids = list(ids)
        if ids:
            self._prepare_writes()
            self.client.delete(self.collection, points_selector=models.PointIdsList(points=ids))

    def count(self) -> int:
        """Exact number of points in the collection."""
        return self.client.count(self.collection, exact=True).count

    def missing(self, ids: Sequence[str]) -> list[str]:
        """The ids of ``ids`` that the collection lacks (looked up by id, no payload read)."""
        found: set[str] = set()
        for start in range(0, len(ids), SCROLL_PAGE):
            page = self.client.retrieve(
                self.collection,
                ids=list(ids[start : start + SCROLL_PAGE]),
                with_payload=False,
                with_vectors=False,
            )
            found.update(str(point.id) for point in page)
        return [pid for pid in ids if pid not in found]


def local_storage(client: QdrantClient, collection: str) -> sqlite3.Connection | None:
    """The SQLite connection behind a collection of embedded Qdrant in path mode, if any.

    qdrant-client has no public handle on it: this follows its local-mode internals
    (``QdrantClient._client.collections[name].storage.storage``), pinned by a test.
    None for a server, ``:memory:``, or a collection that does not exist.
    """
    collections = getattr(getattr(client, "_client", None), "collections", None)
    if not isinstance(collections, dict) or collection not in collections:
        return None
    persistence = getattr(collections[collection], "storage", None)
    connection = getattr(persistence, "storage", None)
    return connection if isinstance(connection, sqlite3.Connection) else None
